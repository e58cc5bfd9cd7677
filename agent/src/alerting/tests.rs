//! Unit tests of the rules and the engine, driven by writing the signals' series into a real
//! [`SeriesStore`] along a replayed timeline: every agent rule is fired by its own scenario
//! (and the coverage test checks that no alert name is left without one), plus `for`,
//! hysteresis, re-send, resolution, overrides, inhibition, persistence and the quiet defaults
//! on a healthy busy host.

use super::engine::{Engine, Notice, RESOLVED_RESEND_FOR, Scope, Stamp, configured_rules};
use super::names::*;
use super::rules::{EvalInput, Facts, series};
use crate::config::{AlertRuleConfig, AlertsConfig, Duration, Severity};
use crate::context::Finding;
use crate::series::{SeriesKey, SeriesStore};
use std::sync::Arc;
use std::time::SystemTime;

const HISTORY: usize = 600;

struct Harness {
    store: Arc<SeriesStore>,
    engine: Engine,
    facts: Facts,
    findings: Vec<Finding>,
}

fn stamp() -> Stamp {
    Stamp {
        host: "web-17".into(),
        runbook_base: "http://127.0.0.1:9464/runbooks/".into(),
        generator_url: "http://127.0.0.1:9464/api/v1/alerts".into(),
        resend_secs: 60.0,
    }
}

impl Harness {
    fn new(config: &AlertsConfig) -> Self {
        let mut facts = Facts::default();
        facts.cold_start_budget.insert("api".into(), 60.0);
        facts.check_interval.insert("fleet".into(), 5.0);
        Self {
            store: SeriesStore::new(HISTORY),
            engine: Engine::new(configured_rules(config), stamp()),
            facts,
            findings: Vec::new(),
        }
    }

    fn set(&self, name: &str, labels: &[(&str, &str)], t: f64, v: f64) {
        self.store
            .record_at(&SeriesKey::new(name, labels), t as f32, v);
    }

    fn eval(&mut self, t: f64) -> Vec<Notice> {
        let input = EvalInput {
            series: &self.store,
            now: t,
            history: HISTORY,
            facts: &self.facts,
            findings: &self.findings,
            settled: true,
        };
        self.engine.evaluate(&input, SystemTime::now())
    }
}

fn firing<'a>(notices: &'a [Notice], name: &str) -> Option<&'a Notice> {
    notices
        .iter()
        .find(|n| n.labels["alertname"] == name && !n.is_resolved())
}

/// One scenario per agent rule: writes the series (at time `t`) that make its condition hold,
/// and the subject label it must carry.
type Scenario = (
    &'static str,
    fn(&mut Harness, f64),
    (&'static str, &'static str),
);

