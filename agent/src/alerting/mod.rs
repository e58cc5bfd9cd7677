//! Alerting: rules over agent signals and detector findings, the Alertmanager notifier with
//! its on-disk spool, and the runbooks served at `/runbooks/{AlertName}`.
//!
//! Flow, once per `agent.interval`: [`rules`] find the subjects whose condition holds, the
//! [`engine`] applies `for`, hysteresis and inhibition and says which notifications are due,
//! those go to the [`spool`] (one queue per Alertmanager), and one [`notifier`] task per
//! Alertmanager drains its queue. `/api/v1/alerts` (in `crate::http`) shows the engine's
//! active alerts, published in the [`AlertsView`] this module is handed.
//!
//! The engine, the spool and the Alertmanager clock estimates outlive a config generation:
//! a stopping generation hands them to the next through the [`Handoff`] it is given (a slot
//! of `components::Components`, which outlives generations), which resolves at once what
//! the new config no longer has. When the agent itself stops (`Context::stopping`), every
//! firing alert is resolved and the resolutions are delivered before the process exits
//! (bounded by [`FINAL_FLUSH`]; what does not make it stays in the spool for the next start).

pub mod engine;
pub mod names;
pub mod notifier;
pub mod rules;
pub mod runbooks;
pub mod spool;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::context::{Context, Finding};
use engine::{ApiAlert, Engine, Scope, Stamp};
use rules::{EvalInput, Facts};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinSet;

/// What `/api/v1/alerts` serves: the engine's latest view, swapped whole after each evaluation.
pub type AlertsView = arc_swap::ArcSwap<Vec<ApiAlert>>;

/// Findings the rules look back over.
const RECENT_FINDINGS: usize = 200;

/// The agent's own base URL as people reach it: `agent.listen`, with a wildcard address
/// replaced by the host name (a link to 0.0.0.0 leads nowhere).
pub fn agent_base_url(config: &Config, host: &str) -> String {
    let listen = &config.agent.listen.0;
    let (addr, port) = listen.rsplit_once(':').unwrap_or((listen.as_str(), "9464"));
    let addr = match addr {
        "0.0.0.0" | "[::]" | "::" | "" => host,
        other => other,
    };
    format!("http://{addr}:{port}")
}

/// `runbook_base_url` (ending in `/`), or this agent's `/runbooks/`.
pub fn runbook_base(config: &Config, host: &str) -> String {
    let base = config.alerts.runbook_base_url.trim();
    if base.is_empty() {
        format!("{}/runbooks/", agent_base_url(config, host))
    } else if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    }
}

/// The config numbers the rules compare against.
pub fn facts(config: &Config) -> Facts {
    Facts {
        cold_start_budget: config
            .services
            .iter()
            .map(|s| (s.name.clone(), s.cold_start_budget.get().as_secs_f64()))
            .collect(),
        check_interval: config
            .caches
            .iter()
            .map(|c| (c.name.clone(), c.check_interval.get().as_secs_f64()))
            .collect(),
    }
}

/// How long a stopping agent spends delivering its final resolutions (within the daemon's
/// stop grace); what does not make it stays in the spool for the next start.
pub const FINAL_FLUSH: Duration = Duration::from_secs(2);
/// How often the disk is probed while the spool cannot write to it.
const DISK_CHECK_EVERY: Duration = Duration::from_secs(5);

/// What a stopping config generation hands to the next: the engine (firing alerts, pending
/// resolutions and their re-send clocks), the spool and the Alertmanager clock estimates.
struct Carried {
    engine: Engine,
    spool: Arc<Mutex<spool::Spool>>,
    clocks: Arc<notifier::Clocks>,
}

/// The slot in which one generation leaves the alerting state for the next.
#[derive(Default)]
pub struct Handoff(Mutex<Option<Carried>>);

impl Handoff {
    fn put(&self, carried: Carried) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(carried);
    }

    fn take(&self) -> Option<Carried> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The subjects a config has: what alerts may be about.
