//! The tracker's signals (names of CONTRACT.md, label `service`). Gauges go through the series
//! store so the alert engine reads them; counters the alerts need are mirrored there as running
//! totals. The request path touches only counters and histograms; gauges that would cost a
//! store write per request (`in_flight`) are sampled once a second instead.

use super::{Snapshot, Tracker};
use crate::context::Context;
use crate::series::{Gauge, SeriesKey, SeriesStore};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const OUTCOMES: [&str; 5] = ["ok", "error", "failed", "throttled", "no_primary"];

pub(super) struct TrackerMetrics {
    service: String,
    series: Arc<SeriesStore>,
    service_attr: [KeyValue; 1],
    outcome_attrs: Vec<[KeyValue; 2]>,
    generation: Gauge,
    up: Gauge,
    in_flight: Gauge,
    changes: Counter<u64>,
    unavailable: Counter<f64>,
    requests: Counter<u64>,
    throttled: Counter<u64>,
    discovery_duration: Histogram<f64>,
    request_duration: Histogram<f64>,
    changes_total: AtomicU64,
    throttled_total: AtomicU64,
}

impl TrackerMetrics {
    pub(super) fn new(ctx: &Context, service: &str) -> Self {
        let m = &ctx.meter;
        let s = &ctx.series;
        let buckets = crate::telemetry::LATENCY_BUCKETS.to_vec();
        let me = Self {
            service: service.to_string(),
            series: s.clone(),
            service_attr: [KeyValue::new("service", service.to_string())],
            outcome_attrs: OUTCOMES
                .iter()
                .map(|o| {
                    [
                        KeyValue::new("service", service.to_string()),
                        KeyValue::new("outcome", *o),
                    ]
                })
                .collect(),
            generation: s.gauge(
                m,
                "lookout_primary_generation",
                "Generation of the tracker's view of the primary; grows with every discovery",
                "",
            ),
            up: s.gauge(
                m,
                "lookout_primary_up",
                "1 while the tracker knows a primary, else 0",
                "",
            ),
            in_flight: s.gauge(
                m,
                "lookout_tracker_in_flight",
                "Requests currently at the primary through the tracker",
                "",
            ),
            changes: m
                .u64_counter("lookout_primary_changes")
                .with_description("Times the tracked primary changed")
                .build(),
            unavailable: m
                .f64_counter("lookout_primary_unavailable_seconds")
                .with_description("Seconds during which no primary was known")
                .with_unit("s")
                .build(),
            requests: m
                .u64_counter("lookout_tracker_requests")
                .with_description("Requests through the tracker, by outcome")
                .build(),
            throttled: m
                .u64_counter("lookout_tracker_throttled")
                .with_description(
                    "Requests refused because max_in_flight stayed full for queue_timeout",
                )
                .build(),
            discovery_duration: m
                .f64_histogram("lookout_primary_discovery_duration_seconds")
                .with_description("Time one primary discovery took")
                .with_unit("s")
                .with_boundaries(buckets.clone())
                .build(),
            request_duration: m
                .f64_histogram("lookout_tracker_request_duration_seconds")
                .with_description("Time a request through the tracker took, retries included")
                .with_unit("s")
                .with_boundaries(buckets)
                .build(),
            changes_total: AtomicU64::new(0),
            throttled_total: AtomicU64::new(0),
        };
        me.up.set(&[("service", service)], 0.0);
        me.generation.set(&[("service", service)], 0.0);
        me.mirror();
        me
    }

    fn labels(&self) -> [(&str, &str); 1] {
        [("service", self.service.as_str())]
    }

    fn mirror(&self) {
        let labels = self.labels();
        self.series.record(
            &SeriesKey::new("lookout_primary_changes_total", &labels),
            self.changes_total.load(Ordering::Relaxed) as f64,
        );
        self.series.record(
            &SeriesKey::new("lookout_tracker_throttled_total", &labels),
            self.throttled_total.load(Ordering::Relaxed) as f64,
        );
    }

    pub(super) fn generation(&self, snap: &Snapshot) {
        self.generation.set(&self.labels(), snap.generation as f64);
    }

    pub(super) fn primary_changed(&self, snap: &Snapshot) {
        self.generation(snap);
        self.up.set(
            &self.labels(),
            if snap.primary.is_some() { 1.0 } else { 0.0 },
        );
        // Losing the primary is not a change of primary; finding one (again) is.
        if snap.primary.is_some() {
            self.changes.add(1, &self.service_attr);
            self.changes_total.fetch_add(1, Ordering::Relaxed);
            self.mirror();
        }
    }

    pub(super) fn throttled(&self) {
        self.throttled.add(1, &self.service_attr);
        self.throttled_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn discovery_duration(&self, took: Duration) {
        self.discovery_duration
            .record(took.as_secs_f64(), &self.service_attr);
    }

    pub(super) fn request(&self, took: Duration, outcome: &'static str) {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(1);
        self.requests.add(1, &self.outcome_attrs[i]);
        self.request_duration
            .record(took.as_secs_f64(), &self.service_attr);
    }

    /// Once a second: in-flight, up, unavailable seconds and the series-store mirrors.
    pub(super) async fn sample_until(&self, tracker: &Tracker, token: CancellationToken) {
        let mut last = Instant::now();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let snap = tracker.snapshot();
            if snap.primary.is_none() {
                self.unavailable
                    .add(now.duration_since(last).as_secs_f64(), &self.service_attr);
            }
            last = now;
            let labels = self.labels();
            self.in_flight.set(&labels, tracker.in_flight() as f64);
            self.up
                .set(&labels, if snap.primary.is_some() { 1.0 } else { 0.0 });
            self.generation(&snap);
            self.mirror();
        }
    }

    /// The tracker is gone (config reload removed it): drop its gauges.
    pub(super) fn forget(&self) {
        for g in [&self.generation, &self.up, &self.in_flight] {
            g.remove_where("service", &self.service);
        }
        for name in [
            "lookout_primary_changes_total",
            "lookout_tracker_throttled_total",
        ] {
            self.series.remove_matching(name, "service", &self.service);
        }
    }
}