fn scenarios() -> Vec<Scenario> {
    vec![
        (
            THREAD_COUNT_ABOVE_EXPECTED,
            |h, t| {
                h.set(series::THREADS, &[("service", "api")], t, 620.0);
                h.set(
                    series::THREAD_LIMIT,
                    &[("service", "api"), ("kind", "expected")],
                    t,
                    500.0,
                );
            },
            ("service", "api"),
        ),
        (
            THREAD_LIMIT_NEAR,
            |h, t| {
                h.set(series::THREADS, &[("service", "api")], t, 3900.0);
                h.set(
                    series::THREAD_LIMIT,
                    &[("service", "api"), ("kind", "rlimit_nproc")],
                    t,
                    4096.0,
                );
            },
            ("service", "api"),
        ),
        (
            THREAD_LEAK_SUSPECTED,
            |h, t| {
                // +0.5 thread/s from 100 towards an expected maximum of 1000 (far from it now).
                h.set(
                    series::THREADS,
                    &[("service", "api")],
                    t,
                    100.0 + 0.5 * t.min(1200.0),
                );
                h.set(
                    series::THREAD_LIMIT,
                    &[("service", "api"), ("kind", "expected")],
                    t,
                    1000.0,
                );
            },
            ("service", "api"),
        ),
        (
            COLD_START_SLOW,
            |h, t| {
                h.set(series::LAST_COLD_START, &[("service", "api")], t, 95.0);
            },
            ("service", "api"),
        ),
        (
            SERVICE_STUCK_INITIALIZING,
            |h, t| {
                h.set(series::INITIALIZING, &[("service", "api")], t, 30.0 + t);
            },
            ("service", "api"),
        ),
        (
            CACHE_VERSION_LAG,
            |h, t| {
                h.set(series::CACHE_VERSION_LAG, &[("cache", "fleet")], t, 2.0);
            },
            ("cache", "fleet"),
        ),
        (
            CACHE_STALE,
            |h, t| {
                h.set(series::CACHE_STALENESS, &[("cache", "fleet")], t, 20.0 + t);
            },
            ("cache", "fleet"),
        ),
        (
            CACHE_SOURCE_FAILING,
            |h, t| {
                // Loads worked before the story starts, then every retry fails.
                h.set(
                    series::CACHE_SOURCE_LOADS,
                    &[("cache", "fleet"), ("outcome", "ok")],
                    t,
                    12.0,
                );
                h.set(
                    series::CACHE_SOURCE_LOADS,
                    &[("cache", "fleet"), ("outcome", "error")],
                    t,
                    (t / 30.0).floor(),
                );
            },
            ("cache", "fleet"),
        ),
        (
            CACHE_BLOB_UNAVAILABLE,
            |h, t| {
                h.set(series::CACHE_BLOB_UP, &[("cache", "fleet")], t, 0.0);
            },
            ("cache", "fleet"),
        ),
        (
            CACHE_CORRUPT_BLOB,
            |h, t| {
                h.set(
                    series::CACHE_ERRORS,
                    &[("cache", "fleet"), ("kind", "corrupt")],
                    t,
                    if t > 0.0 { 1.0 } else { 0.0 },
                );
            },
            ("cache", "fleet"),
        ),
        (
            PRIMARY_UNAVAILABLE,
            |h, t| {
                h.set(series::PRIMARY_UP, &[("service", "configsvc")], t, 0.0);
            },
            ("service", "configsvc"),
        ),
        (
            PRIMARY_FLAPPING,
            |h, t| {
                h.set(
                    series::PRIMARY_CHANGES,
                    &[("service", "configsvc")],
                    t,
                    (t / 20.0).floor(),
                );
            },
            ("service", "configsvc"),
        ),
        (
            TRACKER_THROTTLING,
            |h, t| {
                h.set(series::TRACKER_THROTTLED, &[("service", "configsvc")], t, t);
            },
            ("service", "configsvc"),
        ),
        (
            ANOMALY_DETECTED,
            |h, t| {
                if h.findings.is_empty() {
                    h.findings.push(anomaly_finding(&[
                        ("system_cpu_utilization_ratio", 0.97),
                        ("system_load_average{period=\"1m\"}", 0.91),
                    ]));
                }
                // Scored since the start: the models had time to train.
                for m in [
                    "system_cpu_utilization_ratio",
                    "system_load_average{period=\"1m\"}",
                ] {
                    h.set(series::ANOMALY_SCORE, &[("metric", m)], t, 0.9);
                }
                h.set(series::ANOMALY_EVENT, &[], t, 1.0);
            },
            ("host", "web-17"),
        ),
        (
            LOOKOUT_ALERT_SPOOL_FAILING,
            |h, t| {
                h.set(series::SPOOL_DISK_FAILING, &[], t, 1.0);
                h.set(series::SPOOL_MEMORY_ONLY, &[], t, 3.0);
            },
            ("host", "web-17"),
        ),
        (
            TIMEOUT_BUG_SUSPECTED,
            |h, t| {
                h.set(
                    series::TIMEOUT_SUSPECTS,
                    &[("service", "api"), ("kind", "missing_timeout")],
                    t,
                    2.0,
                );
            },
            ("service", "api"),
        ),
        (
            TIMEOUT_STORM,
            |h, t| {
                h.set(
                    series::TIMEOUT_SUSPECTS,
                    &[("service", "api"), ("kind", "missing_timeout")],
                    t,
                    6.0,
                );
                h.set(
                    series::TIMEOUT_SUSPECTS,
                    &[("service", "api"), ("kind", "too_small_timeout")],
                    t,
                    5.0,
                );
            },
            ("service", "api"),
        ),
        (
            TIMEOUT_TOO_LARGE,
            |h, t| {
                h.set(
                    series::TIMEOUT_SUSPECTS,
                    &[("service", "api"), ("kind", "too_large_timeout")],
                    t,
                    1.0,
                );
            },
            ("service", "api"),
        ),
    ]
}

fn anomaly_finding(top: &[(&str, f64)]) -> Finding {
    let top: Vec<serde_json::Value> = top
        .iter()
        .map(|(m, s)| serde_json::json!({"metric": m, "score": s}))
        .collect();
    let mut f = Finding::new("anomaly", "anomaly_event", "host anomaly event")
        .detail(serde_json::json!({"top": top, "rate": 0.2}));
    f.seq = 1;
    f
}

/// Replay a scenario in 10 s steps; the time of the first firing notice of `name`.
fn fire(name: &str, setup: fn(&mut Harness, f64), h: &mut Harness) -> Option<(f64, Notice)> {
    let mut t = 0.0;
    while t <= 3000.0 {
        setup(h, t);
        if let Some(n) = firing(&h.eval(t), name) {
            return Some((t, n.clone()));
        }
        t += 10.0;
    }
    None
}