pub fn scope(config: &Config) -> Scope {
    let mut services: std::collections::BTreeSet<String> =
        config.services.iter().map(|s| s.name.clone()).collect();
    services.insert(crate::probes::names::SELF_SERVICE.to_string());
    Scope {
        services,
        caches: config.caches.iter().map(|c| c.name.clone()).collect(),
        trackers: config.trackers.iter().map(|t| t.service.clone()).collect(),
        anomaly: config.detectors.anomaly.enabled,
        timeout: config.detectors.timeout.enabled,
    }
}

/// The alerting's own metrics.
#[derive(Clone)]
struct Meters {
    firing: crate::series::Gauge,
    depth: crate::series::Gauge,
    memory_only: crate::series::Gauge,
    disk_failing: crate::series::Gauge,
    write_errors: opentelemetry::metrics::Counter<u64>,
    notifications: opentelemetry::metrics::Counter<u64>,
    store: Arc<crate::series::SeriesStore>,
}

impl Meters {
    fn new(ctx: &Context) -> Self {
        let m = Self {
            firing: ctx.series.gauge(
                &ctx.meter,
                names::metrics::ALERTS_FIRING,
                "Alerts firing now, per alert name and severity",
                "",
            ),
            depth: ctx.series.gauge(
                &ctx.meter,
                names::metrics::SPOOL_DEPTH,
                "Alert notifications not yet taken by an Alertmanager (summed over Alertmanagers; at most one per alert each)",
                "",
            ),
            memory_only: ctx.series.gauge(
                &ctx.meter,
                rules::series::SPOOL_MEMORY_ONLY,
                "Alert notifications held only in memory because the disk refused them",
                "",
            ),
            disk_failing: ctx.series.gauge(
                &ctx.meter,
                rules::series::SPOOL_DISK_FAILING,
                "1 while the disk refuses writes of the alert spool or state, else 0",
                "",
            ),
            write_errors: ctx
                .meter
                .u64_counter(names::metrics::SPOOL_WRITE_ERRORS)
                .with_description("Writes of the alert spool or state the disk refused")
                .build(),
            notifications: ctx
                .meter
                .u64_counter(
                    names::metrics::NOTIFICATIONS
                        .strip_suffix("_total")
                        .unwrap_or(names::metrics::NOTIFICATIONS),
                )
                .with_description(
                    "Alert notifications by outcome: sent, failed (retried), rejected (malformed, dropped), dropped (spool bound)",
                )
                .build(),
            store: ctx.series.clone(),
        };
        // Every series exists from the start, so that rate() and absent() queries work at once.
        for outcome in ["sent", "failed", "rejected", "dropped"] {
            m.notifications
                .add(0, &[opentelemetry::KeyValue::new("outcome", outcome)]);
        }
        m.write_errors.add(0, &[]);
        m
    }

    /// The spool gauges from the spool; new write errors added to the counter.
    fn spool(&self, s: &mut spool::Spool) {
        self.depth.set(&[], s.depth() as f64);
        self.memory_only.set(&[], s.memory_only() as f64);
        self.disk_failing
            .set(&[], if s.failing().is_some() { 1.0 } else { 0.0 });
        let new = s.take_new_errors();
        if new > 0 {
            self.write_errors.add(new, &[]);
        }
    }

    /// The running total of notices the spool's bound dropped, into the series store (once
    /// per evaluation) for `LookoutAlertSpoolFailing`; the exported counter is counted
    /// where they are dropped.
    fn dropped_total(&self, s: &spool::Spool) {
        self.store.record(
            &crate::series::SeriesKey::new(
                names::metrics::NOTIFICATIONS,
                &[("outcome", "dropped")],
            ),
            s.dropped_total() as f64,
        );
    }

    fn count_dropped(&self, dropped: usize) {
        if dropped > 0 {
            self.notifications.add(
                dropped as u64,
                &[opentelemetry::KeyValue::new("outcome", "dropped")],
            );
        }
    }

    /// The spool's series, and its drops in the log (at most once a minute).
    fn spool_tick(&self, s: &mut spool::Spool) {
        self.dropped_total(s);
        if let Some(dropped) = s.drops_to_report() {
            tracing::error!(
                dropped,
                total = s.dropped_total(),
                "alert spool at its bound (alerts.spool_max): dropped firing notifications (re-sends of alerts Alertmanager holds first, else the oldest; re-queued at their next resend; resolutions are never dropped)"
            );
        }
    }
}

