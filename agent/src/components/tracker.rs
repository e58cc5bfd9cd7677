//! The agent's side of each `[[tracker]]`: settings from the config, and the task that runs it.

use super::Components;
use crate::config::TrackerConfig;
use crate::context::Context;
use crate::tracker::Tracker;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// What `/v1/proxy/{service}` lets through for one tracker (from its `[[tracker]]` table).
#[derive(Clone, Debug)]
pub struct ProxyPolicy {
    pub methods: Vec<http::Method>,
    pub max_request_body: u64,
    pub max_response_body: u64,
    pub idle_timeout: Duration,
}

impl From<&TrackerConfig> for ProxyPolicy {
    fn from(c: &TrackerConfig) -> Self {
        Self {
            methods: c.methods.iter().filter_map(|m| m.parse().ok()).collect(),
            max_request_body: c.max_request_body,
            max_response_body: c.max_response_body,
            idle_timeout: c.idle_timeout.get(),
        }
    }
}

/// Start every `[[tracker]]` of this generation and publish them for the HTTP handlers and
/// the caches. Called before the caches start: a cache source may be `{ primary = ... }`.
pub fn start_all(
    ctx: &Context,
    configs: &[TrackerConfig],
    components: &Arc<Components>,
    tasks: &mut JoinSet<()>,
) {
    let mut trackers = BTreeMap::new();
    let mut policies = BTreeMap::new();
    for config in configs {
        policies.insert(config.service.clone(), Arc::new(ProxyPolicy::from(config)));
        match Tracker::new(ctx, config) {
            Ok(t) => {
                tasks.spawn(t.clone().run(ctx.shutdown.clone()));
                trackers.insert(config.service.clone(), t);
            }
            Err(e) => tracing::error!(service = %config.service, "tracker not started: {e}"),
        }
    }
    components.proxy_policies.store(Arc::new(policies));
    components.trackers.store(Arc::new(trackers));
}
