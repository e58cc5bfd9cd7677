//! Alerting: rules over agent signals and detector findings, the Alertmanager notifier with
//! its on-disk spool, and the runbooks served at `/runbooks/{AlertName}`.
//!
//! Flow, once per `agent.interval`: [`rules`] find the subjects whose condition holds, the
//! [`engine`] applies `for`, hysteresis and inhibition and says which notifications are due,
//! those go to the [`spool`] on disk, and one [`notifier`] task per Alertmanager drains it.
//! `/api/v1/alerts` (in `crate::http`) shows the engine's active alerts, published in the
//! [`AlertsView`] this module is handed.

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
use engine::{ApiAlert, Engine, Stamp};
use rules::{EvalInput, Facts};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
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

/// Start the engine (and one delivery task per Alertmanager) for this config generation.
pub fn start(ctx: &Context, config: &Config, view: &Arc<AlertsView>, tasks: &mut JoinSet<()>) {
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
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), "cannot create the alert directory; alerts will not survive a restart: {e}");
    }
    let mut engine = Engine::new(engine::configured_rules(alerts), stamp)
        .with_state_file(dir.join("state.json"), ctx.series.now() as f64);
    let facts = facts(config);

    // The budgets the rules compare to, exported so that central rules use the same numbers.
    let budget = ctx.series.gauge(
        &ctx.meter,
        "lookout_service_cold_start_budget_seconds",
        "The configured cold_start_budget of a watched service",
        "s",
    );
    let check_interval = ctx.series.gauge(
        &ctx.meter,
        "lookout_cache_check_interval_seconds",
        "The configured check_interval of a cache",
        "s",
    );
    for (s, secs) in &facts.cold_start_budget {
        budget.set(&[("service", s)], *secs);
    }
    for (c, secs) in &facts.check_interval {
        check_interval.set(&[("cache", c)], *secs);
    }

    let firing = ctx.series.gauge(
        &ctx.meter,
        "lookout_alerts_firing",
        "Alerts firing now, per alert name and severity",
        "",
    );
    let spool_depth = ctx.series.gauge(
        &ctx.meter,
        "lookout_alert_spool_depth",
        "Alert notifications on disk not yet taken by every Alertmanager",
        "",
    );
    let notifications = ctx
        .meter
        .u64_counter("lookout_alert_notifications")
        .with_description(
            "Alert notifications by outcome: sent, failed (retried), rejected, dropped (spool full)",
        )
        .build();
    // Every outcome exists from the start, so that rate() and absent() queries work at once.
    for outcome in ["sent", "failed", "rejected", "dropped"] {
        notifications.add(0, &[opentelemetry::KeyValue::new("outcome", outcome)]);
    }

    let targets: Vec<String> = alerts
        .alertmanager
        .iter()
        .map(|u| u.as_str().to_string())
        .collect();
    let spool = if targets.is_empty() {
        None
    } else {
        match spool::Spool::open(&dir.join("spool"), alerts.spool_max, &targets) {
            Ok(s) => Some(Arc::new(Mutex::new(s))),
            Err(e) => {
                tracing::error!("{e}; alerts are only shown at /api/v1/alerts and logged");
                None
            }
        }
    };
    let depth_now = {
        let spool = spool.clone();
        let gauge = spool_depth.clone();
        Arc::new(move || {
            let depth = spool
                .as_ref()
                .map_or(0, |s| s.lock().unwrap_or_else(|p| p.into_inner()).depth());
            gauge.set(&[], depth as f64);
        }) as Arc<dyn Fn() + Send + Sync>
    };
    depth_now();

    let (wake_tx, wake_rx) = tokio::sync::watch::channel(0u64);
    if let Some(spool) = &spool {
        let client = reqwest::Client::builder()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        for target in &targets {
            let delivery = notifier::Delivery {
                target: target.clone(),
                spool: spool.clone(),
                client: client.clone(),
                resend,
                notifications: notifications.clone(),
                wake: wake_rx.clone(),
                on_change: depth_now.clone(),
            };
            tasks.spawn(delivery.run(ctx.shutdown.clone()));
        }
    }

    let ctx = ctx.clone();
    let view = view.clone();
    let interval = config.agent.interval.get();
    let history = config.agent.history;
    let names: Vec<&'static str> = engine.rules().iter().map(|r| r.def.name).collect();
    tasks.spawn(async move {
        let mut recent: VecDeque<Finding> = VecDeque::new();
        let mut last_seq = 0;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pushed = 0u64;
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
            let findings: Vec<Finding> = recent.iter().cloned().collect();
            let input = EvalInput {
                series: &ctx.series,
                now: ctx.series.now() as f64,
                history,
                facts: &facts,
                findings: &findings,
            };
            let notices = engine.evaluate(&input, SystemTime::now());
            if let Some(spool) = &spool
                && !notices.is_empty()
            {
                let mut s = spool.lock().unwrap_or_else(|p| p.into_inner());
                for n in notices {
                    match s.push(n) {
                        Ok(p) if p.dropped > 0 => {
                            tracing::error!(
                                dropped = p.dropped,
                                "alert spool full: dropped the oldest notifications"
                            );
                            notifications.add(
                                p.dropped as u64,
                                &[opentelemetry::KeyValue::new("outcome", "dropped")],
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("cannot spool an alert notification: {e}"),
                    }
                }
                drop(s);
                pushed += 1;
                let _ = wake_tx.send(pushed);
            }
            depth_now();
            for ((name, severity), n) in engine.firing_counts() {
                firing.set(&[("alertname", name), ("severity", severity)], n as f64);
            }
            view.store(Arc::new(engine.active()));
        }
        // This generation's labels go; the next generation (if any) sets its own.
        for name in names {
            firing.remove_where("alertname", name);
        }
        for s in facts.cold_start_budget.keys() {
            budget.remove_where("service", s);
        }
        for c in facts.check_interval.keys() {
            check_interval.remove_where("cache", c);
        }
    });
}