/// Queue notices for every Alertmanager.
fn push_all(spool: &Mutex<spool::Spool>, notices: Vec<engine::Notice>, meters: &Meters) {
    if notices.is_empty() {
        return;
    }
    let mut s = spool.lock().unwrap_or_else(|p| p.into_inner());
    for n in notices {
        let p = s.push(n);
        meters.count_dropped(p.dropped);
    }
}

/// Start the engine (and one delivery task per Alertmanager) for this config generation,
/// continuing the previous generation's state when there is one.
pub fn start(
    ctx: &Context,
    config: &Config,
    view: &Arc<AlertsView>,
    handoff: &Arc<Handoff>,
    tasks: &mut JoinSet<()>,
) {
    let alerts = &config.alerts;
    if alerts.rules.contains_key(names::LOOKOUT_AGENT_DOWN) {
        tracing::warn!(
            "[alerts.rules.LookoutAgentDown] has no effect in the agent: that alert is evaluated by a central Prometheus (alerts/lookout.rules.yml)"
        );
    }
    let resend = alerts.resend_interval.get();
    let base = agent_base_url(config, &ctx.host);
    let stamp = Stamp {
        host: ctx.host.clone(),
        runbook_base: runbook_base(config, &ctx.host),
        generator_url: format!("{base}/api/v1/alerts"),
        resend_secs: resend.as_secs_f64(),
    };
    let dir = ctx.data_dir.join("alerts");
    let targets: Vec<String> = alerts
        .alertmanager
        .iter()
        .map(|u| u.as_str().to_string())
        .collect();
    let now = ctx.series.now() as f64;
    let wall = SystemTime::now();
    let meters = Meters::new(ctx);
    let Carried {
        mut engine,
        spool,
        clocks,
    } = match handoff.take() {
        Some(c) => c,
        None => {
            let mut state_error = None;
            if let Err(e) = spool::private_dir(&dir) {
                state_error = Some(e);
            }
            let engine = Engine::new(engine::configured_rules(alerts), stamp.clone())
                .with_state_file(dir.join("state.json"), now);
            let mut s = spool::Spool::open(&dir.join("spool"), alerts.spool_max, &targets);
            if let Some(e) = state_error {
                s.note_disk_error(&dir, &e);
            }
            Carried {
                engine,
                spool: Arc::new(Mutex::new(s)),
                clocks: Arc::default(),
            }
        }
    };
    engine.reconfigure(
        engine::configured_rules(alerts),
        stamp,
        scope(config),
        now,
        wall,
    );
    {
        let mut s = spool.lock().unwrap_or_else(|p| p.into_inner());
        s.set_targets(&targets);
        // A reload may change the bound: a smaller one applies now, not at the next push.
        let dropped = s.set_max(alerts.spool_max);
        meters.count_dropped(dropped);
        meters.spool_tick(&mut s);
    }
    let facts = facts(config);

    // The budgets the rules compare to, exported so that central rules use the same numbers.
    let budget = ctx.series.gauge(
        &ctx.meter,
        names::metrics::COLD_START_BUDGET,
        "The configured cold_start_budget of a watched service",
        "s",
    );
    let check_interval = ctx.series.gauge(
        &ctx.meter,
        names::metrics::CACHE_CHECK_INTERVAL,
        "The configured check_interval of a cache",
        "s",
    );
    for (s, secs) in &facts.cold_start_budget {
        budget.set(&[("service", s)], *secs);
    }
    for (c, secs) in &facts.check_interval {
        check_interval.set(&[("cache", c)], *secs);
    }

    let on_change = {
        let spool = spool.clone();
        let meters = meters.clone();
        Arc::new(move || {
            let mut s = spool.lock().unwrap_or_else(|p| p.into_inner());
            meters.spool(&mut s);
        }) as Arc<dyn Fn() + Send + Sync>
    };
    on_change();

    lookout_common::install_tls_provider();
    let client = reqwest::Client::builder()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let sender = {
        let (spool, client, clocks, meters, on_change) = (
            spool.clone(),
            client.clone(),
            clocks.clone(),
            meters.clone(),
            on_change.clone(),
        );
        move |target: &String| {
            notifier::Sender::new(
                target.clone(),
                spool.clone(),
                client.clone(),
                resend,
                meters.notifications.clone(),
                clocks.clone(),
                on_change.clone(),
            )
        }
    };
    let (wake_tx, wake_rx) = tokio::sync::watch::channel(0u64);
    for target in &targets {
        tasks.spawn(sender(target).run(wake_rx.clone(), ctx.shutdown.clone()));
    }

    let ctx = ctx.clone();
    let view = view.clone();
    let handoff = handoff.clone();
    let interval = config.agent.interval.get();
    let history = config.agent.history;
    tasks.spawn(async move {
        let mut recent: VecDeque<Finding> = VecDeque::new();
        let mut last_seq = 0;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pushed = 0u64;
        let mut settled = false;
        let mut last_disk_check = Instant::now();
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            for f in ctx.findings.since(last_seq) {
                last_seq = last_seq.max(f.seq);
                if recent.len() == RECENT_FINDINGS {
                    recent.pop_front();
                }
                recent.push_back(f);
            }
            // This generation's probes have run once: a subject without series is gone.
            settled = settled || !ctx.readiness.blocking().iter().any(|(g, _)| g == "probes");
            let findings: Vec<Finding> = recent.iter().cloned().collect();
            let input = EvalInput {
                series: &ctx.series,
                now: ctx.series.now() as f64,
                history,
                facts: &facts,
                findings: &findings,
                settled,
            };
            let notices = engine.evaluate(&input, SystemTime::now());
            let any = !notices.is_empty();
            push_all(&spool, notices, &meters);
            {
                let mut s = spool.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = engine.persist() {
                    s.note_disk_error(&ctx.data_dir.join("alerts/state.json"), &e);
                }
                if s.failing().is_some() && last_disk_check.elapsed() >= DISK_CHECK_EVERY {
                    last_disk_check = Instant::now();
                    s.check_disk();
                    if s.failing().is_none() {
                        // The disk is back: the state may be behind the engine.
                        if let Err(e) = engine.persist() {
                            s.note_disk_error(&ctx.data_dir.join("alerts/state.json"), &e);
                        }
                    }
                }
            }
            if any {
                pushed += 1;
                let _ = wake_tx.send(pushed);
            }
            on_change();
            meters.spool_tick(&mut spool.lock().unwrap_or_else(|p| p.into_inner()));
            for ((name, severity), n) in engine.firing_counts() {
                meters
                    .firing
                    .set(&[("alertname", name), ("severity", severity)], n as f64);
            }
            view.store(Arc::new(engine.active()));
        }

        if ctx.stopping.is_cancelled() {
            // The agent stops: resolve everything now and deliver it before the process
            // exits, as far as FINAL_FLUSH allows.
            let notices = engine.resolve_all(ctx.series.now() as f64, SystemTime::now());
            let count = notices.len();
            push_all(&spool, notices, &meters);
            if let Err(e) = engine.persist() {
                spool
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .note_disk_error(&ctx.data_dir.join("alerts/state.json"), &e);
            }
            view.store(Arc::new(engine.active()));
            let deadline = Instant::now() + FINAL_FLUSH;
            let mut senders: Vec<notifier::Sender> = targets.iter().map(&sender).collect();
            let done =
                futures::future::join_all(senders.iter_mut().map(|s| s.drain(deadline))).await;
            tracing::info!(
                resolved = count,
                delivered_everywhere = done.iter().all(|d| *d),
                "agent stopping: firing alerts resolved"
            );
        } else if let Err(e) = engine.persist() {
            tracing::warn!("cannot save the alert state: {e}");
        }
        // This generation's labels go; the next generation (if any) sets its own.
        for name in engine.rules().iter().map(|r| r.def.name) {
            meters.firing.remove_where("alertname", name);
        }
        for s in facts.cold_start_budget.keys() {
            budget.remove_where("service", s);
        }
        for c in facts.check_interval.keys() {
            check_interval.remove_where("cache", c);
        }
        handoff.put(Carried {
            engine,
            spool,
            clocks,
        });
    });
}
