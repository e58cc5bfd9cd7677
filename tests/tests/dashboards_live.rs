//! Every query of every dashboard panel, sent to a real Prometheus that scrapes a real agent.
//!
//! The agent watches real child processes (one over its expected thread count, so
//! ThreadCountAboveExpected fires; one restarted; one that never becomes ready), runs two
//! caches over a `file://` blob tier (one healthy, one whose source file is deleted once it
//! serves, so source errors are counted), tracks the primary of a replicated service made of two
//! `lookout-test-replica` processes (throttled by a slow primary, then failed over) and of one
//! whose replicas are all down, sends its alerts to an Alertmanager address nobody listens on
//! (so notifications fail and spool), and runs both detectors. Prometheus scrapes it every
//! second. Then each panel's query, with the dashboard's variables substituted (datasource,
//! job = lookout, instance = the agent, every other variable = All, `$__rate_interval` = 10s),
//! goes to Prometheus's HTTP API as Grafana would send it (an instant query for instant
//! targets, a range query and an instant query otherwise). A parse error or an empty result
//! fails the test, with the list of every failing panel.

mod dashboards_support;
#[path = "tracker_support/mod.rs"]
mod tracker_support;

use dashboards_support::*;
use lookout_e2e::prometheus::{Prometheus, urlencode};
use lookout_e2e::{Agent, KillOnDrop, free_port, http_get, spawn_test_child, wait_for};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracker_support::{Replica, concurrent_statuses, failover, start_replicas};

const CHILD: &str = env!("CARGO_BIN_EXE_lookout-test-child");

/// Grafana's `$__rate_interval` is at least four scrape intervals; Prometheus scrapes every
/// second here, and the data must cover the window.
const RATE_INTERVAL: &str = "10s";
const INTERVAL: &str = "2s";
const RANGE: &str = "5m";
/// How long Prometheus collects before the first round of queries.
const MIN_DATA: Duration = Duration::from_secs(15);
/// How long the test keeps re-asking while some query is still empty (metrics that appear
/// only after their first event, detectors that need a few samples).
const DEADLINE: Duration = Duration::from_secs(45);

fn spawn_child(threads: usize, ready_after: f64, port: u16) -> KillOnDrop {
    spawn_test_child(CHILD, threads, ready_after, port)
}

fn service_toml(name: &str, port: u16, expected: u64, budget: &str) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nmatch = {{ cmdline = 'lookout-test-child .*--port {port}$' }}\nready = {{ tcp = \"127.0.0.1:{port}\" }}\nexpected_max_threads = {expected}\ncold_start_budget = \"{budget}\"\n\n"
    )
}

/// One query to Prometheus's HTTP API: the result array, or the error Prometheus gave.
fn prom_get(prom: &Prometheus, path_and_query: &str) -> Result<Vec<Value>, String> {
    let (status, body) =
        http_get(&prom.url(path_and_query)).ok_or_else(|| "no answer".to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {} {}",
            v["errorType"].as_str().unwrap_or(""),
            v["error"].as_str().unwrap_or(&body)
        ));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn instant(prom: &Prometheus, q: &str) -> Result<Vec<Value>, String> {
    prom_get(prom, &format!("/api/v1/query?query={}", urlencode(q)))
}

fn range(prom: &Prometheus, q: &str, seconds: u64) -> Result<Vec<Value>, String> {
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    prom_get(
        prom,
        &format!(
            "/api/v1/query_range?query={}&start={:.3}&end={:.3}&step=2",
            urlencode(q),
            end - seconds as f64,
            end
        ),
    )
}

/// A query a dashboard sends, where it comes from, and how Grafana sends it.
struct PanelQuery {
    at: String,
    promql: String,
    instant_only: bool,
}

/// Every panel target and every query variable of every dashboard, variables substituted.
fn all_queries(instance: &str) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for d in load_all() {
        // Every variable but job and instance is left at All, as a first visit shows it.
        let mut values: Vec<(String, String)> = vec![
            ("job".into(), "lookout".into()),
            ("instance".into(), instance.into()),
            ("datasource".into(), "prometheus".into()),
        ];
        for v in d.variables() {
            let name = v["name"].as_str().unwrap_or("");
            if v["type"] == "query" && name != "job" && name != "instance" {
                values.push((name.into(), v["allValue"].as_str().unwrap_or(".+").into()));
            }
        }
        let values: Vec<(&str, &str)> = values
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let sub = |q: &str| substitute(q, RATE_INTERVAL, INTERVAL, RANGE, &values);
        for v in d.variables() {
            if v["type"] != "query" {
                continue;
            }
            let name = v["name"].as_str().unwrap_or("?");
            let (selector, label) = variable_query(v)
                .and_then(parse_label_values)
                .unwrap_or_else(|| panic!("{}: variable {name} is not label_values()", d.file));
            out.push(PanelQuery {
                at: format!("{} variable {name}", d.file),
                // label_values(sel, l) lists the values of l over the series of sel.
                promql: format!("count by ({label}) ({})", sub(&selector)),
                instant_only: true,
            });
        }
        for (p, t) in d.targets() {
            let Some(expr) = t["expr"].as_str() else {
                continue;
            };
            out.push(PanelQuery {
                at: format!(
                    "{} panel '{}' {}",
                    d.file,
                    p["title"].as_str().unwrap_or(""),
                    t["refId"].as_str().unwrap_or("")
                ),
                promql: sub(expr),
                instant_only: t["instant"] == true && t["range"] != true,
            });
        }
    }
    out
}

