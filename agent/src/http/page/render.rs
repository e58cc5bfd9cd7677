//! The HTML of the status page, from a [`PageInput`]: a pure function, so that it is unit
//! tested and benchmarked without a server.

use super::exposition::{Exposition, Sample, series_key};
use super::history::{self, History};
use crate::alerting::engine::ApiAlert;
use crate::alerting::names;
use crate::chart::{self, Chart, Unit, escape, format_value, utc_datetime};
use crate::context::Finding;
use crate::series::{SeriesKey, SeriesStore};
use std::fmt::Write as _;

/// Everything one rendering reads.
pub struct PageInput<'a> {
    pub host: &'a str,
    /// Wall-clock now, Unix seconds (for display and to place the store's samples in time).
    pub now_unix: f64,
    /// `/metrics`, parsed: the source of every number shown.
    pub metrics: &'a Exposition,
    /// The histories behind the charts.
    pub series: &'a SeriesStore,
    pub alerts: &'a [ApiAlert],
    /// Newest first.
    pub findings: &'a [Finding],
    pub trackers: &'a [TrackerView],
    pub caches: &'a [CacheView],
    /// Minute means of the hours before the store's samples, if kept.
    pub long: Option<&'a History>,
}

/// What the page shows of a tracker beyond its metrics.
pub struct TrackerView {
    pub service: String,
    pub primary: Option<String>,
    /// Seconds since this primary (or its absence) was first seen.
    pub since_secs: f64,
}

/// What the page shows of a cache beyond its metrics.
pub struct CacheView {
    pub name: String,
    /// The latest duration of each refresh phase, seconds.
    pub last_phases: Vec<(String, f64)>,
}

/// The refresh script (its hash is in the page's Content-Security-Policy). Reloads every
/// 15 s while the tab is visible, unless paused; the choice survives reloads.
pub const SCRIPT: &str = "(function(){var b=document.getElementById('refresh');if(!b)return;var k='lookout-refresh',on=true;try{on=localStorage.getItem(k)!=='off';}catch(e){}function show(){b.textContent=on?'auto-refresh on (15 s)':'auto-refresh paused';b.setAttribute('aria-pressed',on?'true':'false');}show();b.addEventListener('click',function(){on=!on;try{localStorage.setItem(k,on?'on':'off');}catch(e){}show();});setInterval(function(){if(on&&!document.hidden)location.reload();},15000);})();";

