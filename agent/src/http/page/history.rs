//! The page's longer memory: one mean per minute, for six hours, of the gauges the page
//! charts. The series store keeps `agent.history` samples (10 minutes at the default 1 s
//! interval), enough for the detectors and rules but not for "since when has this been
//! growing?" at 3 a.m.; this keeps the hours behind it at minute resolution.
//!
//! Bounded: [`MINUTES`] points of 8 bytes per series, at most [`MAX_SERIES`] series (about
//! 1.5 MiB at worst; a few hundred KiB on a host with tens of services). Series the store no
//! longer has (a service a reload removed) are dropped at the next roll-up.

use crate::probes::names;
use crate::series::{SeriesKey, SeriesStore};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Points kept per series: six hours of minutes.
pub const MINUTES: usize = 360;
/// Series kept at most.
pub const MAX_SERIES: usize = 512;
const EVERY: Duration = Duration::from_secs(60);

/// The gauges the page charts with history (store names).
pub const ROLLED: &[&str] = &[
    crate::alerting::rules::series::THREADS,
    names::CPU_UTILIZATION,
    names::RESIDENT_MEMORY,
    names::OPEN_FDS,
    names::SYSTEM_THREADS,
    names::SYSTEM_CPU_UTILIZATION,
    names::SYSTEM_MEMORY_USED,
    names::SYSTEM_MEMORY_UTILIZATION,
    names::SYSTEM_LOAD,
    names::SYSTEM_NETWORK_IO,
    names::SYSTEM_DISK_IO,
    lookout_cache::names::STALENESS_SECONDS,
    lookout_tracker::names::IN_FLIGHT,
    crate::anomaly::RATE,
];

/// Per-minute means by series: (store time of the minute's middle, mean).
#[derive(Default)]
pub struct History {
    inner: Mutex<Rolled>,
}

#[derive(Default)]
struct Rolled {
    series: HashMap<SeriesKey, VecDeque<(f32, f32)>>,
    /// Store time up to which samples were rolled up.
    until: f32,
}

impl History {
    /// Roll up every minute until `token` is cancelled.
    pub fn spawn(store: Arc<SeriesStore>, token: CancellationToken) -> Arc<Self> {
        let me = Arc::new(Self::default());
        let history = me.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => history.roll(&store),
                }
            }
        });
        me
    }

    /// Fold the samples newer than the last roll-up into one mean per series.
    pub fn roll(&self, store: &SeriesStore) {
        let now = store.now();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let since = g.until;
        let keys: Vec<SeriesKey> = store
            .keys()
            .into_iter()
            .filter(|k| ROLLED.contains(&k.name.as_str()))
            .collect();
        g.series.retain(|k, _| keys.binary_search(k).is_ok());
        for key in keys {
            let samples = store.samples_since(&key, since);
            let finite: Vec<f32> = samples
                .iter()
                .map(|s| s.v)
                .filter(|v| v.is_finite())
                .collect();
            if finite.is_empty() {
                continue;
            }
            let mean = finite.iter().map(|&v| f64::from(v)).sum::<f64>() / finite.len() as f64;
            let mid = (samples[0].t + samples[samples.len() - 1].t) / 2.0;
            if !g.series.contains_key(&key) && g.series.len() >= MAX_SERIES {
                continue;
            }
            let ring = g.series.entry(key).or_default();
            if ring.len() == MINUTES {
                ring.pop_front();
            }
            ring.push_back((mid, mean as f32));
        }
        g.until = now;
    }

    /// The minute means of `key` older than store time `before`, oldest first.
    pub fn before(&self, key: &SeriesKey, before: f32) -> Vec<(f32, f32)> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.series
            .get(key)
            .map(|r| r.iter().copied().filter(|(t, _)| *t < before).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_up_means_bounded_and_forgets_removed_series() {
        let store = SeriesStore::new(8);
        let k = SeriesKey::new("system_thread_count", &[]);
        let other = SeriesKey::new("lookout_build_info", &[]);
        let h = History::default();
        for round in 0..(MINUTES + 5) {
            for i in 0..4 {
                store.record(&k, (round * 10 + i) as f64);
            }
            store.record(&other, 1.0);
            // Roll-ups are keyed by store time; make each round's samples newer than the last.
            std::thread::sleep(Duration::from_micros(50));
            h.roll(&store);
        }
        let all = h.before(&k, f32::MAX);
        assert_eq!(all.len(), MINUTES, "bounded");
        let last = all.last().unwrap().1;
        assert!(
            (last - ((MINUTES + 4) as f32 * 10.0 + 1.5)).abs() < 0.01,
            "mean of the last round: {last}"
        );
        assert!(
            h.before(&other, f32::MAX).is_empty(),
            "only charted series are kept"
        );
        store.remove(&k);
        h.roll(&store);
        assert!(
            h.before(&k, f32::MAX).is_empty(),
            "a removed series is forgotten"
        );
    }
}