/// Run every query; the failures as readable lines.
fn failures(prom: &Prometheus, queries: &[PanelQuery]) -> Vec<String> {
    let mut out = Vec::new();
    for q in queries {
        let mut results = vec![("instant", instant(prom, &q.promql))];
        if !q.instant_only {
            results.push(("range", range(prom, &q.promql, 30)));
        }
        for (kind, r) in results {
            match r {
                Err(e) => out.push(format!("{}: {kind} query {:?} failed: {e}", q.at, q.promql)),
                Ok(v) if v.is_empty() => out.push(format!(
                    "{}: {kind} query {:?} returned nothing",
                    q.at, q.promql
                )),
                Ok(_) => {}
            }
        }
    }
    out
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `n` concurrent GETs through the agent's proxy; their status codes.
fn burst(agent: &Agent, path: &str, n: usize) -> Vec<u16> {
    concurrent_statuses(std::iter::repeat_n(agent.url(path), n))
}

#[test]
fn every_panel_query_returns_data_from_a_real_agent() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();

    // Watched services: "busy" over its expected thread count (ThreadCountAboveExpected),
    // "api" restarted once (two cold starts, a restart), "stuck" never ready
    // (ServiceStuckInitializing, initializing seconds).
    let (busy_port, api_port, stuck_port) = (free_port(), free_port(), free_port());
    let _busy = spawn_child(12, 0.2, busy_port);
    let first_api = spawn_child(3, 0.5, api_port);
    let _stuck = spawn_child(2, 600.0, stuck_port);

    // Caches: "fleet" over a real file, "flaky" over a file deleted once the agent is ready.
    let source = work.path().join("fleet.json");
    std::fs::write(&source, br#"{"feature": true}"#).unwrap();
    let flaky_source = work.path().join("flaky.json");
    std::fs::write(&flaky_source, br#"{"flaky": 1}"#).unwrap();
    let blob = work.path().join("blob");
    std::fs::create_dir_all(&blob).unwrap();

    // Trackers: "configsvc" over two replicas; "ghost" over replicas nobody runs.
    let replicas: Vec<Replica> = start_replicas(2, "421");
    let ghost = [free_port(), free_port()];

    let dead_alertmanager = free_port();
    let mut config = String::new();
    config += &service_toml("busy", busy_port, 4, "30s");
    config += &service_toml("api", api_port, 50, "30s");
    config += &service_toml("stuck", stuck_port, 50, "2s");
    for (name, path) in [("fleet", &source), ("flaky", &flaky_source)] {
        config += &format!(
            "[[cache]]\nname = \"{name}\"\nsource = {{ file = \"{}\" }}\nblob = \"file://{}\"\ncheck_interval = \"1s\"\nrefresh_interval = \"3s\"\nsource_timeout = \"2s\"\n\n",
            path.display(),
            blob.display()
        );
    }
    config += &format!(
        "[[tracker]]\nservice = \"configsvc\"\ndiscovery = {{ http = [\"{}\", \"{}\"] }}\nmax_in_flight = 1\nqueue_timeout = \"50ms\"\nrequest_timeout = \"3s\"\ndiscovery_timeout = \"500ms\"\n\n",
        replicas[0].url, replicas[1].url
    );
    config += &format!(
        "[[tracker]]\nservice = \"ghost\"\ndiscovery = {{ http = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"] }}\ndiscovery_timeout = \"200ms\"\n\n",
        ghost[0], ghost[1]
    );
    config += &format!(
        "[detectors.anomaly]\nenabled = true\n\n[detectors.timeout]\nenabled = true\nsample_hz = 10\n\n\
         [alerts]\nalertmanager = [\"http://127.0.0.1:{dead_alertmanager}\"]\nresend_interval = \"2s\"\n\n\
         [alerts.rules.ThreadCountAboveExpected]\nfor = \"1s\"\n"
    );
    let agent = Agent::start(&config);
    // Ready = every cache serves a version (and the agent's own cold start is measured).
    agent.wait_ready(Duration::from_secs(30));
    std::fs::remove_file(&flaky_source).unwrap();
    let target = format!("127.0.0.1:{}", agent.port);
    let prom = Prometheus::start(std::slice::from_ref(&target));
    let prom_started = Instant::now();

    // Restart "api" once it has started: a restart and a second cold start.
    wait_for("api ready", Duration::from_secs(15), || {
        agent
            .metric(
                "lookout_service_cold_start_seconds_count",
                &[("service", "api")],
            )
            .filter(|c| *c >= 1.0)
    });
    drop(first_api);
    let _api = spawn_child(3, 0.5, api_port);

    // The tracker: a slow primary and a burst through max_in_flight = 1 (throttled requests),
    // then a failover to the second replica.
    wait_for("configsvc primary known", Duration::from_secs(15), || {
        agent
            .metric("lookout_primary_up", &[("service", "configsvc")])
            .filter(|v| *v == 1.0)
    });
    for r in &replicas {
        r.set(json!({"delay_ms": 600, "delay_prob": 1.0}));
    }
    let statuses = burst(&agent, "/v1/proxy/configsvc/item", 8);
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "expected served and throttled requests, got {statuses:?}"
    );
    for r in &replicas {
        r.set(json!({"delay_ms": 0}));
    }
    failover(&replicas, 1, 2, "421");
    let statuses = burst(&agent, "/v1/proxy/configsvc/after-failover", 1);
    assert_eq!(statuses, vec![200], "request after failover");

    // The alert of this scenario fires, so its panels have something to show.
    wait_for(
        "ThreadCountAboveExpected firing",
        Duration::from_secs(20),
        || {
            let (_, body) = agent.get("/api/v1/alerts")?;
            body.contains("ThreadCountAboveExpected").then_some(())
        },
    );

    // Every runbook a dashboard links is served by the agent.
    let mut linked = std::collections::BTreeSet::new();
    for d in load_all() {
        for p in d.panels() {
            for l in p["links"].as_array().into_iter().flatten() {
                if let Some((_, name)) = l["url"].as_str().and_then(|u| u.rsplit_once("/runbooks/"))
                {
                    linked.insert(name.to_string());
                }
            }
        }
    }
    assert!(!linked.is_empty());
    for name in &linked {
        let status = agent.get(&format!("/runbooks/{name}")).map(|(s, _)| s);
        assert_eq!(status, Some(200), "runbook {name} linked from a panel");
    }

    let queries = all_queries(&target);
    assert!(queries.len() > 50, "only {} queries found", queries.len());
    std::thread::sleep(MIN_DATA.saturating_sub(prom_started.elapsed()));
    let deadline = Instant::now() + DEADLINE;
    let mut failed = failures(&prom, &queries);
    while !failed.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(3));
        failed = failures(&prom, &queries);
    }
    eprintln!(
        "{} queries of {} dashboards checked in {:?}",
        queries.len(),
        load_all().len(),
        started.elapsed()
    );
    let log = agent.log();
    let tail: Vec<String> = log.lines().rev().take(20).map(strip_ansi).collect();
    assert!(
        failed.is_empty(),
        "{} of {} panel queries failed:\n{}\n\nagent log, last lines first:\n{}",
        failed.len(),
        queries.len(),
        failed.join("\n"),
        tail.join("\n")
    );

    // Beyond "not empty": a few panels show what the scenario did.
    let panel = |file: &str, title: &str| -> &PanelQuery {
        queries
            .iter()
            .find(|q| q.at.starts_with(&format!("{file} panel '{title}'")))
            .unwrap_or_else(|| panic!("no panel {title:?} in {file}"))
    };
    let series = |q: &PanelQuery| instant(&prom, &q.promql).unwrap();
    let value = |s: &Value| s["value"][1].as_str().unwrap().parse::<f64>().unwrap();

    let firing = series(panel("lookout-fleet.json", "Firing alerts"));
    assert!(
        firing
            .iter()
            .any(|s| s["metric"]["alertname"] == "ThreadCountAboveExpected"),
        "the firing alert is not in the fleet's alert table: {firing:?}"
    );
    let ratio = series(panel(
        "lookout-fleet.json",
        "Service threads / expected max (worst 10)",
    ));
    let busy = ratio
        .iter()
        .find(|s| s["metric"]["service"] == "busy")
        .unwrap_or_else(|| panic!("busy not among the worst thread ratios: {ratio:?}"));
    assert_eq!(
        value(busy),
        13.0 / 4.0,
        "busy: 12 parked + main thread over 4"
    );
    let primary = series(panel("lookout-trackers.json", "Primary known"));
    let known = |svc: &str| {
        primary
            .iter()
            .find(|s| s["metric"]["service"] == svc)
            .map(value)
    };
    assert_eq!(known("configsvc"), Some(1.0), "{primary:?}");
    assert_eq!(known("ghost"), Some(0.0), "{primary:?}");
}
