//! `GET /v1/primary/{service} and /v1/proxy/{service}/{path}`.

use crate::http::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
