//! The HTTP surface of CONTRACT.md on axum: the status page `/` ([`page`]), `/metrics`,
//! `/healthz`, `/readyz`, the alert and findings APIs, runbooks (`alerts.rs`), and the routes
//! of the cache (`cache.rs`) and the primary tracker (`tracker.rs`).
//!
//! Handlers read the current components through [`Components`], which a config reload swaps
//! whole, so a request never sees half of an old config and half of a new one.

mod alerts;
mod cache;
pub mod guard;
pub mod names;
pub mod page;
pub mod serve;
mod tracker;

use crate::components::Components;
use crate::context::Context;
use crate::telemetry::Telemetry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Everything a handler may need.
#[derive(Clone)]
pub struct AppState {
    pub telemetry: Arc<Telemetry>,
    pub ctx: Context,
    pub components: Arc<Components>,
    /// Host, origin and token checks in front of every route.
    pub guard: Arc<guard::Guard>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", page::routes(&state.ctx))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/findings", get(findings))
        .merge(alerts::routes())
        .merge(cache::routes())
        .merge(tracker::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::layer,
        ))
        .with_state(state)
}

async fn metrics(State(app): State<AppState>) -> Response {
    let body = app.telemetry.encode_prometheus();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<AppState>) -> Response {
    let blocking = app.ctx.readiness.blocking();
    if blocking.is_empty() {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"ready": true})),
        )
            .into_response()
    } else {
        let reasons: Vec<_> = blocking
            .into_iter()
            .map(|(gate, reason)| serde_json::json!({"gate": gate, "reason": reason}))
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"ready": false, "reasons": reasons})),
        )
            .into_response()
    }
}

async fn findings(State(app): State<AppState>) -> Response {
    let mut all = app.ctx.findings.all();
    all.reverse();
    axum::Json(all).into_response()
}

/// Bind the listener; a failure names the address.
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
