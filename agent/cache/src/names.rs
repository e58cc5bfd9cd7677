//! The metric names of a cache, defined once. The first three are this crate's own
//! OpenTelemetry instruments; the rest are what a host exports from [`crate::CacheStatus`]
//! (the agent's gauges, label `cache`) and the running totals its alert rules read. Prometheus
//! adds `_total` to the counters: [`SOURCE_LOADS_TOTAL`] and [`ERRORS_TOTAL`] are those names.

/// Counter, labels `cache`, `outcome` (`ok`, `error`).
pub const SOURCE_LOADS: &str = "lookout_cache_source_loads";
/// Counter, labels `cache`, `kind` ([`crate::CacheError::kind`]).
pub const ERRORS: &str = "lookout_cache_errors";
/// Histogram, labels `cache`, `phase` (`check`, `fetch`, `source`, `publish`).
pub const REFRESH_DURATION_SECONDS: &str = "lookout_cache_refresh_duration_seconds";

/// [`SOURCE_LOADS`] as Prometheus exposes it.
pub const SOURCE_LOADS_TOTAL: &str = "lookout_cache_source_loads_total";
/// [`ERRORS`] as Prometheus exposes it.
pub const ERRORS_TOTAL: &str = "lookout_cache_errors_total";

/// Gauge: the version served ([`crate::CacheStatus::version`]).
pub const VERSION: &str = "lookout_cache_version";
/// Gauge: the blob tier's version at the last check.
pub const BLOB_VERSION: &str = "lookout_cache_blob_version";
/// Gauge: versions behind the blob tier.
pub const VERSION_LAG: &str = "lookout_cache_version_lag";
/// Gauge: seconds since the last successful check against the blob tier.
pub const STALENESS_SECONDS: &str = "lookout_cache_staleness_seconds";
/// Gauge: 1 when the last blob operation succeeded, 0 when failing.
pub const BLOB_UP: &str = "lookout_cache_blob_up";
