//! The tracker's own instruments (names in [`crate::names`], label `service`): counters and
//! histograms through the OpenTelemetry API. The request path touches only those; what a host
//! exports as gauges (generation, up, in flight) it reads from [`crate::Tracker::status`].

use crate::names;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the seconds without a primary are added up.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const OUTCOMES: [&str; 5] = ["ok", "error", "failed", "throttled", "no_primary"];

pub(super) struct TrackerMetrics {
    service_attr: [KeyValue; 1],
    outcome_attrs: Vec<[KeyValue; 2]>,
    changes: Counter<u64>,
    unavailable: Counter<f64>,
    requests: Counter<u64>,
    throttled: Counter<u64>,
    discovery_duration: Histogram<f64>,
    request_duration: Histogram<f64>,
    pub(super) changes_total: AtomicU64,
    pub(super) throttled_total: AtomicU64,
}

impl TrackerMetrics {
    pub(super) fn new(m: &Meter, service: &str) -> Self {
        let buckets = lookout_common::LATENCY_BUCKETS.to_vec();
        Self {
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
            changes: m
                .u64_counter(names::PRIMARY_CHANGES)
                .with_description("Times the tracked primary changed")
                .build(),
            unavailable: m
                .f64_counter(names::PRIMARY_UNAVAILABLE_SECONDS)
                .with_description("Seconds during which no primary was known")
                .with_unit("s")
                .build(),
            requests: m
                .u64_counter(names::REQUESTS)
                .with_description("Requests through the tracker, by outcome")
                .build(),
            throttled: m
                .u64_counter(names::THROTTLED)
                .with_description(
                    "Requests refused because max_in_flight stayed full for queue_timeout",
                )
                .build(),
            discovery_duration: m
                .f64_histogram(names::DISCOVERY_DURATION_SECONDS)
                .with_description("Time one primary discovery took")
                .with_unit("s")
                .with_boundaries(buckets.clone())
                .build(),
            request_duration: m
                .f64_histogram(names::REQUEST_DURATION_SECONDS)
                .with_description("Time a request through the tracker took, retries included")
                .with_unit("s")
                .with_boundaries(buckets)
                .build(),
            changes_total: AtomicU64::new(0),
            throttled_total: AtomicU64::new(0),
        }
    }

    /// A new primary was found (losing one is not a change of primary; finding one again is).
    pub(super) fn primary_found(&self) {
        self.changes.add(1, &self.service_attr);
        self.changes_total.fetch_add(1, Ordering::Relaxed);
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

    /// Once a second: add the time without a primary to its counter.
    pub(super) async fn sample_until(
        &self,
        has_primary: impl Fn() -> bool,
        token: CancellationToken,
    ) {
        let mut last = Instant::now();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            if !has_primary() {
                self.unavailable
                    .add(now.duration_since(last).as_secs_f64(), &self.service_attr);
            }
            last = now;
        }
    }
}
