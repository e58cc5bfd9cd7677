//! lookout: a host agent for observability and AIOps.
//!
//! See ARCHITECTURE.md at the repository root for the map of this crate.

pub mod alerting;
pub mod anomaly;
pub mod chart;
pub mod components;
pub mod config;
pub mod context;
pub mod daemon;
pub mod eval;
pub mod http;
pub mod probes;
pub mod series;
pub mod systemd;
pub mod telemetry;
pub mod timeout;
