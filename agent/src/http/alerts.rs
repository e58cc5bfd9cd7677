//! `GET /api/v1/alerts` (the active alerts, Alertmanager v2 form) and
//! `GET /runbooks/{AlertName}` (the troubleshooting guide: markdown, or a simple HTML page for
//! browsers that ask for `text/html`; 404 for names that are not alerts).

use super::AppState;
use crate::alerting::runbooks;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/runbooks/{name}", get(runbook))
}

async fn alerts(State(app): State<AppState>) -> Response {
    let list = app.components.alerts.load_full();
    axum::Json(list.as_ref().clone()).into_response()
}

async fn runbook(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let name = name.trim_end_matches(".md");
    let Some(text) = runbooks::markdown(name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no runbook named {name:?}: not an alert of lookout\n"),
        )
            .into_response();
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{name} — lookout runbook</title>\
             <style>body{{max-width:60em;margin:2em auto;font:16px/1.5 sans-serif}}pre{{white-space:pre-wrap}}</style>\
             </head><body><pre>{}</pre></body></html>",
            escape_html(text)
        );
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
