//! The names of what the timeout detector produces, defined once (constants only; imports
//! nothing): the alert rules and the anomaly detector's exclusion list import them.

pub const BLOCKED_THREADS: &str = "lookout_blocked_threads";
pub const SUSPECTS: &str = "lookout_timeout_suspects";
/// Gauge: threads of a watched service the sampler cannot read (no file descriptor left).
pub const UNSAMPLED_THREADS: &str = "lookout_timeout_unsampled_threads";
/// Counter: samples of a thread that failed (the thread or process went away, or no fd).
pub const SAMPLE_ERRORS: &str = "lookout_timeout_sample_errors";
