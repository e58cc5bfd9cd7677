//! Shared by the dashboard tests: loading every `dashboards/*.json`, walking its panels and
//! targets, substituting Grafana's variables, parsing PromQL, and the table of which alert each
//! metric feeds (so a panel showing that metric must link the alert's runbook).

#![allow(dead_code)] // each test binary uses a different part of this module

use promql_parser::parser::{self, Expr};
use serde_json::Value;
use std::path::PathBuf;

/// Stand-ins for Grafana's interval variables while linting: distinctive durations nobody
/// writes by hand, so a range of exactly this length can only come from the variable.
pub const LINT_RATE_INTERVAL: &str = "8869s";
pub const LINT_INTERVAL: &str = "6971s";
pub const LINT_RANGE: &str = "7757s";

/// A dashboard file, parsed.
pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

impl Dashboard {
    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("")
    }

    /// Every panel, rows included, with the panels nested in collapsed rows.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        if let Some(list) = self.json["panels"].as_array() {
            for p in list {
                out.push(p);
                if let Some(nested) = p["panels"].as_array() {
                    out.extend(nested.iter());
                }
            }
        }
        out
    }

    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.variables().into_iter().find(|v| v["name"] == name)
    }

    /// Every (panel, target) pair of the data panels.
    pub fn targets(&self) -> Vec<(&Value, &Value)> {
        let mut out = Vec::new();
        for p in self.panels() {
            if let Some(ts) = p["targets"].as_array() {
                for t in ts {
                    out.push((p, t));
                }
            }
        }
        out
    }
}

/// `dashboards/` of the checkout this test was built from.
pub fn dashboards_dir() -> PathBuf {
    repo_root().join("dashboards")
}

/// The repository root, from this test's own build (not the support library's: a target dir
/// shared between checkouts may hold a library built from another one).
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every `dashboards/*.json`, sorted by file name. Panics on unreadable or invalid JSON: a
/// dashboard Grafana cannot import is a failure of every test.
pub fn load_all() -> Vec<Dashboard> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .expect("dashboards/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards/*.json");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
            Dashboard {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

/// Replace Grafana's interval variables by durations, then the dashboard variables by
/// `values` (name → value), longest name first so `$instance` never eats `$instance_x`.
pub fn substitute(
    expr: &str,
    rate_interval: &str,
    interval: &str,
    range: &str,
    values: &[(&str, &str)],
) -> String {
    let mut s = expr
        .replace("${__rate_interval}", rate_interval)
        .replace("$__rate_interval", rate_interval)
        .replace("${__interval}", interval)
        .replace("$__interval", interval)
        .replace("${__range}", range)
        .replace("$__range", range);
    let mut vars: Vec<&(&str, &str)> = values.iter().collect();
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in vars {
        s = s.replace(&format!("${{{name}}}"), value);
        s = s.replace(&format!("${name}"), value);
    }
    s
}

/// A query as the linter sees it: interval variables replaced by the lint stand-ins, dashboard
/// variables left in place (inside label matchers they are plain strings to PromQL).
pub fn parse_for_lint(expr: &str) -> Result<Expr, String> {
    parser::parse(&substitute(
        expr,
        LINT_RATE_INTERVAL,
        LINT_INTERVAL,
        LINT_RANGE,
        &[],
    ))
}

/// A node of the query tree with its ancestors, outermost first.
pub struct Visit<'a> {
    pub node: &'a Expr,
    pub parents: Vec<&'a Expr>,
}

/// Every node of `expr`, depth first.
pub fn walk(expr: &Expr) -> Vec<Visit<'_>> {
    fn go<'a>(e: &'a Expr, parents: &mut Vec<&'a Expr>, out: &mut Vec<Visit<'a>>) {
        out.push(Visit {
            node: e,
            parents: parents.clone(),
        });
        parents.push(e);
        match e {
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    go(p, parents, out);
                }
                go(&a.expr, parents, out);
            }
            Expr::Unary(u) => go(&u.expr, parents, out),
            Expr::Binary(b) => {
                go(&b.lhs, parents, out);
                go(&b.rhs, parents, out);
            }
            Expr::Paren(p) => go(&p.expr, parents, out),
            Expr::Subquery(s) => go(&s.expr, parents, out),
            Expr::Call(c) => {
                for a in &c.args.args {
                    go(a, parents, out);
                }
            }
            Expr::MatrixSelector(_)
            | Expr::VectorSelector(_)
            | Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::Extension(_) => {}
        }
        parents.pop();
    }
    let mut out = Vec::new();
    go(expr, &mut Vec::new(), &mut out);
    out
}

