//! The metric names of a tracker, defined once (label `service`). The first six are this
//! crate's own OpenTelemetry instruments; the gauges are what a host exports from
//! [`crate::Tracker::status`], and the `_TOTAL` names are the Prometheus names of the counters
//! whose running totals a host's alert rules read.

/// Counter: times the primary changed.
pub const PRIMARY_CHANGES: &str = "lookout_primary_changes";
/// Counter (seconds): time without a known primary.
pub const PRIMARY_UNAVAILABLE_SECONDS: &str = "lookout_primary_unavailable_seconds";
/// Counter, label `outcome` (`ok`, `error`, `failed`, `throttled`, `no_primary`).
pub const REQUESTS: &str = "lookout_tracker_requests";
/// Counter: requests refused because `max_in_flight` stayed full for `queue_timeout`.
pub const THROTTLED: &str = "lookout_tracker_throttled";
/// Histogram: one discovery.
pub const DISCOVERY_DURATION_SECONDS: &str = "lookout_primary_discovery_duration_seconds";
/// Histogram: one request through the tracker, retries included.
pub const REQUEST_DURATION_SECONDS: &str = "lookout_tracker_request_duration_seconds";

/// [`PRIMARY_CHANGES`] as Prometheus exposes it.
pub const PRIMARY_CHANGES_TOTAL: &str = "lookout_primary_changes_total";
/// [`REQUESTS`] as Prometheus exposes it.
pub const REQUESTS_TOTAL: &str = "lookout_tracker_requests_total";
/// [`PRIMARY_UNAVAILABLE_SECONDS`] as Prometheus exposes it.
pub const PRIMARY_UNAVAILABLE_SECONDS_TOTAL: &str = "lookout_primary_unavailable_seconds_total";
/// [`THROTTLED`] as Prometheus exposes it.
pub const THROTTLED_TOTAL: &str = "lookout_tracker_throttled_total";

/// Gauge: the generation of the tracker's view ([`crate::TrackerStatus::generation`]).
pub const PRIMARY_GENERATION: &str = "lookout_primary_generation";
/// Gauge: 1 while a primary is known.
pub const PRIMARY_UP: &str = "lookout_primary_up";
/// Gauge: requests at the primary now.
pub const IN_FLIGHT: &str = "lookout_tracker_in_flight";
