//! The tracker's HTTP surface: `GET /v1/primary/{service}` (who is the primary) and
//! `any /v1/proxy/{service}/{path}` (forward to it: method, headers less hop-by-hop ones, and
//! streamed bodies both ways; 503 when no primary is known, 429 when throttled).

use super::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use lookout_tracker::{ForwardBody, Tracker, TrackerError, is_hop_by_hop};
use std::sync::Arc;

/// Bodies up to this size are held in memory so that idempotent requests can be retried on
/// another primary; larger or unsized ones stream through once.
const BUFFER_LIMIT: u64 = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/primary/{service}", get(primary))
        .route("/v1/proxy/{service}/{*path}", any(proxy))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// The tracker of `service`, or the 404 to answer.
fn find(app: &AppState, service: &str) -> Result<Arc<Tracker>, Box<Response>> {
    app.components
        .trackers
        .load()
        .get(service)
        .cloned()
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::NOT_FOUND,
                format!("no [[tracker]] for service {service:?}"),
            ))
        })
}

async fn primary(State(app): State<AppState>, Path(service): Path<String>) -> Response {
    let tracker = match find(&app, &service) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let snap = tracker.snapshot();
    let since = snap.since.elapsed().as_secs_f64();
    match &snap.primary {
        Some(p) => axum::Json(serde_json::json!({
            "primary": &*p.base,
            "generation": snap.generation,
            "since_seconds": since,
            "fence": p.fence,
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": format!("no primary is known for service {service:?}"),
                "generation": snap.generation,
                "since_seconds": since,
            })),
        )
            .into_response(),
    }
}

async fn proxy(
    State(app): State<AppState>,
    Path((service, _path)): Path<(String, String)>,
    req: Request,
) -> Response {
    let tracker = match find(&app, &service) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let (parts, body) = req.into_parts();
    // Take the path from the raw URI so its percent-encoding reaches the primary unchanged.
    let prefix_len = "/v1/proxy/".len() + raw_segment_len(&parts.uri, "/v1/proxy/");
    let raw_path = &parts.uri.path()[prefix_len.min(parts.uri.path().len())..];
    let target = match parts.uri.query() {
        Some(q) => format!("{raw_path}?{q}"),
        None => raw_path.to_string(),
    };

    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    let body = match (length, chunked) {
        (Some(n), false) if n <= BUFFER_LIMIT => {
            match axum::body::to_bytes(body, BUFFER_LIMIT as usize).await {
                Ok(b) => ForwardBody::Full(b),
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"));
                }
            }
        }
        (None, false) => ForwardBody::Full(bytes::Bytes::new()),
        _ => ForwardBody::Stream(reqwest::Body::wrap_stream(body.into_data_stream())),
    };

    match tracker
        .forward(&parts.method, &target, &parts.headers, body)
        .await
    {
        Ok(streamed) => {
            let status = streamed.response.status();
            let mut builder = Response::builder().status(status.as_u16());
            for (name, value) in streamed.response.headers() {
                if !is_hop_by_hop(name) {
                    builder = builder.header(name, value);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&streamed.primary.base) {
                builder = builder.header("x-lookout-primary", v);
            }
            builder = builder.header("x-lookout-generation", streamed.generation);
            builder
                .body(Body::from_stream(streamed.into_stream()))
                .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string()))
        }
        Err(e) => {
            let status = match &e {
                TrackerError::NoPrimary { .. } => StatusCode::SERVICE_UNAVAILABLE,
                TrackerError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                TrackerError::BadRequest(_) => StatusCode::BAD_REQUEST,
                TrackerError::Failed { .. } | TrackerError::Status { .. } => {
                    StatusCode::BAD_GATEWAY
                }
                TrackerError::Client { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
    }
}

/// Length of the raw (still percent-encoded) path segment after `prefix`.
fn raw_segment_len(uri: &axum::http::Uri, prefix: &str) -> usize {
    let rest = uri.path().strip_prefix(prefix).unwrap_or("");
    rest.find('/').unwrap_or(rest.len())
}
