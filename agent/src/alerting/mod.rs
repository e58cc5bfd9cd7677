//! Alerting: rules over agent signals and detector findings, the Alertmanager notifier with
//! its on-disk spool, and the runbooks served at `/runbooks/{AlertName}`.

pub mod http;
pub mod names;