const STYLE: &str = r#"
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--ok:#15803d;--okbg:#dcfce7;--bad:#b91c1c;--badbg:#fee2e2;--warn:#a16207;--warnbg:#fef9c3;--link:#1d4ed8}
@media (prefers-color-scheme:dark){:root{--bg:#0f1115;--card:#181b21;--fg:#e5e7eb;--muted:#9ca3af;--line:#2a2f38;--ok:#4ade80;--okbg:#12351f;--bad:#f87171;--badbg:#3b1414;--warn:#facc15;--warnbg:#3a3210;--link:#93c5fd}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
a{color:var(--link)}
header{position:sticky;top:0;z-index:2;background:var(--card);border-bottom:1px solid var(--line);padding:10px 20px;display:flex;flex-wrap:wrap;gap:10px 18px;align-items:center}
header h1{font-size:20px;margin:0}
header .meta{color:var(--muted);font-size:13px}
header button{margin-left:auto;font:inherit;font-size:13px;padding:4px 10px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);cursor:pointer}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;padding:8px 20px;font-size:14px}
main{padding:0 20px 40px;max-width:1500px}
section{margin-top:22px}
h2{font-size:18px;margin:0 0 8px;display:flex;gap:10px;align-items:baseline}
h2 small{font-weight:normal;color:var(--muted);font-size:13px}
h3{font-size:16px;margin:0 0 6px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.chips{display:flex;flex-wrap:wrap;gap:8px}
.chip{padding:3px 10px;border-radius:999px;font-size:13px;font-weight:600;background:var(--line)}
.ok{color:var(--ok);background:var(--okbg)}.bad{color:var(--bad);background:var(--badbg)}.warn{color:var(--warn);background:var(--warnbg)}
.badge{padding:1px 8px;border-radius:4px;font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;margin-bottom:12px;overflow-x:auto}
.card.firing{border-left:5px solid var(--bad)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.cols{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
table{border-collapse:collapse;font-size:14px}
th,td{padding:3px 10px 3px 0;text-align:left;vertical-align:middle;border-bottom:1px solid var(--line)}
th{font-weight:600;color:var(--muted);white-space:nowrap}
td.num,.v{font-variant-numeric:tabular-nums}
table.wide{width:100%}
.src,.src a{color:var(--muted);font-size:12px;font-family:ui-monospace,"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
td.src{white-space:nowrap}
.summary{font-size:16px;font-weight:600}
.empty{color:var(--muted);font-style:italic}
svg.chart{max-width:100%;height:auto;display:block}
svg.spark{vertical-align:middle}
.finding{padding:8px 0;border-bottom:1px solid var(--line)}.finding:last-child{border-bottom:0}
.finding .when{color:var(--muted);font-size:13px}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
.pair{display:flex;flex-direction:column;gap:2px}
"#;

macro_rules! w {
    ($out:expr, $($arg:tt)*) => { let _ = write!($out, $($arg)*); };
}

/// The whole page.
pub fn render(input: &PageInput) -> String {
    let mut p = Page {
        input,
        out: String::with_capacity(256 * 1024),
        offset: input.now_unix - f64::from(input.series.now()),
    };
    p.document();
    p.out
}

struct Page<'a> {
    input: &'a PageInput<'a>,
    out: String,
    /// Wall time of store time 0: wall = offset + t.
    offset: f64,
}

/// The store names of the gauges whose OpenTelemetry name differs from the Prometheus one.
fn store_name(prom: &str) -> &str {
    match prom {
        crate::probes::names::THREAD_COUNT_PROMETHEUS => crate::alerting::rules::series::THREADS,
        other => other,
    }
}

fn labels_of<'b>(pairs: &'b [(&'b str, &'b str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

impl<'a> Page<'a> {
    fn m(&self) -> &'a Exposition {
        self.input.metrics
    }

    /// The history of a gauge as (Unix seconds, value): the minute means of the hours
    /// before, then the series store's samples.
    fn history(&self, prom: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let key = SeriesKey::new(store_name(prom), labels);
        let recent = self.input.series.samples(&key);
        let first = recent.first().map_or(f32::MAX, |s| s.t);
        let mut out: Vec<(f64, f64)> = self
            .input
            .long
            .map(|h| h.before(&key, first))
            .unwrap_or_default()
            .into_iter()
            .map(|(t, v)| (self.offset + f64::from(t), f64::from(v)))
            .collect();
        out.extend(
            recent
                .into_iter()
                .map(|s| (self.offset + f64::from(s.t), f64::from(s.v))),
        );
        out
    }

    /// A value of `/metrics` as a span a test or script can read back.
    fn value(&mut self, name: &str, sample: &Sample, unit: Unit) {
        w!(
            self.out,
            r#"<span class="v" data-metric="{}" data-value="{}">{}</span>"#,
            escape(&series_key(name, &sample.labels)),
            escape(&sample.raw),
            escape(&format_value(sample.value, unit))
        );
    }

    /// The value of `name{labels}`, or a dash when `/metrics` has none.
    fn value_of(&mut self, name: &str, labels: &[(&str, &str)], unit: Unit) -> Option<f64> {
        match self.m().get(name, labels) {
            Some(s) => {
                let v = s.value;
                self.value(name, s, unit);
                Some(v)
            }
            None => {
                self.out.push_str(r#"<span class="empty">–</span>"#);
                None
            }
        }
    }

    /// A link to `/metrics` naming the series a chart or value shows (the full selector, to
    /// rebuild the view in Grafana).
    fn metric_link(&mut self, name: &str, labels: &[(&str, &str)]) {
        w!(
            self.out,
            r#"<a href="/metrics" data-src="{0}">{0}</a>"#,
            escape(&series_key(name, &labels_of(labels)))
        );
    }

    /// The same, short: the metric name shown, the selector in the tooltip (table rows, where
    /// the card already says which subject).
    fn metric_link_short(&mut self, name: &str, labels: &[(&str, &str)]) {
        w!(
            self.out,
            r#"<a href="/metrics" data-src="{0}" title="{0}">{1}</a>"#,
            escape(&series_key(name, &labels_of(labels))),
            escape(name)
        );
    }

    /// A 0/1 gauge as a green or red badge (a dash when `/metrics` has no such series).
    fn badge(&mut self, name: &str, labels: &[(&str, &str)], (yes, no): (&str, &str)) {
        match self.m().get(name, labels) {
            Some(s) => {
                let (class, text) = if s.value >= 1.0 {
                    ("ok", yes)
                } else {
                    ("bad", no)
                };
                w!(
                    self.out,
                    r#" <span class="badge {class}" data-metric="{}" data-value="{}">{text}</span>"#,
                    escape(&series_key(name, &s.labels)),
                    escape(&s.raw)
                );
            }
            None => self.out.push_str(r#"<span class="empty">–</span>"#),
        }
    }

    /// One row of a key/value table: the value now, a sparkline of its history, its series.
    fn row(&mut self, title: &str, name: &str, labels: &[(&str, &str)], unit: Unit) {
        if self.m().get(name, labels).is_none() {
            return;
        }
        w!(self.out, "<tr><th>{}</th><td class=\"num\">", escape(title));
        self.value_of(name, labels, unit);
        self.out.push_str("</td><td>");
        let h = self.history(name, labels);
        if h.len() > 1 {
            chart::sparkline(&mut self.out, &h, 140, 22, None);
        }
        self.out.push_str("</td><td class=\"src\">");
        self.metric_link_short(name, labels);
        self.out.push_str("</td></tr>");
    }

    fn document(&mut self) {
        let host = escape(self.input.host).into_owned();
        let version = self
            .m()
            .all(crate::probes::names::BUILD_INFO)
            .first()
            .and_then(|s| s.label("version"))
            .unwrap_or(crate::telemetry::VERSION)
            .to_string();
        w!(
            self.out,
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{host} — lookout</title><style>{STYLE}</style></head><body>"#
        );
        w!(
            self.out,
            r#"<header><h1>lookout · {host}</h1><span class="meta">agent {} · page of {} · numbers as on <a href="/metrics">/metrics</a> · <a href="/api/v1/alerts">alerts JSON</a> · <a href="/api/v1/findings">findings JSON</a></span>"#,
            escape(&version),
            utc_datetime(self.input.now_unix)
        );
        self.out
            .push_str(r#"<button id="refresh" type="button" aria-pressed="true">auto-refresh on (15 s)</button></header>"#);
        self.out.push_str(r##"<nav><a href="#alerts">Alerts</a><a href="#findings">Findings</a><a href="#services">Services</a><a href="#host">Host</a><a href="#caches">Caches</a><a href="#trackers">Trackers</a><a href="#anomalies">Anomalies</a></nav><main>"##);
        self.chips();
        self.alerts();
        self.findings();
        self.services();
        self.host();
        self.caches();
        self.trackers();
        self.anomalies();
        w!(self.out, "</main><script>{SCRIPT}</script></body></html>");
    }

    fn firing(&self) -> Vec<&'a ApiAlert> {
        let mut v: Vec<&ApiAlert> = self.input.alerts.iter().collect();
        // Pages first, then the oldest first: the longest-burning fire on top.
        v.sort_by(|a, b| {
            let sev =
                |x: &ApiAlert| x.notice.labels.get("severity").map(String::as_str) != Some("page");
            (sev(a), &a.notice.starts_at).cmp(&(sev(b), &b.notice.starts_at))
        });
        v
    }

    fn chips(&mut self) {
        let alerts = self.firing();
        let active: Vec<_> = alerts
            .iter()
            .filter(|a| a.status.state == "active")
            .collect();
        let pages = active
            .iter()
            .filter(|a| a.notice.labels.get("severity").map(String::as_str) == Some("page"))
            .count();
        self.out
            .push_str(r#"<div class="chips" style="margin-top:12px">"#);
        if active.is_empty() {
            self.out
                .push_str(r#"<span class="chip ok">no alert firing</span>"#);
        } else {
            w!(
                self.out,
                r##"<a class="chip bad" href="#alerts">{} alert{} firing ({} page, {} ticket)</a>"##,
                active.len(),
                if active.len() == 1 { "" } else { "s" },
                pages,
                active.len() - pages
            );
        }
        let up = self.m().all(crate::probes::names::SERVICE_UP);
        let n_up = up.iter().filter(|s| s.value >= 1.0).count();
        if !up.is_empty() {
            let class = if n_up == up.len() { "ok" } else { "bad" };
            w!(
                self.out,
                r##"<a class="chip {class}" href="#services">services up {n_up}/{}</a>"##,
                up.len()
            );
        }
        let lagging = self
            .m()
            .all(lookout_cache::names::VERSION_LAG)
            .iter()
            .filter(|s| s.value > 0.0)
            .count();
        let caches = self.m().all(lookout_cache::names::VERSION).len();
        if caches > 0 {
            let class = if lagging == 0 { "ok" } else { "warn" };
            w!(
                self.out,
                r##"<a class="chip {class}" href="#caches">caches {caches}, behind {lagging}</a>"##
            );
        }
        let trackers = self.m().all(lookout_tracker::names::PRIMARY_UP);
        if !trackers.is_empty() {
            let known = trackers.iter().filter(|s| s.value >= 1.0).count();
            let class = if known == trackers.len() { "ok" } else { "bad" };
            w!(
                self.out,
                r##"<a class="chip {class}" href="#trackers">primaries known {known}/{}</a>"##,
                trackers.len()
            );
        }
        if let Some(rate) = self.m().get(crate::anomaly::RATE, &[]) {
            let class = if rate.value >= crate::anomaly::EVENT_ON {
                "warn"
            } else {
                "ok"
            };
            w!(
                self.out,
                r##"<a class="chip {class}" href="#anomalies">anomalous series {}</a>"##,
                format_value(rate.value, Unit::Percent)
            );
        }
        self.out.push_str("</div>");
    }

    fn alerts(&mut self) {
        let alerts = self.firing();
        w!(
            self.out,
            r#"<section id="alerts"><h2>Alerts <small>firing now, pages first; held-back alerts last</small></h2>"#
        );
        if alerts.is_empty() {
            self.out
                .push_str(r#"<div class="card"><span class="empty">No alert is firing.</span></div></section>"#);
            return;
        }
        for a in alerts {
            let n = &a.notice;
            let name = n.labels.get("alertname").map_or("?", String::as_str);
            let severity = n.labels.get("severity").map_or("?", String::as_str);
            let subject: Vec<String> = n
                .labels
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity" | "host"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let class = if a.status.state == "active" {
                "firing"
            } else {
                ""
            };
            w!(
                self.out,
                r#"<article class="card {class}" data-alert="{}"><h3><span class="badge {}">{}</span>{}<span class="meta">{}</span></h3>"#,
                escape(name),
                if severity == "page" { "bad" } else { "warn" },
                escape(severity),
                escape(name),
                escape(&subject.join(" "))
            );
            if let Some(s) = n.annotations.get("summary") {
                w!(self.out, r#"<div class="summary">{}</div>"#, escape(s));
            }
            let since = humantime::parse_rfc3339_weak(&n.starts_at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
            self.out.push_str("<div>");
            match since {
                Some(t) => {
                    w!(
                        self.out,
                        "{} since {} ({} ago)",
                        if a.status.state == "active" {
                            "firing"
                        } else {
                            "held back"
                        },
                        utc_datetime(t),
                        format_value((self.input.now_unix - t).max(0.0), Unit::Seconds)
                    );
                }
                None => {
                    w!(self.out, "since {}", escape(&n.starts_at));
                }
            }
            if !a.status.inhibited_by.is_empty() {
                w!(
                    self.out,
                    " · held back by {}",
                    escape(&a.status.inhibited_by.join(", "))
                );
            }
            w!(self.out, " · value {}", format_value(a.value, Unit::Count));
            if let Some(url) = n.annotations.get("runbook_url") {
                w!(
                    self.out,
                    r#" · <a class="runbook" href="{0}">runbook: {1}</a>"#,
                    escape(url),
                    escape(name)
                );
            }
            self.out.push_str("</div>");
            if let Some(d) = n.annotations.get("description") {
                w!(self.out, r#"<div class="meta">{}</div>"#, escape(d));
            }
            self.out.push_str("</article>");
        }
        self.out.push_str("</section>");
    }

    fn findings(&mut self) {
        const SHOWN: usize = 20;
        let all = self.input.findings;
        w!(
            self.out,
            r#"<section id="findings"><h2>Recent findings <small>detectors' observations, newest first ({} kept, {} shown)</small></h2><div class="card">"#,
            all.len(),
            all.len().min(SHOWN)
        );
        if all.is_empty() {
            self.out
                .push_str(r#"<span class="empty">Nothing found yet.</span>"#);
        }
        for f in all.iter().take(SHOWN) {
            w!(
                self.out,
                r#"<div class="finding" data-finding="{}"><span class="when">{}</span> <span class="badge warn">{} · {}</span> {}"#,
                f.seq,
                escape(&f.at),
                escape(&f.source),
                escape(&f.kind),
                escape(&f.summary)
            );
            let d = &f.detail;
            if f.source == "anomaly" {
                if let Some(top) = d.get("top").and_then(|t| t.as_array()) {
                    self.out.push_str("<div>top series: ");
                    for (i, t) in top.iter().enumerate() {
                        let metric = t.get("metric").and_then(|m| m.as_str()).unwrap_or("?");
                        let score = t.get("score").and_then(|s| s.as_f64()).unwrap_or(f64::NAN);
                        w!(
                            self.out,
                            "{}<code>{}</code> {}",
                            if i > 0 { ", " } else { "" },
                            escape(metric),
                            format_value(score, Unit::Count)
                        );
                    }
                    self.out.push_str("</div>");
                }
            } else if f.source == "timeout" {
                let s = |k: &str| d.get(k).map(json_text).unwrap_or_default();
                w!(
                    self.out,
                    r#"<table style="margin-top:4px"><tr><th>service</th><td>{}</td><th>thread</th><td>{}</td><th>syscall</th><td><code>{}</code></td><th>timeout</th><td>{}</td><th>blocked</th><td>{} s</td></tr><tr><th>peer</th><td colspan="3"><code>{}</code></td><th>advice</th><td colspan="5">{}</td></tr></table>"#,
                    escape(f.labels.get("service").map_or("", String::as_str)),
                    escape(&s("tid")),
                    escape(&s("syscall")),
                    escape(&s("timeout")),
                    escape(&s("blocked_seconds")),
                    escape(&s("peer")),
                    escape(&s("detail"))
                );
            }
            self.out.push_str("</div>");
        }
        self.out.push_str("</div></section>");
    }

    fn services(&mut self) {
        let mut names = self
            .m()
            .label_values(crate::probes::names::SERVICE_UP, "service");
        // The agent itself last: the watched services are what the page is about.
        names.sort_by_key(|n| n == crate::probes::host::SELF_SERVICE);
        w!(
            self.out,
            r#"<section id="services"><h2>Services <small>{} watched · last {} of samples</small></h2>"#,
            names.len(),
            self.span_text()
        );
        if names.is_empty() {
            self.out
                .push_str(r#"<div class="card"><span class="empty">No service is watched ([[service]] in the config).</span></div>"#);
        }
        self.out.push_str(r#"<div class="grid">"#);
        for name in &names {
            self.service(name);
        }
        self.out.push_str("</div></section>");
    }

    /// How far back the charts reach, in words.
    fn span_text(&self) -> String {
        let kept = if self.input.long.is_some() {
            history::MINUTES as f64 * 60.0
        } else {
            0.0
        };
        format_value(
            f64::from(self.input.series.now()).min(kept.max(600.0)),
            Unit::Seconds,
        )
    }

    fn service(&mut self, name: &str) {
        let l = [("service", name)];
        w!(
            self.out,
            r#"<article class="card" data-service="{}"><h3>{}"#,
            escape(name),
            escape(name)
        );
        if name == crate::probes::host::SELF_SERVICE {
            self.out
                .push_str(r#" <span class="meta">(this agent)</span>"#);
        }
        self.badge(crate::probes::names::SERVICE_UP, &l, ("up", "down"));
        if let Some(init) = self.m().get(crate::probes::names::INITIALIZING, &l)
            && init.value > 0.0
        {
            self.out
                .push_str(r#" <span class="badge warn">starting for "#);
            let init = init.clone();
            self.value(crate::probes::names::INITIALIZING, &init, Unit::Seconds);
            self.out.push_str("</span>");
        }
        self.out.push_str("</h3>");

        // Threads against every limit that applies.
        let mut chart = Chart::new("Threads", Unit::Named("threads")).line(
            "threads",
            self.history(crate::probes::names::THREAD_COUNT_PROMETHEUS, &l),
        );
        let mut limits: Vec<(String, f64)> = self
            .m()
            .matching(crate::probes::names::THREAD_LIMIT, &l)
            .filter_map(|s| Some((s.label("kind")?.to_string(), s.value)))
            .collect();
        limits.sort_by(|a, b| a.0.cmp(&b.0));
        for (kind, v) in &limits {
            let (label, alert) = match kind.as_str() {
                "expected" => (
                    format!(
                        "expected (alert {} above)",
                        names::THREAD_COUNT_ABOVE_EXPECTED
                    ),
                    true,
                ),
                "rlimit_nproc" => ("RLIMIT_NPROC (all tasks of the user)".to_string(), false),
                "cgroup_pids" => ("cgroup pids.max".to_string(), false),
                other => (other.to_string(), false),
            };
            chart = chart.threshold(label, *v, alert);
        }
        if let Some(hard) = limits
            .iter()
            .filter(|(k, _)| k != "expected")
            .map(|(_, v)| *v)
            .reduce(f64::min)
        {
            let at = rule_threshold(names::THREAD_LIMIT_NEAR);
            chart = chart.threshold(
                format!("{} at {:.0} %", names::THREAD_LIMIT_NEAR, at * 100.0),
                hard * at,
                true,
            );
        }
        self.out.push_str(r#"<div class="cols"><div>"#);
        chart.render(&mut self.out);
        self.out.push_str(r#"<div class="src">"#);
        self.metric_link(crate::probes::names::THREAD_COUNT_PROMETHEUS, &l);
        self.out.push_str(" · ");
        self.metric_link(crate::probes::names::THREAD_LIMIT, &l);
        self.out.push_str("</div></div><table>");
        self.row(
            "threads",
            crate::probes::names::THREAD_COUNT_PROMETHEUS,
            &l,
            Unit::Named("threads"),
        );
        self.row(
            "processes",
            crate::probes::names::PROCESSES,
            &l,
            Unit::Count,
        );
        for (kind, _) in &limits {
            let ll = [("kind", kind.as_str()), ("service", name)];
            let title = match kind.as_str() {
                "expected" => "expected max threads",
                "rlimit_nproc" => "RLIMIT_NPROC",
                "cgroup_pids" => "cgroup pids.max",
                other => other,
            };
            self.row(title, crate::probes::names::THREAD_LIMIT, &ll, Unit::Count);
        }
        self.row(
            "CPU",
            crate::probes::names::CPU_UTILIZATION,
            &l,
            Unit::Percent,
        );
        self.row(
            "memory (RSS)",
            crate::probes::names::RESIDENT_MEMORY,
            &l,
            Unit::Bytes,
        );
        self.row(
            "open fds",
            crate::probes::names::OPEN_FDS,
            &l,
            Unit::Named("fds"),
        );
        self.row(
            "restarts",
            crate::probes::names::RESTARTS_TOTAL,
            &l,
            Unit::Count,
        );
        if let Some(start) = self.m().get(crate::probes::names::START_TIME, &l).cloned() {
            self.out.push_str("<tr><th>started</th><td colspan=\"2\">");
            w!(
                self.out,
                r#"<span class="v" data-metric="{}" data-value="{}">{}</span> ({} ago)"#,
                escape(&series_key(crate::probes::names::START_TIME, &start.labels)),
                escape(&start.raw),
                utc_datetime(start.value),
                format_value((self.input.now_unix - start.value).max(0.0), Unit::Seconds)
            );
            self.out.push_str("</td><td class=\"src\">");
            self.metric_link_short(crate::probes::names::START_TIME, &l);
            self.out.push_str("</td></tr>");
        }
        self.row(
            "last cold start",
            crate::probes::names::LAST_COLD_START,
            &l,
            Unit::Seconds,
        );
        self.row(
            "cold start budget",
            crate::alerting::names::metrics::COLD_START_BUDGET,
            &l,
            Unit::Seconds,
        );
        self.out.push_str("</table>");
        if let Some(h) = self.m().histogram(crate::probes::names::COLD_START, &l) {
            self.out.push_str("<div>");
            w!(
                self.out,
                r#"<div class="meta">cold starts: {} observed, mean {}</div>"#,
                format_value(h.count, Unit::Count),
                if h.count > 0.0 {
                    format_value(h.sum / h.count, Unit::Seconds)
                } else {
                    "–".into()
                }
            );
            chart::histogram(
                &mut self.out,
                "cold start seconds",
                &h.buckets,
                Unit::Seconds,
                420,
            );
            self.out.push_str(r#"<div class="src">"#);
            self.metric_link(&format!("{}_bucket", crate::probes::names::COLD_START), &l);
            self.out.push_str("</div></div>");
        }
        self.out.push_str("</div></article>");
    }

    fn host(&mut self) {
        w!(
            self.out,
            r#"<section id="host"><h2>Host <small>{}</small></h2><div class="card"><div class="cols"><div>"#,
            escape(self.input.host)
        );
        let mut chart = Chart::new("Threads on the host", Unit::Named("threads")).line(
            "threads",
            self.history(crate::probes::names::SYSTEM_THREADS, &[]),
        );
        let mut limits = Vec::new();
        for (kind, label) in [
            ("threads_max", "kernel.threads-max"),
            ("pid_max", "kernel.pid_max"),
        ] {
            if let Some(s) = self
                .m()
                .get(crate::probes::names::SYSTEM_THREAD_LIMIT, &[("kind", kind)])
            {
                chart = chart.threshold(label, s.value, false);
                limits.push(s.value);
            }
        }
        if let Some(low) = limits.into_iter().reduce(f64::min) {
            let at = rule_threshold(names::THREAD_LIMIT_NEAR);
            chart = chart.threshold(
                format!("{} at {:.0} %", names::THREAD_LIMIT_NEAR, at * 100.0),
                low * at,
                true,
            );
        }
        chart.render(&mut self.out);
        self.out.push_str(r#"<div class="src">"#);
        self.metric_link(crate::probes::names::SYSTEM_THREADS, &[]);
        self.out.push_str(" · ");
        self.metric_link(crate::probes::names::SYSTEM_THREAD_LIMIT, &[]);
        self.out.push_str("</div></div><table>");
        self.row(
            "threads",
            crate::probes::names::SYSTEM_THREADS,
            &[],
            Unit::Named("threads"),
        );
        self.row(
            "threads-max",
            crate::probes::names::SYSTEM_THREAD_LIMIT,
            &[("kind", "threads_max")],
            Unit::Count,
        );
        self.row(
            "pid_max",
            crate::probes::names::SYSTEM_THREAD_LIMIT,
            &[("kind", "pid_max")],
            Unit::Count,
        );
        self.row(
            "CPU busy",
            crate::probes::names::SYSTEM_CPU_UTILIZATION,
            &[],
            Unit::Percent,
        );
        self.row(
            "memory used",
            crate::probes::names::SYSTEM_MEMORY_USED,
            &[],
            Unit::Bytes,
        );
        self.row(
            "memory used (share)",
            crate::probes::names::SYSTEM_MEMORY_UTILIZATION,
            &[],
            Unit::Percent,
        );
        for period in ["1m", "5m", "15m"] {
            self.row(
                &format!("load {period}"),
                crate::probes::names::SYSTEM_LOAD,
                &[("period", period)],
                Unit::Count,
            );
        }
        // Totals since boot, as /metrics has them (a rate would be a number /metrics lacks).
        for (dir, title) in [
            ("receive", "network received"),
            ("transmit", "network sent"),
        ] {
            self.row(
                title,
                crate::probes::names::SYSTEM_NETWORK_IO,
                &[("direction", dir)],
                Unit::Bytes,
            );
        }
        for (dir, title) in [("read", "disk read"), ("write", "disk written")] {
            self.row(
                title,
                crate::probes::names::SYSTEM_DISK_IO,
                &[("direction", dir)],
                Unit::Bytes,
            );
        }
        self.out.push_str("</table></div></div></section>");
    }

    /// `name: value` pairs of a counter family for one subject, e.g. errors by kind.
    fn breakdown(&mut self, name: &str, subject: (&str, &str), by: &str) {
        let samples: Vec<Sample> = self
            .m()
            .matching(name, &[subject])
            .filter(|s| s.labels.len() == 2 && s.label(by).is_some())
            .cloned()
            .collect();
        if samples.is_empty() {
            self.out.push_str(r#"<span class="empty">–</span>"#);
        }
        for (i, s) in samples.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            w!(self.out, "{} ", escape(s.label(by).unwrap_or("?")));
            self.value(name, s, Unit::Count);
        }
    }

    fn caches(&mut self) {
        let names = self
            .m()
            .label_values(lookout_cache::names::VERSION, "cache");
        w!(
            self.out,
            r#"<section id="caches"><h2>Caches <small>{} configured</small></h2><div class="card">"#,
            names.len()
        );
        if names.is_empty() {
            self.out.push_str(
                r#"<span class="empty">No cache is configured ([[cache]]).</span></div></section>"#,
            );
            return;
        }
        self.out.push_str(r#"<table class="wide"><tr><th>cache</th><th>version</th><th>blob version</th><th>lag</th><th>staleness</th><th></th><th>blob tier</th><th>last refresh by phase</th><th>source loads</th><th>errors</th></tr>"#);
        for name in &names {
            let l = [("cache", name.as_str())];
            w!(
                self.out,
                r#"<tr data-cache="{0}"><td><b>{0}</b></td><td class="num">"#,
                escape(name)
            );
            self.value_of(lookout_cache::names::VERSION, &l, Unit::Count);
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(lookout_cache::names::BLOB_VERSION, &l, Unit::Count);
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(lookout_cache::names::VERSION_LAG, &l, Unit::Count);
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(lookout_cache::names::STALENESS_SECONDS, &l, Unit::Seconds);
            self.out.push_str("</td><td>");
            let stale_at = self
                .m()
                .get(crate::alerting::names::metrics::CACHE_CHECK_INTERVAL, &l)
                .map(|s| s.value * rule_threshold(names::CACHE_STALE));
            let h = self.history(lookout_cache::names::STALENESS_SECONDS, &l);
            if h.len() > 1 {
                chart::sparkline(&mut self.out, &h, 120, 22, stale_at);
            }
            self.out.push_str("</td><td>");
            self.badge(lookout_cache::names::BLOB_UP, &l, ("up", "failing"));
            self.out.push_str("</td><td>");
            let phases = self
                .input
                .caches
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.last_phases.clone())
                .unwrap_or_default();
            if phases.is_empty() {
                self.out.push_str(r#"<span class="empty">none yet</span>"#);
            }
            for (i, (phase, secs)) in phases.iter().enumerate() {
                w!(
                    self.out,
                    "{}{} {}",
                    if i > 0 { ", " } else { "" },
                    escape(phase),
                    format_value(*secs, Unit::Seconds)
                );
            }
            self.out.push_str("</td><td>");
            self.breakdown(
                lookout_cache::names::SOURCE_LOADS_TOTAL,
                ("cache", name),
                "outcome",
            );
            self.out.push_str("</td><td>");
            self.breakdown(lookout_cache::names::ERRORS_TOTAL, ("cache", name), "kind");
            self.out.push_str("</td></tr>");
        }
        self.out.push_str(r#"</table><div class="src">"#);
        for (i, n) in [
            lookout_cache::names::VERSION,
            lookout_cache::names::BLOB_VERSION,
            lookout_cache::names::VERSION_LAG,
            lookout_cache::names::STALENESS_SECONDS,
            lookout_cache::names::REFRESH_DURATION_SECONDS,
            lookout_cache::names::SOURCE_LOADS_TOTAL,
            lookout_cache::names::ERRORS_TOTAL,
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                self.out.push_str(" · ");
            }
            self.metric_link(n, &[]);
        }
        w!(
            self.out,
            r#"</div><div class="meta">staleness sparkline: the dashed line is where {} fires ({} × check_interval).</div></div></section>"#,
            names::CACHE_STALE,
            rule_threshold(names::CACHE_STALE)
        );
    }

    fn trackers(&mut self) {
        let names = self
            .m()
            .label_values(lookout_tracker::names::PRIMARY_GENERATION, "service");
        w!(
            self.out,
            r#"<section id="trackers"><h2>Primary trackers <small>{} configured</small></h2><div class="card">"#,
            names.len()
        );
        if names.is_empty() {
            self.out
                .push_str(r#"<span class="empty">No tracker is configured ([[tracker]]).</span></div></section>"#);
            return;
        }
        self.out.push_str(r#"<table class="wide"><tr><th>service</th><th>primary</th><th>generation</th><th>changes</th><th>unavailable</th><th>throttled</th><th>in flight</th><th>requests</th></tr>"#);
        for name in &names {
            let l = [("service", name.as_str())];
            w!(
                self.out,
                r#"<tr data-tracker="{0}"><td><b>{0}</b></td><td>"#,
                escape(name)
            );
            let view = self.input.trackers.iter().find(|t| &t.service == name);
            self.badge(
                lookout_tracker::names::PRIMARY_UP,
                &l,
                ("known", "none known"),
            );
            if let Some(url) = view.and_then(|v| v.primary.as_deref()) {
                w!(
                    self.out,
                    r#" <code class="primary">{}</code> <span class="meta">for {}</span>"#,
                    escape(url),
                    format_value(view.map_or(0.0, |v| v.since_secs), Unit::Seconds)
                );
            }
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(lookout_tracker::names::PRIMARY_GENERATION, &l, Unit::Count);
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(
                lookout_tracker::names::PRIMARY_CHANGES_TOTAL,
                &l,
                Unit::Count,
            );
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(
                lookout_tracker::names::PRIMARY_UNAVAILABLE_SECONDS_TOTAL,
                &l,
                Unit::Seconds,
            );
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(lookout_tracker::names::THROTTLED_TOTAL, &l, Unit::Count);
            self.out.push_str(r#"</td><td class="num">"#);
            self.value_of(lookout_tracker::names::IN_FLIGHT, &l, Unit::Count);
            let h = self.history(lookout_tracker::names::IN_FLIGHT, &l);
            if h.len() > 1 {
                chart::sparkline(&mut self.out, &h, 90, 20, None);
            }
            self.out.push_str("</td><td>");
            self.breakdown(
                lookout_tracker::names::REQUESTS_TOTAL,
                ("service", name),
                "outcome",
            );
            self.out.push_str("</td></tr>");
        }
        self.out.push_str(r#"</table><div class="src">"#);
        for (i, n) in [
            lookout_tracker::names::PRIMARY_GENERATION,
            lookout_tracker::names::PRIMARY_CHANGES_TOTAL,
            lookout_tracker::names::PRIMARY_UNAVAILABLE_SECONDS_TOTAL,
            lookout_tracker::names::THROTTLED_TOTAL,
            lookout_tracker::names::IN_FLIGHT,
            lookout_tracker::names::REQUESTS_TOTAL,
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                self.out.push_str(" · ");
            }
            self.metric_link(n, &[]);
        }
        self.out.push_str("</div></div></section>");
    }

    fn anomalies(&mut self) {
        const TOP: usize = 6;
        self.out.push_str(r#"<section id="anomalies"><h2>Anomaly scores <small>the series least like their own history, now</small></h2><div class="card">"#);
        let rate = self.history(crate::anomaly::RATE, &[]);
        if self.m().get(crate::anomaly::RATE, &[]).is_none() {
            self.out.push_str(r#"<span class="empty">The anomaly detector is off ([detectors.anomaly] enabled = false).</span></div></section>"#);
            return;
        }
        self.out.push_str(r#"<div class="cols"><div>"#);
        let mut chart = Chart::new("Share of series anomalous", Unit::Percent)
            .line("anomalous share", rate)
            .threshold("anomaly event starts", crate::anomaly::EVENT_ON, false);
        chart.y_range = None;
        chart.render(&mut self.out);
        self.out.push_str(r#"<div class="src">"#);
        self.metric_link(crate::anomaly::RATE, &[]);
        self.out.push_str("</div></div><table>");
        self.row("anomalous share", crate::anomaly::RATE, &[], Unit::Percent);
        self.row("event active", crate::anomaly::EVENT, &[], Unit::Count);
        self.out.push_str("</table></div>");

        let mut scores: Vec<&Sample> = self
            .m()
            .all(crate::anomaly::SCORE)
            .iter()
            .filter(|s| s.value > 0.0 && s.label("metric").is_some())
            .collect();
        scores.sort_by(|a, b| b.value.total_cmp(&a.value));
        scores.truncate(TOP);
        if scores.is_empty() {
            self.out
                .push_str(r#"<p class="empty">No series scores above 0 now.</p>"#);
            self.out.push_str("</div></section>");
            return;
        }
        // The store key of each scored series, by its display name (the `metric` label).
        let wanted: Vec<&str> = scores.iter().filter_map(|s| s.label("metric")).collect();
        let keys: Vec<(String, SeriesKey)> = self
            .input
            .series
            .keys()
            .into_iter()
            .map(|k| (k.to_string(), k))
            .filter(|(s, _)| wanted.contains(&s.as_str()))
            .collect();
        let threshold = lookout_detectors::anomaly::Method::default().operating_threshold();
        w!(
            self.out,
            r#"<h3 style="margin-top:12px">Top {} series now</h3><div class="grid">"#,
            scores.len()
        );
        for s in scores {
            let metric = s.label("metric").unwrap_or("?").to_string();
            self.out.push_str(r#"<div class="pair">"#);
            let values: Vec<(f64, f64)> = keys
                .iter()
                .find(|(name, _)| *name == metric)
                .map(|(_, k)| {
                    self.input
                        .series
                        .samples(k)
                        .into_iter()
                        .map(|x| (self.offset + f64::from(x.t), f64::from(x.v)))
                        .collect()
                })
                .unwrap_or_default();
            let mut c = Chart::new(metric.clone(), unit_of(&metric))
                .size(560, 170)
                .line("value", values);
            c.zero = false;
            c.render(&mut self.out);
            let ml = [("metric", metric.as_str())];
            let mut sc = Chart::new("anomaly score", Unit::Count)
                .size(560, 120)
                .line("score", self.history(crate::anomaly::SCORE, &ml))
                .threshold("operating threshold", threshold, true);
            sc.lines[0].color = chart::PALETTE[1];
            sc.y_range = Some((0.0, 1.0));
            sc.render(&mut self.out);
            self.out.push_str(r#"<div class="src">score now "#);
            let s = s.clone();
            self.value(crate::anomaly::SCORE, &s, Unit::Count);
            self.out.push_str(" · ");
            self.metric_link(crate::anomaly::SCORE, &ml);
            self.out.push_str("</div></div>");
        }
        self.out.push_str("</div></div></section>");
    }
}

/// The unit of a series from its name's conventional suffix (OpenTelemetry and Prometheus
/// naming): what an anomaly chart of an arbitrary series can know.
fn unit_of(series: &str) -> Unit {
    let name = series.split('{').next().unwrap_or(series);
    if name.contains("bytes") {
        Unit::Bytes
    } else if name.ends_with("_seconds") || name.ends_with("_seconds_total") {
        Unit::Seconds
    } else if name.ends_with("utilization") || name.ends_with("_ratio") || name.ends_with("_rate") {
        Unit::Percent
    } else if name.contains("thread") {
        Unit::Named("threads")
    } else {
        Unit::Count
    }
}

/// A rule's default threshold (the page has no config; overrides in `[alerts.rules]` are not
/// reflected in the drawn line).
fn rule_threshold(name: &str) -> f64 {
    crate::alerting::rules::all()
        .into_iter()
        .find(|r| r.name == name)
        .map_or(f64::NAN, |r| r.threshold)
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::engine::{ApiStatus, Notice};
    use std::collections::BTreeMap;

    const EVIL: &str = "<script>alert(1)</script>";

    fn metrics() -> Exposition {
        Exposition::parse(&format!(
            r#"lookout_build_info{{version="0.1.0"}} 1
lookout_service_up{{service="{EVIL}"}} 1
lookout_service_up{{service="lookout"}} 1
process_thread_count{{service="{EVIL}"}} 42
lookout_service_thread_limit{{kind="expected",service="{EVIL}"}} 40
lookout_service_thread_limit{{kind="rlimit_nproc",service="{EVIL}"}} 127412
lookout_service_restarts_total{{service="{EVIL}"}} 2
system_thread_count 800
system_thread_limit{{kind="pid_max"}} 4194304
lookout_cache_version{{cache="c1"}} 7
lookout_cache_blob_version{{cache="c1"}} 8
lookout_cache_version_lag{{cache="c1"}} 1
lookout_cache_errors_total{{cache="c1",kind="blob"}} 3
lookout_primary_generation{{service="t1"}} 4
lookout_primary_up{{service="t1"}} 1
lookout_host_anomaly_rate 0.02
lookout_anomaly_score{{metric="system_thread_count"}} 0.97
"#
        ))
    }

    fn alert() -> ApiAlert {
        let labels: BTreeMap<String, String> = [
            ("alertname", "ThreadCountAboveExpected"),
            ("severity", "ticket"),
            ("host", "h"),
            ("service", EVIL),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let annotations: BTreeMap<String, String> = [
            ("summary", format!("{EVIL} has 42 threads")),
            (
                "runbook_url",
                "http://127.0.0.1:9464/runbooks/ThreadCountAboveExpected?a=1&b=2".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ApiAlert {
            notice: Notice {
                labels,
                annotations,
                starts_at: "2026-12-01T08:00:00.000Z".into(),
                ends_at: None,
                generator_url: String::new(),
            },
            status: ApiStatus {
                state: "active",
                inhibited_by: vec![],
            },
            value: 42.0,
        }
    }

    #[test]
    fn renders_every_section_escaped_with_traceable_values() {
        let store = SeriesStore::new(16);
        for i in 0..10 {
            store.record(
                &SeriesKey::new("process.thread.count", &[("service", EVIL)]),
                30.0 + i as f64,
            );
            store.record(&SeriesKey::new("system_thread_count", &[]), 800.0);
        }
        let m = metrics();
        let finding = Finding::new("timeout", "missing_timeout", format!("thread 7 of {EVIL}"))
            .label("service", EVIL)
            .detail(serde_json::json!({"tid": 7, "syscall": "recvfrom", "peer": "127.0.0.1:5432", "detail": "set a timeout", "timeout": "infinite", "blocked_seconds": 12.5}));
        let html = render(&PageInput {
            host: "web<1>",
            now_unix: 1_796_112_000.0,
            metrics: &m,
            series: &store,
            alerts: &[alert()],
            findings: &[finding],
            trackers: &[TrackerView {
                service: "t1".into(),
                primary: Some("http://127.0.0.1:7001/\"x".into()),
                since_secs: 5.0,
            }],
            caches: &[],
            long: None,
        });
        assert!(!html.contains(EVIL), "unescaped config text");
        assert!(!html.contains("web<1>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        for id in [
            "alerts",
            "findings",
            "services",
            "host",
            "caches",
            "trackers",
            "anomalies",
        ] {
            assert!(
                html.contains(&format!(r#"<section id="{id}">"#)),
                "section {id}"
            );
        }
        // Values carry their series and their /metrics text.
        assert!(html.contains(r#"data-metric="process_thread_count{service=&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;}" data-value="42">42<"#), "{html}");
        assert!(html.contains(
            r#"data-metric="lookout_cache_version_lag{cache=&quot;c1&quot;}" data-value="1""#
        ));
        assert!(html.contains(r#"data-metric="lookout_cache_errors_total{cache=&quot;c1&quot;,kind=&quot;blob&quot;}" data-value="3""#));
        // The alert with its runbook link (escaped URL) and age.
        assert!(html.contains(r#"class="runbook" href="http://127.0.0.1:9464/runbooks/ThreadCountAboveExpected?a=1&amp;b=2""#));
        assert!(html.contains("firing since 2026-12-01 08:00:00 UTC"));
        // The timeout finding's thread, syscall, peer and advice.
        for s in ["recvfrom", "127.0.0.1:5432", "set a timeout", ">7<"] {
            assert!(html.contains(s), "{s}");
        }
        assert!(html.contains(r#"<code class="primary">http://127.0.0.1:7001/&quot;x</code>"#));
        // The threads chart draws the expected limit as the alert's threshold.
        assert!(html.contains("expected (alert ThreadCountAboveExpected above) 40"));
        assert!(
            html.contains("chip bad"),
            "a firing alert is flagged at the top"
        );
        // The top anomaly series is charted with its score.
        assert!(html.contains(">system_thread_count</text>"));
        assert!(html.contains(r#"data-metric="lookout_anomaly_score{metric=&quot;system_thread_count&quot;}" data-value="0.97""#));
        // The script the CSP allows is the one on the page.
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
    }

    #[test]
    fn an_empty_agent_renders_placeholders() {
        let store = SeriesStore::new(16);
        let m = Exposition::parse("");
        let html = render(&PageInput {
            host: "h",
            now_unix: 0.0,
            metrics: &m,
            series: &store,
            alerts: &[],
            findings: &[],
            trackers: &[],
            caches: &[],
            long: None,
        });
        assert!(html.contains("No alert is firing."));
        assert!(html.contains("No service is watched"));
        assert!(html.contains("no alert firing"));
        assert!(!html.contains("data-metric"));
    }
}
