//! The agent's side of each `[[tracker]]`: settings from the config, and the task that runs it.

use super::Components;
use crate::config::TrackerConfig;
use crate::context::Context;
use crate::tracker::Tracker;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Start every `[[tracker]]` of this generation and publish them for the HTTP handlers and
/// the caches. Called before the caches start: a cache source may be `{ primary = ... }`.
pub fn start_all(
    ctx: &Context,
    configs: &[TrackerConfig],
    components: &Arc<Components>,
    tasks: &mut JoinSet<()>,
) {
    let mut trackers = BTreeMap::new();
    for config in configs {
        match Tracker::new(ctx, config) {
            Ok(t) => {
                tasks.spawn(t.clone().run(ctx.shutdown.clone()));
                trackers.insert(config.service.clone(), t);
            }
            Err(e) => tracing::error!(service = %config.service, "tracker not started: {e}"),
        }
    }
    components.trackers.store(Arc::new(trackers));
}
