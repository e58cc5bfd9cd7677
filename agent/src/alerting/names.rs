//! Every alert name of the contract (and `LookoutAlertSpoolFailing`, added by the agent's
//! spool, see alerts/README.md). Rules, runbooks and tests are checked against this list.

pub const THREAD_COUNT_ABOVE_EXPECTED: &str = "ThreadCountAboveExpected";
pub const THREAD_LIMIT_NEAR: &str = "ThreadLimitNear";
pub const THREAD_LEAK_SUSPECTED: &str = "ThreadLeakSuspected";
pub const COLD_START_SLOW: &str = "ColdStartSlow";
pub const SERVICE_STUCK_INITIALIZING: &str = "ServiceStuckInitializing";
pub const CACHE_VERSION_LAG: &str = "CacheVersionLag";
pub const CACHE_STALE: &str = "CacheStale";
pub const CACHE_SOURCE_FAILING: &str = "CacheSourceFailing";
pub const CACHE_BLOB_UNAVAILABLE: &str = "CacheBlobUnavailable";
pub const CACHE_CORRUPT_BLOB: &str = "CacheCorruptBlob";
pub const PRIMARY_UNAVAILABLE: &str = "PrimaryUnavailable";
pub const PRIMARY_FLAPPING: &str = "PrimaryFlapping";
pub const TRACKER_THROTTLING: &str = "TrackerThrottling";
pub const ANOMALY_DETECTED: &str = "AnomalyDetected";
pub const TIMEOUT_BUG_SUSPECTED: &str = "TimeoutBugSuspected";
pub const TIMEOUT_STORM: &str = "TimeoutStorm";
pub const TIMEOUT_TOO_LARGE: &str = "TimeoutTooLarge";
pub const LOOKOUT_AGENT_DOWN: &str = "LookoutAgentDown";
pub const LOOKOUT_ALERT_SPOOL_FAILING: &str = "LookoutAlertSpoolFailing";

pub const ALL: &[&str] = &[
    THREAD_COUNT_ABOVE_EXPECTED,
    THREAD_LIMIT_NEAR,
    THREAD_LEAK_SUSPECTED,
    COLD_START_SLOW,
    SERVICE_STUCK_INITIALIZING,
    CACHE_VERSION_LAG,
    CACHE_STALE,
    CACHE_SOURCE_FAILING,
    CACHE_BLOB_UNAVAILABLE,
    CACHE_CORRUPT_BLOB,
    PRIMARY_UNAVAILABLE,
    PRIMARY_FLAPPING,
    TRACKER_THROTTLING,
    ANOMALY_DETECTED,
    TIMEOUT_BUG_SUSPECTED,
    TIMEOUT_STORM,
    TIMEOUT_TOO_LARGE,
    LOOKOUT_AGENT_DOWN,
    LOOKOUT_ALERT_SPOOL_FAILING,
];

/// The metrics the alerting itself produces (`alerting/mod.rs`), for the rules, the anomaly
/// detector's exclusion list and the tests. Constants only, like the alert names above.
pub mod metrics {
    pub const ALERTS_FIRING: &str = "lookout_alerts_firing";
    pub const SPOOL_DEPTH: &str = "lookout_alert_spool_depth";
    pub const COLD_START_BUDGET: &str = "lookout_service_cold_start_budget_seconds";
    pub const CACHE_CHECK_INTERVAL: &str = "lookout_cache_check_interval_seconds";
    pub const SPOOL_DISK_FAILING: &str = "lookout_alert_spool_disk_failing";
    pub const SPOOL_MEMORY_ONLY: &str = "lookout_alert_spool_memory_only";
    /// The notifier's counter (label `outcome`), Prometheus name. Its `outcome="dropped"`
    /// total is also kept in the series store, for `LookoutAlertSpoolFailing`.
    pub const NOTIFICATIONS: &str = "lookout_alert_notifications_total";
    /// Counter: writes of the spool or state the disk refused (exported with `_total`).
    pub const SPOOL_WRITE_ERRORS: &str = "lookout_alert_spool_write_errors";
}
