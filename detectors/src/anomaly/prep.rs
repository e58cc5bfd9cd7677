//! Turning raw samples into the values the models see: missing samples, gaps, and counters
//! (scored as per-second rates, with resets taken as a restart from zero rather than as a
//! collapse of the rate).

/// What a series measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SeriesKind {
    /// A level (CPU utilisation, threads, bytes/s): scored as is.
    #[default]
    Gauge,
    /// A running total that only grows except when its process restarts (`*_total`):
    /// scored as its rate per second.
    Counter,
}

pub(crate) enum Prepared {
    Missing,
    /// The first value after a gap much longer than the usual interval.
    AfterGap(f32),
    Value(f32),
}

/// A gap is a step longer than this many typical intervals.
const GAP_FACTOR: f64 = 5.0;

#[derive(Clone, Debug)]
pub(crate) struct Preprocessor {
    kind: SeriesKind,
    last_t: Option<f64>,
    last_raw: f64,
    /// Running mean of the interval between samples (seconds); 0 until known.
    interval: f64,
    intervals_seen: u32,
}

impl Preprocessor {
    pub(crate) fn new(kind: SeriesKind) -> Self {
        Self {
            kind,
            last_t: None,
            last_raw: 0.0,
            interval: 0.0,
            intervals_seen: 0,
        }
    }

    pub(crate) fn prepare(&mut self, t: f64, v: f64) -> Prepared {
        if !v.is_finite() || !t.is_finite() {
            return Prepared::Missing;
        }
        let Some(last_t) = self.last_t else {
            self.last_t = Some(t);
            self.last_raw = v;
            return match self.kind {
                SeriesKind::Gauge => Prepared::Value(v as f32),
                SeriesKind::Counter => Prepared::Missing,
            };
        };
        let dt = t - last_t;
        if dt <= 0.0 {
            // Out of order or duplicate time: keep the newest value for gauges (its
            // difference is still meaningful), skip for counters (no rate without time).
            if self.kind == SeriesKind::Counter {
                return Prepared::Missing;
            }
            self.last_raw = v;
            return Prepared::Value(v as f32);
        }
        let gap = self.intervals_seen >= 8 && dt > GAP_FACTOR * self.interval;
        if !gap {
            // Slow running mean over ~32 intervals; gaps do not count as intervals.
            self.intervals_seen = self.intervals_seen.saturating_add(1);
            let w = 1.0 / f64::from(self.intervals_seen.min(32));
            self.interval += w * (dt - self.interval);
        }
        let prev = self.last_raw;
        self.last_t = Some(t);
        self.last_raw = v;
        let x = match self.kind {
            SeriesKind::Gauge => v,
            SeriesKind::Counter => {
                // A drop is a reset: the counter restarted from 0 and counted v since.
                let increase = if v >= prev { v - prev } else { v };
                increase / dt
            }
        };
        if gap {
            Prepared::AfterGap(x as f32)
        } else {
            Prepared::Value(x as f32)
        }
    }
}
