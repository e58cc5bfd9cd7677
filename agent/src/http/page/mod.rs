//! `GET /`: the status page for the person on call. Server-rendered HTML with inline SVG
//! charts (see [`crate::chart`]); no JavaScript framework, nothing fetched from elsewhere (it
//! works on a host with no internet), one small script that reloads it every 15 s unless
//! paused.
//!
//! Sections: firing alerts (summary, since when, runbook), recent detector findings, every
//! watched service, the host, every cache, every tracker, and the series with the highest
//! anomaly scores.
//!
//! Where the numbers come from: every value is taken from the agent's own `/metrics` text,
//! encoded and parsed back at request time ([`exposition`]), so the page and `/metrics` agree
//! by construction and a subject a reload removed (gone from `/metrics`) is gone from the page.
//! Each value carries `data-metric` (the series, `name{labels}` with labels sorted) and
//! `data-value` (its text in `/metrics`), for scripts and tests. Histories (charts, sparklines)
//! come from the series store; the active alerts from the alert engine's view; findings from
//! the findings log; the current primary's URL and the last refresh phases from the tracker and
//! cache handles. Charts reach back six hours at minute resolution before the store's samples
//! ([`history`]). Everything that comes from config, the host or a peer is HTML-escaped.

pub mod exposition;
pub mod history;
mod render;

use crate::http::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
pub use exposition::{Exposition, series_key};
pub use history::History;
pub use render::{CacheView, PageInput, TrackerView, render};
use std::sync::Arc;

/// The page's Content-Security-Policy: nothing loads from anywhere, inline styles are allowed
/// and the one inline script only by its hash (an escaping mistake cannot run injected code).
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(render::SCRIPT.as_bytes());
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            base64::engine::general_purpose::STANDARD.encode(hash)
        )
    })
}

/// The route of the page, `GET /`, with its minute history (rolled up from now on until
/// the agent stops).
pub fn routes(ctx: &crate::context::Context) -> axum::routing::MethodRouter<AppState> {
    let long = History::spawn(ctx.series.clone(), ctx.shutdown.clone());
    axum::routing::get(page).layer(Extension(long))
}

/// The handler of `GET /`.
pub async fn page(
    State(app): State<AppState>,
    Extension(long): Extension<Arc<History>>,
) -> Response {
    // `/metrics` first: the subjects shown are the ones it has now.
    let text = app.telemetry.encode_prometheus();
    let metrics = Exposition::parse(&String::from_utf8_lossy(&text));
    let alerts = app.components.alerts.load_full();
    let mut findings = app.ctx.findings.all();
    findings.reverse();
    let trackers: Vec<TrackerView> = app
        .components
        .trackers
        .load()
        .values()
        .map(|t| {
            let snap = t.snapshot();
            TrackerView {
                service: t.service().to_string(),
                primary: snap.primary.as_ref().map(|p| p.base.to_string()),
                since_secs: snap.since.elapsed().as_secs_f64(),
            }
        })
        .collect();
    let caches: Vec<CacheView> = app
        .components
        .caches
        .load()
        .values()
        .map(|c| {
            let mut last_phases: Vec<(String, f64)> = c
                .last_phase_durations()
                .into_iter()
                .map(|(p, d)| (p.to_string(), d.as_secs_f64()))
                .collect();
            last_phases.sort_by(|a, b| a.0.cmp(&b.0));
            CacheView {
                name: c.name().to_string(),
                last_phases,
            }
        })
        .collect();
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let html = render(&PageInput {
        host: &app.ctx.host,
        now_unix,
        metrics: &metrics,
        series: &app.ctx.series,
        alerts: &alerts,
        findings: &findings,
        trackers: &trackers,
        caches: &caches,
        long: Some(&long),
    });
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, csp()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}
