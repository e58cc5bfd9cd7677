//! The names of what the timeout detector produces, defined once (constants only; imports
//! nothing): the alert rules and the anomaly detector's exclusion list import them.

pub const BLOCKED_THREADS: &str = "lookout_blocked_threads";
pub const SUSPECTS: &str = "lookout_timeout_suspects";
