//! Lint of every `dashboards/*.json` by grafana/dashboard-linter's rules, re-implemented over a
//! real PromQL parser (promql-parser) because the linter is a Go tool this project does not
//! install: one `datasource` variable of type datasource; `job` and `instance` query variables
//! (multi, all = `.+`, on `${datasource}`); a title, description and valid unit on every panel;
//! every panel and target on `${datasource}`; valid PromQL with `job` and `instance` matchers on
//! every selector; `$__rate_interval` as the range of every rate, irate and increase; `_total`
//! counters only inside rate, irate or increase. On top of the linter: every metric is one the
//! agent exports, and a panel that shows an alert's condition links `/runbooks/<AlertName>`.

mod dashboards_support;

use dashboards_support::*;
use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, LabelModifier, VectorSelector};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Grafana unit ids (packages/grafana-data/src/valueFormats/categories.ts), the ones a lookout
/// panel can plausibly need; the linter rejects anything outside Grafana's list.
const VALID_UNITS: &[&str] = &[
    "none",
    "string",
    "short",
    "percent",
    "percentunit",
    "sci",
    "locale",
    "bytes",
    "decbytes",
    "bits",
    "decbits",
    "kbytes",
    "mbytes",
    "gbytes",
    "binBps",
    "Bps",
    "binbps",
    "bps",
    "KiBs",
    "MiBs",
    "GiBs",
    "pps",
    "hertz",
    "ns",
    "µs",
    "ms",
    "s",
    "m",
    "h",
    "d",
    "dtdurationms",
    "dtdurations",
    "dthms",
    "dtdhms",
    "clockms",
    "clocks",
    "cps",
    "ops",
    "reqps",
    "rps",
    "wps",
    "iops",
    "cpm",
    "opm",
    "rpm",
    "wpm",
    "dateTimeAsIso",
    "dateTimeFromNow",
    "bool",
    "bool_yes_no",
    "bool_on_off",
];

/// Grafana's ways to name the alert of a data point: a series label (time series, bar gauges)
/// or a column of the row (tables).
const ALERTNAME_TEMPLATES: &[&str] = &["${__field.labels.alertname}", "${__data.fields.alertname}"];

/// Panel types that show data and so need targets, a description and a unit.
fn is_data_panel(p: &Value) -> bool {
    p["type"] != "row" && p["type"] != "text"
}

fn uses_template_datasource(ds: &Value) -> bool {
    let uid = ds["uid"].as_str().or_else(|| ds.as_str()).unwrap_or("");
    uid == "${datasource}" || uid == "$datasource"
}

/// Every URL a panel links to: panel links, default field links, and override links.
fn link_urls(p: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    let mut take = |links: &Value| {
        if let Some(ls) = links.as_array() {
            urls.extend(
                ls.iter()
                    .filter_map(|l| l["url"].as_str().map(String::from)),
            );
        }
    };
    take(&p["links"]);
    take(&p["fieldConfig"]["defaults"]["links"]);
    if let Some(overrides) = p["fieldConfig"]["overrides"].as_array() {
        for o in overrides {
            if let Some(props) = o["properties"].as_array() {
                for prop in props.iter().filter(|pr| pr["id"] == "links") {
                    take(&prop["value"]);
                }
            }
        }
    }
    urls
}

