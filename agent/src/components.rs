//! Where each component of a config generation is started: caches, trackers, detectors and
//! alerts. Each line belongs to its component; the daemon calls [`start`] once per generation.

use crate::config::Config;
use crate::context::Context;
use crate::daemon::Components;
use std::sync::Arc;
use tokio::task::JoinSet;

pub fn start(
    ctx: &Context,
    config: &Config,
    components: &Arc<Components>,
    tasks: &mut JoinSet<()>,
) {
    // Trackers first: a cache whose source is `{ primary = .. }` looks its tracker up.
    crate::tracker::start_all(ctx, &config.trackers, components, tasks);
    crate::cache::start_all(ctx, config, components, tasks);
    if config.detectors.anomaly.enabled {
        crate::anomaly::start(ctx, config.agent.interval.get(), tasks);
    }
    crate::timeout::start(ctx, config, tasks);
    crate::alerting::start(ctx, config, components, tasks);
}
