//! `GET /v1/cache/{name}` over [`lookout_cache::Cache`]: the cached document with `ETag` = its version, `If-None-Match` →
//! 304, `?consistency=strong` validated against the blob tier first (503 when it cannot be),
//! and the `X-Lookout-Version` / `X-Lookout-Staleness-Seconds` headers.

use super::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/cache/{name}", get(serve))
}

#[derive(Deserialize)]
struct ReadParams {
    consistency: Option<String>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn serve(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Response {
    let Some(cache) = state.components.caches.load().get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no cache named {name:?}"));
    };
    let snapshot = match params.consistency.as_deref() {
        None | Some("eventual") => match cache.get() {
            Some(s) => s,
            None => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cache {name} has no version yet"),
                );
            }
        },
        Some("strong") => match cache.get_strong().await {
            Ok(s) => s,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cache {name}: strong read not possible: {e}"),
                );
            }
        },
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("consistency must be \"strong\" or \"eventual\", not {other:?}"),
            );
        }
    };
    let etag = format!("\"{}\"", snapshot.version);
    let staleness = format!("{:.3}", cache.staleness().as_secs_f64());
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert("x-lookout-version", HeaderValue::from(snapshot.version));
    if let Ok(v) = HeaderValue::from_str(&staleness) {
        out.insert("x-lookout-staleness-seconds", v);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    if not_modified {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    (StatusCode::OK, out, snapshot.bytes.clone()).into_response()
}