#[test]
fn every_agent_alert_has_a_rule_and_a_scenario_that_fires_it() {
    let rules = configured_rules(&AlertsConfig::default());
    let scenarios = scenarios();
    for name in ALL.iter().filter(|n| **n != LOOKOUT_AGENT_DOWN) {
        assert!(
            rules.iter().any(|r| r.def.name == *name),
            "{name} has no agent rule"
        );
        assert!(
            scenarios.iter().any(|s| s.0 == *name),
            "{name} has no firing scenario"
        );
    }
    assert!(
        !rules.iter().any(|r| r.def.name == LOOKOUT_AGENT_DOWN),
        "agent cannot report its own death"
    );
}

#[test]
fn each_scenario_fires_its_alert_after_for_with_labels_and_runbook() {
    let rules = configured_rules(&AlertsConfig::default());
    for (name, setup, (label, value)) in scenarios() {
        let rule = rules.iter().find(|r| r.def.name == name).unwrap();
        let mut h = Harness::new(&AlertsConfig::default());
        let (at, n) = fire(name, setup, &mut h).unwrap_or_else(|| panic!("{name} never fired"));
        assert!(
            at >= rule.for_secs,
            "{name} fired at {at}s, before its for of {}s",
            rule.for_secs
        );
        assert!(at <= rule.for_secs + 700.0, "{name} took {at}s to fire");
        assert_eq!(n.labels["severity"], rule.severity.as_str(), "{name}");
        assert_eq!(n.labels["host"], "web-17", "{name}");
        assert_eq!(n.labels[label], value, "{name}: subject label");
        assert_eq!(
            n.annotations["runbook_url"],
            format!("http://127.0.0.1:9464/runbooks/{name}")
        );
        assert!(!n.annotations["summary"].is_empty(), "{name}");
        assert!(
            n.annotations["description"].contains("web-17"),
            "{name}: description says where"
        );
        assert!(
            n.annotations["description"].contains("firing since"),
            "{name}: and since when"
        );
        assert!(!n.starts_at.is_empty() && n.ends_at.is_none());
    }
}