/// The metric names a query reads (vector selectors, inside range selectors too).
pub fn metric_names(expr: &Expr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in walk(expr) {
        let name = match v.node {
            Expr::VectorSelector(vs) => vs.name.clone(),
            Expr::MatrixSelector(ms) => ms.vs.name.clone(),
            _ => None,
        };
        if let Some(n) = name
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

/// `label_values(<selector>, <label>)` of a query variable: the selector and the label.
pub fn parse_label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

/// The query text of a query variable (`query` is a string in old dashboards, an object now).
pub fn variable_query(v: &Value) -> Option<&str> {
    v["query"]["query"].as_str().or_else(|| v["query"].as_str())
}

/// The alerts whose condition reads each metric: a panel that shows one of these metrics shows
/// that alert's condition, so it must link the alert's runbook.
pub const ALERTS_OF_METRIC: &[(&str, &[&str])] = &[
    ("up", &["LookoutAgentDown"]),
    (
        "process_thread_count",
        &[
            "ThreadCountAboveExpected",
            "ThreadLimitNear",
            "ThreadLeakSuspected",
        ],
    ),
    (
        "lookout_service_thread_limit",
        &["ThreadCountAboveExpected", "ThreadLimitNear"],
    ),
    ("system_thread_count", &["ThreadLimitNear"]),
    ("system_thread_limit", &["ThreadLimitNear"]),
    (
        "lookout_service_cold_start_seconds_bucket",
        &["ColdStartSlow"],
    ),
    ("lookout_service_cold_start_seconds_sum", &["ColdStartSlow"]),
    (
        "lookout_service_cold_start_seconds_count",
        &["ColdStartSlow"],
    ),
    (
        "lookout_service_last_cold_start_seconds",
        &["ColdStartSlow"],
    ),
    (
        "lookout_service_initializing_seconds",
        &["ServiceStuckInitializing"],
    ),
    (
        "lookout_service_cold_start_budget_seconds",
        &["ColdStartSlow", "ServiceStuckInitializing"],
    ),
    ("lookout_cache_check_interval_seconds", &["CacheStale"]),
    ("lookout_cache_version_lag", &["CacheVersionLag"]),
    ("lookout_cache_staleness_seconds", &["CacheStale"]),
    ("lookout_cache_source_loads_total", &["CacheSourceFailing"]),
    ("lookout_cache_blob_up", &["CacheBlobUnavailable"]),
    ("lookout_cache_errors_total", &["CacheCorruptBlob"]),
    ("lookout_primary_up", &["PrimaryUnavailable"]),
    (
        "lookout_primary_unavailable_seconds_total",
        &["PrimaryUnavailable"],
    ),
    ("lookout_primary_changes_total", &["PrimaryFlapping"]),
    ("lookout_tracker_throttled_total", &["TrackerThrottling"]),
    ("lookout_host_anomaly_rate", &["AnomalyDetected"]),
    ("lookout_anomaly_event", &["AnomalyDetected"]),
    (
        "lookout_timeout_suspects",
        &["TimeoutBugSuspected", "TimeoutTooLarge", "TimeoutStorm"],
    ),
];

/// The alert names of CONTRACT.md.
pub const ALERT_NAMES: &[&str] = &[
    "ThreadCountAboveExpected",
    "ThreadLimitNear",
    "ThreadLeakSuspected",
    "ColdStartSlow",
    "ServiceStuckInitializing",
    "CacheVersionLag",
    "CacheStale",
    "CacheSourceFailing",
    "CacheBlobUnavailable",
    "CacheCorruptBlob",
    "PrimaryUnavailable",
    "PrimaryFlapping",
    "TrackerThrottling",
    "AnomalyDetected",
    "TimeoutBugSuspected",
    "TimeoutStorm",
    "TimeoutTooLarge",
    "LookoutAgentDown",
];

/// Metrics the agent exports (CONTRACT.md, the component signals, and the configured thresholds
/// the alert engine exports for the central rules), as Prometheus names; histograms are listed
/// by their base name.
pub const KNOWN_METRICS: &[&str] = &[
    "up",
    "lookout_build_info",
    "lookout_agent_cold_start_seconds",
    "process_thread_count",
    "process_cpu_utilization_ratio",
    "process_cpu_time_seconds_total",
    "lookout_service_processes",
    "lookout_service_thread_limit_usage",
    "process_resident_memory_bytes",
    "process_open_fds",
    "lookout_service_thread_limit",
    "lookout_service_up",
    "lookout_service_initializing_seconds",
    "lookout_service_last_cold_start_seconds",
    "lookout_service_cold_start_seconds",
    "lookout_service_restarts_total",
    "lookout_service_cold_start_budget_seconds",
    "system_thread_count",
    "system_thread_limit",
    "system_cpu_utilization_ratio",
    "system_memory_utilization_ratio",
    "system_load_average",
    "system_network_io_bytes_total",
    "system_disk_io_bytes_total",
    "lookout_cache_refresh_duration_seconds",
    "lookout_cache_version",
    "lookout_cache_blob_version",
    "lookout_cache_version_lag",
    "lookout_cache_staleness_seconds",
    "lookout_cache_blob_up",
    "lookout_cache_check_interval_seconds",
    "lookout_cache_source_loads_total",
    "lookout_cache_errors_total",
    "lookout_primary_generation",
    "lookout_primary_up",
    "lookout_primary_changes_total",
    "lookout_primary_discovery_duration_seconds",
    "lookout_primary_unavailable_seconds_total",
    "lookout_tracker_requests_total",
    "lookout_tracker_request_duration_seconds",
    "lookout_tracker_in_flight",
    "lookout_tracker_throttled_total",
    "lookout_host_anomaly_rate",
    "lookout_anomaly_score",
    "lookout_anomaly_event",
    "lookout_timeout_suspects",
    "lookout_blocked_threads",
    "lookout_alerts_firing",
    "lookout_alert_notifications_total",
    "lookout_alert_spool_depth",
];

pub const HISTOGRAMS: &[&str] = &[
    "lookout_service_cold_start_seconds",
    "lookout_cache_refresh_duration_seconds",
    "lookout_primary_discovery_duration_seconds",
    "lookout_tracker_request_duration_seconds",
];

/// Is `name` a series the agent (or Prometheus, for `up`) produces?
pub fn is_known_metric(name: &str) -> bool {
    if KNOWN_METRICS.contains(&name) && !HISTOGRAMS.contains(&name) {
        return true;
    }
    HISTOGRAMS.iter().any(|h| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| name == format!("{h}{suffix}"))
    })
}
