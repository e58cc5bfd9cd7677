//! The agent's side of each `[[tracker]]` (the tracker itself is the `lookout-tracker`
//! crate): its discovery and settings from the config, the task that runs it, and the export
//! of its status as the gauges of CONTRACT.md and the running totals the alert rules read.

use super::Components;
use crate::config::{self, TrackerConfig};
use crate::context::Context;
use crate::series::SeriesKey;
use lookout_tracker::{Discovery, Settings, Tracker, TrackerError, names};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

/// How often the gauges are refreshed besides on every published generation: in-flight
/// requests change with every request, and a store write per request would cost too much.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The discovery of a `[[tracker]]`, as the library takes it.
pub fn discovery(d: &config::Discovery) -> Discovery {
    match d {
        config::Discovery::Http(replicas) => {
            Discovery::Http(replicas.iter().map(|u| u.as_str().to_string()).collect())
        }
        config::Discovery::Etcd(e) => Discovery::Etcd {
            endpoints: e.endpoints.iter().map(|u| u.as_str().to_string()).collect(),
            election: e.election.clone(),
        },
    }
}

/// The tunables of a `[[tracker]]`.
pub fn settings(c: &TrackerConfig) -> Settings {
    Settings::default()
        .max_in_flight(c.max_in_flight)
        .request_timeout(c.request_timeout.get())
        .discovery_timeout(c.discovery_timeout.get())
        .queue_timeout(c.queue_timeout.get())
        .max_attempts(c.max_attempts)
        .failover_statuses(c.failover_statuses.clone())
}

/// The tracker of one `[[tracker]]` table; nothing runs yet.
pub fn build(ctx: &Context, c: &TrackerConfig) -> Result<Arc<Tracker>, TrackerError> {
    Tracker::new(
        &c.service,
        &discovery(&c.discovery),
        settings(c),
        &ctx.meter,
    )
}

/// Start every `[[tracker]]` of this generation and publish them for the HTTP handlers and
/// the caches. Called before the caches start: a cache source may be `{ primary = ... }`.
pub fn start_all(
    ctx: &Context,
    configs: &[TrackerConfig],
    components: &Arc<Components>,
    tasks: &mut JoinSet<()>,
) {
    let mut trackers = BTreeMap::new();
    for config in configs {
        match build(ctx, config) {
            Ok(t) => {
                tasks.spawn(export(ctx.clone(), t.clone()));
                tasks.spawn(t.clone().run(ctx.shutdown.clone()));
                trackers.insert(config.service.clone(), t);
            }
            Err(e) => tracing::error!(service = %config.service, "tracker not started: {e}"),
        }
    }
    components.trackers.store(Arc::new(trackers));
}

/// Follow one tracker until the generation stops: its gauges on every published generation
/// and once a second; removed when it stops.
async fn export(ctx: Context, tracker: Arc<Tracker>) {
    let mut events = tracker.subscribe();
    let g = |name, help| ctx.series.gauge(&ctx.meter, name, help, "");
    let generation = g(
        names::PRIMARY_GENERATION,
        "Generation of the tracker's view of the primary; grows with every discovery",
    );
    let up = g(
        names::PRIMARY_UP,
        "1 while the tracker knows a primary, else 0",
    );
    let in_flight = g(
        names::IN_FLIGHT,
        "Requests currently at the primary through the tracker",
    );
    let service = tracker.service().to_string();
    let publish = |st: &lookout_tracker::TrackerStatus| {
        let labels = [("service", service.as_str())];
        generation.set(&labels, st.generation as f64);
        up.set(&labels, if st.primary.is_some() { 1.0 } else { 0.0 });
        in_flight.set(&labels, st.in_flight as f64);
        for (series, n) in [
            (names::PRIMARY_CHANGES_TOTAL, st.changes),
            (names::THROTTLED_TOTAL, st.throttled),
        ] {
            ctx.series
                .record(&SeriesKey::new(series, &labels), n as f64);
        }
    };
    publish(&tracker.status());
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = tick.tick() => {}
            e = events.recv() => match e {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
        publish(&tracker.status());
    }
    for gauge in [&generation, &up, &in_flight] {
        gauge.remove_where("service", &service);
    }
    for name in [names::PRIMARY_CHANGES_TOTAL, names::THROTTLED_TOTAL] {
        ctx.series.remove_matching(name, "service", &service);
    }
}