fn panel_link_urls(p: &Value) -> Vec<String> {
    p["links"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l["url"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn lint_query_variable(d: &str, v: &Value, out: &mut Vec<String>) {
    let name = v["name"].as_str().unwrap_or("?");
    if !uses_template_datasource(&v["datasource"]) {
        out.push(format!(
            "{d}: variable {name} must use datasource ${{datasource}}"
        ));
    }
    match variable_query(v).and_then(parse_label_values) {
        None => out.push(format!(
            "{d}: variable {name} query must be label_values(<selector>, <label>)"
        )),
        Some((selector, _)) => {
            if let Err(e) = parse_for_lint(&selector) {
                out.push(format!(
                    "{d}: variable {name}: invalid PromQL {selector:?}: {e}"
                ));
            }
        }
    }
}

/// Every violation of one dashboard, as readable lines.
fn lint(dash: &Dashboard) -> Vec<String> {
    let d = format!("{} ({})", dash.file, dash.title());
    let mut out = Vec::new();
    for key in ["title", "uid", "description"] {
        if dash.json[key].as_str().is_none_or(|s| s.trim().is_empty()) {
            out.push(format!("{d}: dashboard has no {key}"));
        }
    }

    // Variables.
    let datasources: Vec<&Value> = dash
        .variables()
        .into_iter()
        .filter(|v| v["type"] == "datasource")
        .collect();
    if datasources.len() != 1 {
        out.push(format!(
            "{d}: needs exactly one datasource variable, has {}",
            datasources.len()
        ));
    }
    for ds in &datasources {
        if ds["name"] != "datasource" {
            out.push(format!(
                "{d}: datasource variable must be named 'datasource'"
            ));
        }
        if ds["label"] != "Data source" {
            out.push(format!(
                "{d}: datasource variable must be labeled 'Data source'"
            ));
        }
        if ds["query"] != "prometheus" {
            out.push(format!(
                "{d}: datasource variable must be of plugin 'prometheus'"
            ));
        }
    }
    for (name, label) in [("job", "Job"), ("instance", "Instance")] {
        let Some(v) = dash.variable(name) else {
            out.push(format!("{d}: is missing the {name} variable"));
            continue;
        };
        if v["type"] != "query" {
            out.push(format!("{d}: {name} variable must be a query variable"));
        }
        if v["label"] != label {
            out.push(format!("{d}: {name} variable must be labeled '{label}'"));
        }
        if v["multi"] != true {
            out.push(format!("{d}: {name} variable must be a multi select"));
        }
        if v["allValue"] != ".+" {
            out.push(format!("{d}: {name} variable allValue must be '.+'"));
        }
    }
    for v in dash
        .variables()
        .into_iter()
        .filter(|v| v["type"] == "query")
    {
        lint_query_variable(&d, v, &mut out);
    }

    // Panels.
    let mut ids = BTreeSet::new();
    for p in dash.panels() {
        let title = p["title"].as_str().unwrap_or("").trim();
        let at = format!("{d}: panel '{title}'");
        if title.is_empty() {
            out.push(format!("{d}: panel id {} has no title", p["id"]));
        }
        if !ids.insert(p["id"].to_string()) {
            out.push(format!("{at}: duplicate panel id {}", p["id"]));
        }
        if !is_data_panel(p) {
            if p["targets"].as_array().is_some_and(|t| !t.is_empty()) {
                out.push(format!("{at}: a row has no queries"));
            }
            continue;
        }
        if p["description"]
            .as_str()
            .is_none_or(|s| s.trim().is_empty())
        {
            out.push(format!("{at}: has no description"));
        }
        match p["fieldConfig"]["defaults"]["unit"].as_str() {
            Some(u) if VALID_UNITS.contains(&u) => {}
            other => out.push(format!("{at}: has no or an invalid unit: {other:?}")),
        }
        if !uses_template_datasource(&p["datasource"]) {
            out.push(format!("{at}: must use datasource ${{datasource}}"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            out.push(format!("{at}: has no queries"));
        }
        let mut required_runbooks: BTreeSet<&str> = BTreeSet::new();
        let mut shows_alerts = false;
        for t in &targets {
            if !t["datasource"].is_null() && !uses_template_datasource(&t["datasource"]) {
                out.push(format!("{at}: target must use datasource ${{datasource}}"));
            }
            let Some(expr) = t["expr"].as_str() else {
                out.push(format!("{at}: target without expr"));
                continue;
            };
            let parsed = match parse_for_lint(expr) {
                Ok(e) => e,
                Err(e) => {
                    out.push(format!("{at}: invalid PromQL {expr:?}: {e}"));
                    continue;
                }
            };
            lint_expr(&at, expr, &parsed, &mut out);
            for m in metric_names(&parsed) {
                if !is_known_metric(&m) {
                    out.push(format!("{at}: unknown metric {m} in {expr:?}"));
                }
                if m == "lookout_alerts_firing" && keeps_label(&parsed, "alertname") {
                    shows_alerts = true;
                }
                for (metric, alerts) in ALERTS_OF_METRIC {
                    if *metric == m {
                        required_runbooks.extend(alerts.iter());
                    }
                }
            }
        }

        // Runbook links.
        let panel_links = panel_link_urls(p);
        for alert in &required_runbooks {
            let suffix = format!("/runbooks/{alert}");
            if !panel_links.iter().any(|u| u.ends_with(&suffix)) {
                out.push(format!(
                    "{at}: shows {alert}'s condition but has no panel link to .../runbooks/{alert}"
                ));
            }
        }
        let all_links = link_urls(p);
        if shows_alerts
            && !all_links.iter().any(|u| {
                ALERTNAME_TEMPLATES
                    .iter()
                    .any(|t| u.ends_with(&format!("/runbooks/{t}")))
            })
        {
            out.push(format!("{at}: shows firing alerts but links no runbook (/runbooks/ + the row's or series' alertname)"));
        }
        for u in &all_links {
            if let Some((_, name)) = u.rsplit_once("/runbooks/")
                && !ALERTNAME_TEMPLATES.contains(&name)
                && !ALERT_NAMES.contains(&name)
            {
                out.push(format!("{at}: runbook link to unknown alert {name:?}"));
            }
        }
    }
    out
}

/// The query-level rules.
fn lint_expr(at: &str, text: &str, expr: &Expr, out: &mut Vec<String>) {
    let rate_interval = promql_parser::util::parse_duration(LINT_RATE_INTERVAL).unwrap();
    for v in walk(expr) {
        match v.node {
            // A selector reached on its own is an instant vector: a counter there is bare.
            Expr::VectorSelector(vs) => {
                check_matchers(at, text, vs, out);
                let name = vs.name.as_deref().unwrap_or("");
                if name.ends_with("_total") {
                    out.push(format!(
                        "{at}: counter {name} in {text:?} is not inside rate, irate or increase"
                    ));
                }
            }
            Expr::MatrixSelector(ms) => {
                check_matchers(at, text, &ms.vs, out);
                let in_counter_fn = matches!(
                    v.parents.last(),
                    Some(Expr::Call(c)) if is_counter_fn(c.func.name)
                );
                if in_counter_fn && ms.range != rate_interval {
                    out.push(format!(
                        "{at}: {text:?} must use $__rate_interval as the range of rate, irate and increase"
                    ));
                }
                let name = ms.vs.name.as_deref().unwrap_or("");
                if name.ends_with("_total") && !in_counter_fn {
                    out.push(format!(
                        "{at}: counter {name} in {text:?} is not inside rate, irate or increase"
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Every selector filters on the dashboard's job and instance variables.
fn check_matchers(at: &str, text: &str, vs: &VectorSelector, out: &mut Vec<String>) {
    for (label, var) in [("job", "$job"), ("instance", "$instance")] {
        let ok = vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == label && matches!(m.op, MatchOp::Re(_)) && m.value == var);
        if !ok {
            out.push(format!(
                "{at}: selector {vs} in {text:?} lacks {label}=~\"{var}\""
            ));
        }
    }
}

/// Does the query's result still carry `label`? False when some aggregation drops it (a count
/// by severity shows no single alert, so it has no runbook to link).
fn keeps_label(expr: &Expr, label: &str) -> bool {
    walk(expr).iter().all(|v| match v.node {
        Expr::Aggregate(a) => match &a.modifier {
            Some(LabelModifier::Include(l)) => l.labels.iter().any(|x| x == label),
            Some(LabelModifier::Exclude(l)) => !l.labels.iter().any(|x| x == label),
            None => false,
        },
        _ => true,
    })
}

fn is_counter_fn(name: &str) -> bool {
    matches!(name, "rate" | "irate" | "increase")
}

#[test]
fn every_dashboard_passes_the_linter() {
    let all = load_all();
    let mut violations = Vec::new();
    for d in &all {
        violations.extend(lint(d));
    }
    let mut uids = BTreeSet::new();
    for d in &all {
        let uid = d.json["uid"].as_str().unwrap_or("");
        if !uids.insert(uid) {
            violations.push(format!("{}: uid {uid:?} is used twice", d.file));
        }
    }
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_required_dashboards_exist_and_cover_their_topics() {
    let all = load_all();
    let find = |uid: &str| {
        all.iter()
            .find(|d| d.json["uid"] == uid)
            .unwrap_or_else(|| panic!("no dashboard with uid {uid}"))
    };
    let reads = |d: &Dashboard| -> BTreeSet<String> {
        d.targets()
            .iter()
            .filter_map(|(_, t)| parse_for_lint(t["expr"].as_str()?).ok())
            .flat_map(|e| metric_names(&e))
            .collect()
    };
    let topics: &[(&str, &[&str])] = &[
        (
            "lookout-fleet",
            &[
                "up",
                "lookout_alerts_firing",
                "lookout_host_anomaly_rate",
                "system_thread_count",
                "system_thread_limit",
                "process_thread_count",
                "lookout_service_thread_limit",
                "lookout_service_cold_start_seconds_bucket",
                "lookout_cache_version_lag",
                "lookout_cache_staleness_seconds",
                "lookout_primary_unavailable_seconds_total",
                "lookout_primary_changes_total",
            ],
        ),
        (
            "lookout-host",
            &[
                "up",
                "lookout_alerts_firing",
                "system_cpu_utilization_ratio",
                "process_thread_count",
                "lookout_service_initializing_seconds",
            ],
        ),
        (
            "lookout-caches",
            &[
                "lookout_cache_version",
                "lookout_cache_blob_version",
                "lookout_cache_version_lag",
                "lookout_cache_staleness_seconds",
                "lookout_cache_blob_up",
                "lookout_cache_source_loads_total",
                "lookout_cache_errors_total",
                "lookout_cache_refresh_duration_seconds_bucket",
            ],
        ),
        (
            "lookout-trackers",
            &[
                "lookout_primary_up",
                "lookout_primary_generation",
                "lookout_primary_changes_total",
                "lookout_primary_unavailable_seconds_total",
                "lookout_primary_discovery_duration_seconds_bucket",
                "lookout_tracker_requests_total",
                "lookout_tracker_request_duration_seconds_bucket",
                "lookout_tracker_in_flight",
                "lookout_tracker_throttled_total",
            ],
        ),
        (
            "lookout-detectors",
            &[
                "lookout_host_anomaly_rate",
                "lookout_anomaly_score",
                "lookout_anomaly_event",
                "lookout_timeout_suspects",
                "lookout_blocked_threads",
            ],
        ),
    ];
    let mut missing = Vec::new();
    for (uid, metrics) in topics {
        let read = reads(find(uid));
        for m in *metrics {
            if !read.contains(*m) {
                missing.push(format!("{uid} shows no panel of {m}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Every runbook a dashboard links must exist in alerts/runbooks/ (once that folder exists:
/// the runbooks come with the alert rules).
#[test]
fn linked_runbooks_exist() {
    let dir = repo_root().join("alerts/runbooks");
    if !dir.is_dir() {
        eprintln!("alerts/runbooks/ not present yet: only the names were checked by the lint");
        return;
    }
    let mut missing = BTreeSet::new();
    for d in load_all() {
        for p in d.panels() {
            for u in link_urls(p) {
                if let Some((_, name)) = u.rsplit_once("/runbooks/")
                    && ALERT_NAMES.contains(&name)
                    && !dir.join(format!("{name}.md")).is_file()
                {
                    missing.insert(name.to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "runbooks missing: {missing:?}");
}

#[test]
fn provisioning_loads_every_dashboard_from_files() {
    let dir = dashboards_dir().join("provisioning");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/provisioning/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    assert!(!files.is_empty(), "no provisioning yaml");
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for needed in ["apiVersion: 1", "providers:", "type: file", "path:"] {
        assert!(text.contains(needed), "provisioning lacks {needed:?}");
    }
    // Datasource-agnostic: no datasource is provisioned or pinned; each dashboard asks for one.
    assert!(
        !text.contains("datasources:"),
        "dashboard provisioning must not pin a datasource"
    );
    for d in load_all() {
        let raw = serde_json::to_string(&d.json).unwrap();
        assert!(
            !raw.contains("\"uid\":\"prometheus\"") && !raw.contains("${DS_"),
            "{} pins a datasource instead of using ${{datasource}}",
            d.file
        );
    }
}

// The linter itself must catch each rule: break a good dashboard one rule at a time.

fn good() -> Dashboard {
    load_all()
        .into_iter()
        .find(|d| d.json["uid"] == "lookout-fleet")
        .expect("fleet dashboard")
}

fn first_data_panel(d: &mut Value) -> &mut Value {
    d["panels"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["type"] != "row" && p["targets"][0]["expr"].is_string())
        .unwrap()
}

fn assert_caught(what: &str, mutate: impl FnOnce(&mut Value), expect: &str) {
    let mut d = good();
    assert!(lint(&d).is_empty(), "the fleet dashboard must lint clean");
    mutate(&mut d.json);
    let found = lint(&d);
    assert!(
        found.iter().any(|v| v.contains(expect)),
        "{what}: expected a violation containing {expect:?}, got {found:#?}"
    );
}

#[test]
fn the_linter_catches_every_rule() {
    assert_caught(
        "second datasource variable",
        |d| {
            let extra = json!({"name": "ds2", "type": "datasource", "query": "prometheus"});
            d["templating"]["list"].as_array_mut().unwrap().push(extra);
        },
        "exactly one datasource variable",
    );
    assert_caught(
        "no instance variable",
        |d| {
            d["templating"]["list"]
                .as_array_mut()
                .unwrap()
                .retain(|v| v["name"] != "instance");
        },
        "missing the instance variable",
    );
    assert_caught(
        "job not multi",
        |d| {
            for v in d["templating"]["list"].as_array_mut().unwrap() {
                if v["name"] == "job" {
                    v["multi"] = json!(false);
                }
            }
        },
        "job variable must be a multi select",
    );
    assert_caught(
        "no description",
        |d| first_data_panel(d)["description"] = json!(""),
        "has no description",
    );
    assert_caught(
        "no unit",
        |d| first_data_panel(d)["fieldConfig"]["defaults"]["unit"] = json!(null),
        "invalid unit",
    );
    assert_caught(
        "bad unit",
        |d| first_data_panel(d)["fieldConfig"]["defaults"]["unit"] = json!("furlongs"),
        "invalid unit",
    );
    assert_caught(
        "pinned datasource",
        |d| first_data_panel(d)["datasource"] = json!({"type": "prometheus", "uid": "abc"}),
        "must use datasource",
    );
    assert_caught(
        "fixed rate range",
        |d| {
            first_data_panel(d)["targets"][0]["expr"] = json!(
                "rate(lookout_alert_notifications_total{job=~\"$job\",instance=~\"$instance\"}[5m])"
            )
        },
        "must use $__rate_interval",
    );
    assert_caught(
        "increase over the range",
        |d| {
            first_data_panel(d)["targets"][0]["expr"] = json!(
                "increase(lookout_alert_notifications_total{job=~\"$job\",instance=~\"$instance\"}[$__range])"
            )
        },
        "must use $__rate_interval",
    );
    assert_caught(
        "bare counter",
        |d| {
            first_data_panel(d)["targets"][0]["expr"] = json!(
                "sum(lookout_alert_notifications_total{job=~\"$job\",instance=~\"$instance\"})"
            )
        },
        "not inside rate, irate or increase",
    );
    assert_caught(
        "counter in max_over_time",
        |d| {
            first_data_panel(d)["targets"][0]["expr"] = json!(
                "max_over_time(lookout_alert_notifications_total{job=~\"$job\",instance=~\"$instance\"}[$__rate_interval])"
            )
        },
        "not inside rate, irate or increase",
    );
    assert_caught(
        "no job matcher",
        |d| first_data_panel(d)["targets"][0]["expr"] = json!("sum(up{instance=~\"$instance\"})"),
        "lacks job=~\"$job\"",
    );
    assert_caught(
        "no instance matcher inside rate",
        |d| {
            first_data_panel(d)["targets"][0]["expr"] =
                json!("rate(lookout_alert_notifications_total{job=~\"$job\"}[$__rate_interval])")
        },
        "lacks instance=~\"$instance\"",
    );
    assert_caught(
        "parse error",
        |d| first_data_panel(d)["targets"][0]["expr"] = json!("sum(up{job=~\"$job\""),
        "invalid PromQL",
    );
    assert_caught(
        "unknown metric",
        |d| {
            first_data_panel(d)["targets"][0]["expr"] =
                json!("lookout_no_such_metric{job=~\"$job\",instance=~\"$instance\"}")
        },
        "unknown metric",
    );
    assert_caught(
        "missing runbook link",
        |d| {
            let p = first_data_panel(d);
            p["targets"][0]["expr"] =
                json!("lookout_cache_version_lag{job=~\"$job\",instance=~\"$instance\"}");
            p["links"] = json!([]);
        },
        "no panel link to .../runbooks/CacheVersionLag",
    );
    assert_caught(
        "runbook of an unknown alert",
        |d| {
            first_data_panel(d)["links"]
                .as_array_mut()
                .unwrap()
                .push(json!({"title": "x", "url": "${runbook_base}/runbooks/NoSuchAlert"}))
        },
        "unknown alert \"NoSuchAlert\"",
    );
    assert_caught(
        "alerts table without runbook link",
        |d| {
            let panels = d["panels"].as_array_mut().unwrap();
            let p = panels
                .iter_mut()
                .find(|p| p["title"] == "Firing alerts")
                .unwrap();
            p["fieldConfig"]["overrides"] = json!([]);
        },
        "shows firing alerts but links no runbook",
    );
}
