//! The names of what the HTTP server produces, defined once. Constants only: this module
//! imports nothing, so the anomaly filter and the status page may use it without a cycle.

/// Gauge: open connections to the agent's API (sampled by the daemon once a second).
pub const CONNECTIONS: &str = "lookout_http_connections";