#[test]
fn disabled_rule_never_fires() {
    for (name, setup, _) in scenarios() {
        let mut config = AlertsConfig::default();
        config.rules.insert(
            name.to_string(),
            AlertRuleConfig {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let mut h = Harness::new(&config);
        assert!(
            fire(name, setup, &mut h).is_none(),
            "{name} fired while disabled"
        );
    }
}

#[test]
fn overrides_change_for_severity_and_threshold() {
    let mut config = AlertsConfig::default();
    config.rules.insert(
        THREAD_COUNT_ABOVE_EXPECTED.into(),
        AlertRuleConfig {
            for_: Some(Duration::from_secs(20)),
            severity: Some(Severity::Page),
            threshold: Some(1.5),
            ..Default::default()
        },
    );
    let mut h = Harness::new(&config);
    // 620 > 500 but not > 1.5 × 500: the raised threshold keeps it quiet.
    let (_, setup, _) = scenarios()
        .into_iter()
        .find(|s| s.0 == THREAD_COUNT_ABOVE_EXPECTED)
        .unwrap();
    assert!(fire(THREAD_COUNT_ABOVE_EXPECTED, setup, &mut h).is_none());
    let mut h = Harness::new(&config);
    let (at, n) = fire(
        THREAD_COUNT_ABOVE_EXPECTED,
        |h, t| {
            h.set(series::THREADS, &[("service", "api")], t, 800.0);
            h.set(
                series::THREAD_LIMIT,
                &[("service", "api"), ("kind", "expected")],
                t,
                500.0,
            );
        },
        &mut h,
    )
    .unwrap();
    assert_eq!(at, 20.0);
    assert_eq!(n.labels["severity"], "page");
}

#[test]
fn pending_that_clears_never_fires_and_resend_resolve_follow_prometheus() {
    let mut h = Harness::new(&AlertsConfig::default());
    let key = [("cache", "fleet")];
    // Blob down for 60 s only (for = 120 s): never fires.
    for t in (0..=60).step_by(10) {
        h.set(series::CACHE_BLOB_UP, &key, t as f64, 0.0);
        assert!(h.eval(t as f64).is_empty());
    }
    h.set(series::CACHE_BLOB_UP, &key, 70.0, 1.0);
    assert!(h.eval(70.0).is_empty());
    // Down again from 100 s: fires at 220 s, re-sent every 60 s, not in between.
    let mut sent = Vec::new();
    let mut first_starts_at = String::new();
    for t in (100..=400).step_by(10) {
        h.set(series::CACHE_BLOB_UP, &key, t as f64, 0.0);
        if let Some(n) = firing(&h.eval(t as f64), CACHE_BLOB_UNAVAILABLE) {
            sent.push(t);
            first_starts_at = n.starts_at.clone();
        }
    }
    assert_eq!(sent, [220, 280, 340, 400]);
    // Recovers at 410: keep_firing_for (60 s) holds it, a blip back down does not re-page.
    let mut resolved_sends = Vec::new();
    let mut t = 410.0;
    while t < 500.0 + RESOLVED_RESEND_FOR + 300.0 {
        let up = if t == 440.0 { 0.0 } else { 1.0 };
        h.set(series::CACHE_BLOB_UP, &key, t, up);
        let notices = h.eval(t);
        // Held firing (and re-sent) until resolution; never a second alert after it.
        if let Some(n) = firing(&notices, CACHE_BLOB_UNAVAILABLE) {
            assert!(t < 500.0, "firing again at {t}");
            assert_eq!(n.starts_at, first_starts_at);
        }
        if let Some(n) = notices.iter().find(|n| n.is_resolved()) {
            assert!(n.ends_at.as_deref().unwrap() >= n.starts_at.as_str());
            resolved_sends.push(t);
        }
        t += 10.0;
    }
    // Resolved keep_firing_for (60 s) after the last bad sample (440), then re-sent every
    // resend interval for 15 minutes: 500, 560, ..., 1400.
    let expected: Vec<f64> = (0..=15).map(|i| 500.0 + 60.0 * i as f64).collect();
    assert_eq!(resolved_sends, expected);
}

#[test]
fn throttling_is_held_back_while_its_primary_is_unavailable() {
    let mut h = Harness::new(&AlertsConfig::default());
    let svc = [("service", "configsvc")];
    let other = [("service", "billing")];
    let mut throttling_for = Vec::new();
    for t in (0..=120).step_by(10) {
        let t = t as f64;
        h.set(series::PRIMARY_UP, &svc, t, 0.0);
        h.set(series::TRACKER_THROTTLED, &svc, t, t);
        h.set(series::PRIMARY_UP, &other, t, 1.0);
        h.set(series::TRACKER_THROTTLED, &other, t, t);
        for n in h.eval(t) {
            if n.labels["alertname"] == TRACKER_THROTTLING
                && !n.is_resolved()
                && !throttling_for.contains(&n.labels["service"])
            {
                throttling_for.push(n.labels["service"].clone());
            }
        }
    }
    // The other service, whose primary is fine, still gets its ticket.
    assert_eq!(throttling_for, ["billing"]);
    let active = h.engine.active();
    let held = active
        .iter()
        .find(|a| {
            a.notice.labels["alertname"] == TRACKER_THROTTLING
                && a.notice.labels["service"] == "configsvc"
        })
        .expect("held-back alert is listed");
    assert_eq!(held.status.state, "suppressed");
    assert_eq!(held.status.inhibited_by, [PRIMARY_UNAVAILABLE]);
    assert!(!held.notice.starts_at.is_empty());
    assert!(held.notice.annotations["description"].contains("held back"));
    // The primary comes back; throttling persists: now it may fire.
    let mut fired = false;
    for t in (130..=200).step_by(10) {
        let t = t as f64;
        h.set(series::PRIMARY_UP, &svc, t, 1.0);
        h.set(series::TRACKER_THROTTLED, &svc, t, t);
        fired |= h.eval(t).iter().any(|n| {
            n.labels["alertname"] == TRACKER_THROTTLING
                && n.labels["service"] == "configsvc"
                && !n.is_resolved()
        });
    }
    assert!(fired);
}

#[test]
fn healthy_busy_host_raises_nothing() {
    let mut h = Harness::new(&AlertsConfig::default());
    let mut t = 0.0;
    while t <= 3600.0 {
        // Busy: CPU at 95 %, threads swinging between 300 and 480 under a 500 expected
        // maximum, a rising-then-falling daily-ish pattern, caches current, primary known.
        let wave = ((t / 600.0) * std::f64::consts::TAU).sin();
        h.set(
            series::THREADS,
            &[("service", "api")],
            t,
            390.0 + 90.0 * wave,
        );
        h.set(
            series::THREAD_LIMIT,
            &[("service", "api"), ("kind", "expected")],
            t,
            500.0,
        );
        h.set(
            series::THREAD_LIMIT,
            &[("service", "api"), ("kind", "rlimit_nproc")],
            t,
            62_000.0,
        );
        h.set(series::SYSTEM_THREADS, &[], t, 2_400.0);
        h.set(
            series::SYSTEM_THREAD_LIMIT,
            &[("kind", "threads_max")],
            t,
            126_000.0,
        );
        h.set(
            series::SYSTEM_THREAD_LIMIT,
            &[("kind", "pid_max")],
            t,
            4_194_304.0,
        );
        h.set("system_cpu_utilization_ratio", &[], t, 0.95);
        h.set(series::LAST_COLD_START, &[("service", "api")], t, 12.0);
        h.set(series::INITIALIZING, &[("service", "api")], t, 0.0);
        h.set(series::CACHE_VERSION_LAG, &[("cache", "fleet")], t, 0.0);
        h.set(series::CACHE_STALENESS, &[("cache", "fleet")], t, t % 5.0);
        h.set(series::CACHE_BLOB_UP, &[("cache", "fleet")], t, 1.0);
        h.set(
            series::CACHE_SOURCE_LOADS,
            &[("cache", "fleet"), ("outcome", "ok")],
            t,
            (t / 300.0).floor(),
        );
        h.set(series::PRIMARY_UP, &[("service", "configsvc")], t, 1.0);
        h.set(series::PRIMARY_CHANGES, &[("service", "configsvc")], t, 1.0);
        h.set(
            series::TRACKER_THROTTLED,
            &[("service", "configsvc")],
            t,
            0.0,
        );
        h.set(series::ANOMALY_EVENT, &[], t, 0.0);
        h.set(
            series::TIMEOUT_SUSPECTS,
            &[("service", "api"), ("kind", "missing_timeout")],
            t,
            0.0,
        );
        let notices = h.eval(t);
        assert!(notices.is_empty(), "at {t}s: {notices:?}");
        t += 10.0;
    }
    assert!(h.engine.active().is_empty());
}

#[test]
fn host_wide_thread_limit_is_watched_too() {
    let mut h = Harness::new(&AlertsConfig::default());
    let (_, n) = fire(
        THREAD_LIMIT_NEAR,
        |h, t| {
            h.set(series::SYSTEM_THREADS, &[], t, 30_000.0);
            h.set(
                series::SYSTEM_THREAD_LIMIT,
                &[("kind", "threads_max")],
                t,
                126_000.0,
            );
            h.set(
                series::SYSTEM_THREAD_LIMIT,
                &[("kind", "pid_max")],
                t,
                32_768.0,
            );
        },
        &mut h,
    )
    .unwrap();
    assert_eq!(n.labels["scope"], "host");
    assert!(
        n.annotations["summary"].contains("32768"),
        "{}",
        n.annotations["summary"]
    );
}

#[test]
fn a_noisy_flat_thread_count_is_no_leak() {
    let mut h = Harness::new(&AlertsConfig::default());
    let fired = fire(
        THREAD_LEAK_SUSPECTED,
        |h, t| {
            let jitter = if (t as i64 / 10) % 2 == 0 {
                40.0
            } else {
                -40.0
            };
            h.set(series::THREADS, &[("service", "api")], t, 300.0 + jitter);
            h.set(
                series::THREAD_LIMIT,
                &[("service", "api"), ("kind", "expected")],
                t,
                500.0,
            );
        },
        &mut h,
    );
    assert!(fired.is_none());
}

#[test]
fn firing_alerts_continue_after_a_restart_and_resolve_when_gone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let config = AlertsConfig::default();
    let mut h = Harness::new(&config);
    h.engine = Engine::new(configured_rules(&config), stamp()).with_state_file(state.clone(), 0.0);
    h.set(series::LAST_COLD_START, &[("service", "api")], 0.0, 95.0);
    h.set(series::THREADS, &[("service", "api")], 0.0, 10.0);
    let first = firing(&h.eval(0.0), COLD_START_SLOW).unwrap().clone();
    h.engine.persist().unwrap();

    // A new process: the alert is still active with its original startsAt, and since the
    // condition is gone in the new store, it resolves (keep_firing_for 0) with that startsAt.
    let mut h2 = Harness::new(&config);
    h2.engine = Engine::new(configured_rules(&config), stamp()).with_state_file(state, 5.0);
    assert_eq!(h2.engine.active().len(), 1);
    assert_eq!(h2.engine.active()[0].notice.starts_at, first.starts_at);
    let notices = h2.eval(5.0);
    let resolved = notices
        .iter()
        .find(|n| n.is_resolved())
        .expect("resolution sent");
    assert_eq!(resolved.starts_at, first.starts_at);
    assert_eq!(resolved.labels, first.labels);
}

#[test]
fn timeout_findings_enrich_the_description() {
    let mut h = Harness::new(&AlertsConfig::default());
    let mut f = Finding::new("timeout", "missing_timeout", "api blocked in recvfrom")
        .label("service", "api")
        .detail(
            serde_json::json!({"pid": 42, "verdict": "missing_timeout", "findings": [
            {"kind": "missing_timeout", "tid": 4242, "syscall": "recvfrom", "timeout": "infinite",
             "blocked_seconds": 95.0, "peer": "10.0.0.7:5432", "detail": ""}]}),
        );
    f.seq = 1;
    h.findings.push(f);
    let (_, setup, _) = scenarios()
        .into_iter()
        .find(|s| s.0 == TIMEOUT_BUG_SUSPECTED)
        .unwrap();
    let (_, n) = fire(TIMEOUT_BUG_SUSPECTED, setup, &mut h).unwrap();
    let d = &n.annotations["description"];
    assert!(
        d.contains("4242") && d.contains("recvfrom") && d.contains("10.0.0.7:5432"),
        "{d}"
    );
}

#[test]
fn the_defaults_table_of_alerts_readme_matches_the_rules() {
    let readme = include_str!("../../../alerts/README.md");
    let fmt = |secs: f64| match secs as u64 {
        0 => "0s".to_string(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    for r in configured_rules(&AlertsConfig::default()) {
        let d = &r.def;
        let row = format!(
            "| [{0}](runbooks/{0}.md) | {1} | {2} | {3} | {4} | {5} |",
            d.name,
            d.severity.as_str(),
            fmt(d.for_secs),
            fmt(d.keep_firing_for_secs),
            d.threshold,
            d.threshold_meaning
        );
        assert!(
            readme.contains(&row),
            "alerts/README.md lacks or misstates:\n{row}"
        );
    }
}

fn resolved<'a>(notices: &'a [Notice], name: &str, service: &str) -> Option<&'a Notice> {
    notices.iter().find(|n| {
        n.labels["alertname"] == name
            && n.is_resolved()
            && n.labels.get("service").map(String::as_str) == Some(service)
    })
}

/// ThreadCountAboveExpected for `svc` firing at t = 0 (its for overridden to 0).
fn firing_thread_alert(h: &mut Harness, svc: &str) {
    h.set(series::THREADS, &[("service", svc)], 0.0, 620.0);
    h.set(
        series::THREAD_LIMIT,
        &[("service", svc), ("kind", "expected")],
        0.0,
        500.0,
    );
}

fn for_zero() -> AlertsConfig {
    let mut config = AlertsConfig::default();
    config.rules.insert(
        THREAD_COUNT_ABOVE_EXPECTED.into(),
        AlertRuleConfig {
            for_: Some(Duration::from_secs(0)),
            ..Default::default()
        },
    );
    config
}

#[test]
fn a_subject_that_goes_away_resolves_at_once_not_after_keep_firing_for() {
    let mut h = Harness::new(&for_zero());
    firing_thread_alert(&mut h, "api");
    firing_thread_alert(&mut h, "web");
    assert!(firing(&h.eval(0.0), THREAD_COUNT_ABOVE_EXPECTED).is_some());
    // api's process ends (its series are removed); web's threads drop below the limit.
    h.store
        .remove(&SeriesKey::new(series::THREADS, &[("service", "api")]));
    h.set(series::THREADS, &[("service", "web")], 1.0, 100.0);
    let notices = h.eval(1.0);
    assert!(
        resolved(&notices, THREAD_COUNT_ABOVE_EXPECTED, "api").is_some(),
        "{notices:?}"
    );
    // web's condition cleared: hysteresis (keep_firing_for 2m) still holds it.
    assert!(resolved(&notices, THREAD_COUNT_ABOVE_EXPECTED, "web").is_none());
    h.set(series::THREADS, &[("service", "web")], 121.0, 100.0);
    assert!(resolved(&h.eval(121.0), THREAD_COUNT_ABOVE_EXPECTED, "web").is_some());
}

#[test]
fn nothing_resolves_as_gone_before_the_probes_have_run() {
    let mut h = Harness::new(&for_zero());
    firing_thread_alert(&mut h, "api");
    assert!(firing(&h.eval(0.0), THREAD_COUNT_ABOVE_EXPECTED).is_some());
    h.store
        .remove(&SeriesKey::new(series::THREADS, &[("service", "api")]));
    let input = EvalInput {
        series: &h.store,
        now: 1.0,
        history: HISTORY,
        facts: &h.facts,
        findings: &[],
        settled: false,
    };
    assert!(h.engine.evaluate(&input, SystemTime::now()).is_empty());
    assert_eq!(h.engine.active().len(), 1);
}

#[test]
fn a_reload_resolves_what_the_new_config_lacks_and_continues_the_rest() {
    let mut h = Harness::new(&for_zero());
    for svc in ["kept", "removed", "renamed"] {
        firing_thread_alert(&mut h, svc);
    }
    h.set(series::CACHE_BLOB_UP, &[("cache", "fleet")], 0.0, 0.0);
    h.set(series::PRIMARY_UP, &[("service", "configsvc")], 0.0, 0.0);
    h.set(
        series::TIMEOUT_SUSPECTS,
        &[("service", "kept"), ("kind", "missing_timeout")],
        0.0,
        2.0,
    );
    let mut t = 0.0;
    while t <= 130.0 {
        for svc in ["kept", "removed", "renamed"] {
            h.set(series::THREADS, &[("service", svc)], t, 620.0);
        }
        h.set(series::CACHE_BLOB_UP, &[("cache", "fleet")], t, 0.0);
        h.set(series::PRIMARY_UP, &[("service", "configsvc")], t, 0.0);
        h.set(
            series::TIMEOUT_SUSPECTS,
            &[("service", "kept"), ("kind", "missing_timeout")],
            t,
            2.0,
        );
        h.eval(t);
        t += 10.0;
    }
    let names = |h: &Harness| -> Vec<String> {
        h.engine
            .active()
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a.notice.labels["alertname"],
                    a.notice
                        .labels
                        .get("service")
                        .or(a.notice.labels.get("cache"))
                        .unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        names(&h),
        [
            "CacheBlobUnavailable/fleet",
            "PrimaryUnavailable/configsvc",
            "ThreadCountAboveExpected/kept",
            "ThreadCountAboveExpected/removed",
            "ThreadCountAboveExpected/renamed",
            "TimeoutBugSuspected/kept",
        ]
    );
    let starts_before = h.engine.active()[2].notice.starts_at.clone();

    // The new config: `removed` gone, `renamed` now `renamed-2`, no cache, no tracker, the
    // timeout detector off. The stale series are still in the store: they must not matter.
    let scope = Scope {
        services: ["kept", "renamed-2"].map(String::from).into(),
        timeout: false,
        anomaly: true,
        ..Scope::default()
    };
    h.engine.reconfigure(
        configured_rules(&for_zero()),
        stamp(),
        scope,
        140.0,
        SystemTime::now(),
    );
    let notices = h.eval(140.0);
    for (name, subject) in [
        (THREAD_COUNT_ABOVE_EXPECTED, "removed"),
        (THREAD_COUNT_ABOVE_EXPECTED, "renamed"),
        (PRIMARY_UNAVAILABLE, "configsvc"),
        (TIMEOUT_BUG_SUSPECTED, "kept"),
    ] {
        assert!(
            resolved(&notices, name, subject).is_some(),
            "{name}/{subject}: {notices:?}"
        );
    }
    assert!(
        notices
            .iter()
            .any(|n| n.is_resolved() && n.labels.get("cache").is_some_and(|c| c == "fleet"))
    );
    assert_eq!(names(&h), ["ThreadCountAboveExpected/kept"]);
    // The one kept continues: same startsAt, no new notice before its resend is due.
    assert_eq!(h.engine.active()[0].notice.starts_at, starts_before);
    assert!(firing(&notices, THREAD_COUNT_ABOVE_EXPECTED).is_none());

    // A rule disabled by the next reload resolves too.
    let mut off = for_zero();
    off.rules
        .get_mut(THREAD_COUNT_ABOVE_EXPECTED)
        .unwrap()
        .enabled = Some(false);
    h.engine.reconfigure(
        configured_rules(&off),
        stamp(),
        Scope::everything(),
        150.0,
        SystemTime::now(),
    );
    assert!(resolved(&h.eval(150.0), THREAD_COUNT_ABOVE_EXPECTED, "kept").is_some());
    assert!(h.engine.active().is_empty());
}

#[test]
fn stopping_resolves_everything_firing() {
    let mut h = Harness::new(&for_zero());
    firing_thread_alert(&mut h, "api");
    h.set(series::CACHE_BLOB_UP, &[("cache", "fleet")], 0.0, 0.0);
    assert!(!h.eval(0.0).is_empty());
    let notices = h.engine.resolve_all(1.0, SystemTime::now());
    assert_eq!(
        notices.len(),
        1,
        "the pending CacheBlobUnavailable never paged"
    );
    assert!(notices[0].is_resolved());
    assert!(h.engine.active().is_empty());
}

#[test]
fn anomaly_detected_needs_trained_measurements_not_bookkeeping() {
    let run = |top: &[(&str, f64)], score_since: f64| -> bool {
        let mut h = Harness::new(&AlertsConfig::default());
        h.findings.push(anomaly_finding(top));
        let mut t = 0.0;
        while t <= 900.0 {
            for (m, _) in top {
                if t >= score_since {
                    h.set(series::ANOMALY_SCORE, &[("metric", m)], t, 0.9);
                }
            }
            h.set(series::ANOMALY_EVENT, &[], t, 1.0);
            if firing(&h.eval(t), ANOMALY_DETECTED).is_some() {
                return true;
            }
            t += 10.0;
        }
        false
    };
    let cpu = ("system_cpu_utilization_ratio", 0.97);
    let load = ("system_load_average{period=\"1m\"}", 0.9);
    assert!(run(&[cpu, load], 0.0), "two trained measurements page");
    // The agent's own bookkeeping never counts, nor its own process.
    assert!(!run(&[cpu, ("lookout_alert_spool_depth", 0.99)], 0.0));
    assert!(!run(
        &[cpu, ("process_thread_count{service=\"lookout\"}", 0.99)],
        0.0
    ));
    assert!(!run(
        &[cpu, ("lookout_alerts_firing{alertname=\"X\"}", 0.99)],
        0.0
    ));
    // One series moving is not a host anomaly, nor one metric's label sets moving together.
    assert!(!run(&[cpu], 0.0));
    assert!(!run(
        &[
            ("system_load_average{period=\"1m\"}", 0.96),
            ("system_load_average{period=\"5m\"}", 0.95),
            ("system_load_average{period=\"15m\"}", 0.91),
        ],
        0.0
    ));
    // A score an immature model may give (≤ IMMATURE_CAP) is no evidence.
    assert!(!run(&[cpu, ("system_memory_utilization_ratio", 0.4)], 0.0));
    // Series scored for under 5 minutes by the end (score series born at 700 s) page only
    // once they have been watched that long: not within this run.
    assert!(!run(&[cpu, load], 700.0));
}

#[test]
fn spool_drops_at_its_bound_raise_spool_failing_for_a_while() {
    let mut h = Harness::new(&AlertsConfig::default());
    let key = [("outcome", "dropped")];
    h.set(series::NOTIFICATIONS, &key, 0.0, 0.0);
    assert!(firing(&h.eval(0.0), LOOKOUT_ALERT_SPOOL_FAILING).is_none());
    h.set(series::NOTIFICATIONS, &key, 10.0, 0.0);
    assert!(firing(&h.eval(10.0), LOOKOUT_ALERT_SPOOL_FAILING).is_none());
    // Two dropped (a reload lowered alerts.spool_max): it fires, saying so.
    h.set(series::NOTIFICATIONS, &key, 20.0, 2.0);
    let notices = h.eval(20.0);
    let n = firing(&notices, LOOKOUT_ALERT_SPOOL_FAILING).expect("fires on drops");
    assert!(
        n.annotations["summary"].contains("dropped 2 notification"),
        "{:?}",
        n.annotations
    );
    // No more drops: it resolves once the window and keep_firing_for have passed.
    let mut t = 30.0;
    let mut resolved_at = None;
    while t < 1000.0 && resolved_at.is_none() {
        h.set(series::NOTIFICATIONS, &key, t, 2.0);
        if h.eval(t)
            .iter()
            .any(|n| n.labels["alertname"] == LOOKOUT_ALERT_SPOOL_FAILING && n.is_resolved())
        {
            resolved_at = Some(t);
        }
        t += 10.0;
    }
    let at = resolved_at.expect("resolves");
    assert!(
        at >= 20.0 + super::rules::SPOOL_DROPPED_WINDOW,
        "resolved at {at}"
    );
}

#[test]
fn a_reload_that_disables_the_anomaly_detector_resolves_its_alert_at_once() {
    let (_, setup, _) = scenarios()
        .into_iter()
        .find(|s| s.0 == ANOMALY_DETECTED)
        .unwrap();
    let mut h = Harness::new(&AlertsConfig::default());
    let (t, _) = fire(ANOMALY_DETECTED, setup, &mut h).expect("fires");
    // The detector's series are still in the store (stale); the new config has it off.
    let scope = Scope {
        anomaly: false,
        ..Scope::everything()
    };
    let rules = configured_rules(&AlertsConfig::default());
    h.engine
        .reconfigure(rules, stamp(), scope, t + 1.0, SystemTime::now());
    setup(&mut h, t + 1.0);
    let notices = h.eval(t + 1.0);
    assert!(
        notices
            .iter()
            .any(|n| n.labels["alertname"] == ANOMALY_DETECTED && n.is_resolved()),
        "{notices:?}"
    );
    setup(&mut h, t + 100.0);
    assert!(firing(&h.eval(t + 100.0), ANOMALY_DETECTED).is_none());
    assert!(h.engine.active().is_empty());
}
