//! `GET /api/v1/alerts` and `GET /runbooks/{AlertName}`.

use crate::http::AppState;
use axum::Router;
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/alerts",
        get(|| async { axum::Json(Vec::<serde_json::Value>::new()) }),
    )
}
