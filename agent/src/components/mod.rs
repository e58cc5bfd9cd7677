//! Where everything a config generation runs is started — probes, trackers, caches, detectors
//! and alerts — and [`Components`], the one view through which the HTTP handlers reach what
//! is running. The daemon calls [`start`] once per generation and owns nothing else.
//!
//! Dependencies point one way: this module knows every component; no component knows this
//! module or the daemon. What a component publishes for the handlers (a cache, a tracker, the
//! active alerts) it is handed as a slot of [`Components`].

pub mod cache;
pub mod tracker;

use crate::config::Config;
use crate::context::Context;
use crate::probes::{ProbeMetrics, host::HostProbe, service::ServiceWatcher};
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// The components of the current generation that HTTP handlers reach by name. Each map is
/// swapped whole when a generation starts, so no request sees half of two configs.
#[derive(Default)]
pub struct Components {
    pub caches: ArcSwap<BTreeMap<String, Arc<lookout_cache::Cache>>>,
    pub trackers: ArcSwap<BTreeMap<String, Arc<lookout_tracker::Tracker>>>,
    /// What the proxy lets through, per tracker (stored before `trackers`).
    pub proxy_policies: ArcSwap<BTreeMap<String, Arc<tracker::ProxyPolicy>>>,
    pub alerts: Arc<crate::alerting::AlertsView>,
    /// The alerting state one generation hands to the next (not for handlers).
    pub alerting: Arc<crate::alerting::Handoff>,
}

/// Start everything `config` asks for; every task stops when `ctx.shutdown` is cancelled.
pub fn start(
    ctx: &Context,
    config: &Config,
    components: &Arc<Components>,
    tasks: &mut JoinSet<()>,
) {
    start_probes(ctx, config, tasks);
    // Trackers first: a cache whose source is `{ primary = .. }` looks its tracker up.
    tracker::start_all(ctx, &config.trackers, components, tasks);
    cache::start_all(ctx, config, components, tasks);
    if config.detectors.anomaly.enabled {
        crate::anomaly::start(ctx, config.agent.interval.get(), tasks);
    }
    crate::timeout::start(ctx, config, tasks);
    crate::alerting::start(ctx, config, &components.alerts, &components.alerting, tasks);
}

/// The host probe (with the agent itself) and one watcher per `[[service]]`; the `probes`
/// readiness gate opens once each has finished its first cycle.
fn start_probes(ctx: &Context, config: &Config, tasks: &mut JoinSet<()>) {
    let token = ctx.shutdown.clone();
    let interval = config.agent.interval.get();
    let metrics = ProbeMetrics::new(ctx);

    // The daemon closes it before the first generation; a reload keeps the agent ready.
    ctx.readiness
        .wait_for_first("probes", "the first probe cycle has not finished");
    let mut firsts = Vec::new();

    {
        let mut probe = HostProbe::new(ctx, metrics.clone());
        let token = token.clone();
        let heartbeat = ctx.heartbeat.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        firsts.push(rx);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tx = Some(tx);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {
                        probe.tick();
                        heartbeat.beat();
                        if let Some(tx) = tx.take() { let _ = tx.send(()); }
                    }
                }
            }
        });
    }

    // Watched services; a reload that removes one stops its watcher, which forgets it.
    for svc in &config.services {
        let watcher = ServiceWatcher::new(svc.clone(), metrics.clone(), interval);
        let (tx, rx) = tokio::sync::oneshot::channel();
        firsts.push(rx);
        tasks.spawn(watcher.run(token.clone(), tx));
    }

    let readiness = ctx.readiness.clone();
    tasks.spawn(async move {
        for rx in firsts {
            let _ = rx.await;
        }
        readiness.open("probes");
    });
}
