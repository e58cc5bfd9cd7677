//! The tracker's HTTP surface: `GET /v1/primary/{service}` (who is the primary) and
//! `any /v1/proxy/{service}/{path}` (forward to it: an allowed method, headers less hop-by-hop
//! and `Connection`-listed ones, a bounded request body read whole, the response streamed
//! back with size and idle limits; 503 when no primary is known, 429 when throttled).

use super::AppState;
use crate::components::tracker::ProxyPolicy;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::StreamExt;
use lookout_tracker::{ForwardBody, Tracker, TrackerError, is_hop_by_hop};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::error::TrySendError;

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
    let Some(policy) = app.components.proxy_policies.load().get(&service).cloned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the tracker of {service:?} is restarting"),
        );
    };
    let (mut parts, body) = req.into_parts();
    if !policy.methods.contains(&parts.method) {
        let allow: Vec<&str> = policy.methods.iter().map(|m| m.as_str()).collect();
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not forwarded to {service} (the tracker's `methods`)",
                parts.method
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return resp;
    }
    strip_connection_headers(&mut parts.headers);
    // Take the path from the raw URI so its percent-encoding reaches the primary unchanged.
    let prefix_len = "/v1/proxy/".len() + raw_segment_len(&parts.uri, "/v1/proxy/");
    let raw_path = &parts.uri.path()[prefix_len.min(parts.uri.path().len())..];
    let target = match parts.uri.query() {
        Some(q) => format!("{raw_path}?{q}"),
        None => raw_path.to_string(),
    };

    // The body is read whole before anything is sent: a slow client then costs only its own
    // request (408), never a primary's slot or a failover, and idempotent requests can be
    // retried on another primary.
    let body = match read_body(body, &parts.headers, &policy).await {
        Ok(b) => b,
        Err(r) => return *r,
    };

    match tracker
        .forward(
            &parts.method,
            &target,
            &parts.headers,
            ForwardBody::Full(body),
        )
        .await
    {
        Ok(streamed) => relay(streamed, &policy),
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

/// Memory all proxied request bodies being read may hold together; a request that would go
/// over waits (up to its idle timeout) for others to finish.
static BODY_BUDGET: Semaphore = Semaphore::const_new(BODY_BUDGET_BYTES);
const BODY_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// Read a request body whole: at most `max_request_body` bytes (413), no pause longer than
/// `idle_timeout` (408).
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    policy: &ProxyPolicy,
) -> Result<Bytes, Box<Response>> {
    let too_large = || {
        Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request bodies above {} bytes are not forwarded (max_request_body)",
                policy.max_request_body
            ),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > policy.max_request_body) {
        return Err(too_large());
    }
    if declared == Some(0)
        || (declared.is_none() && !headers.contains_key(header::TRANSFER_ENCODING))
    {
        return Ok(Bytes::new());
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut held = Vec::new();
    loop {
        let next = tokio::time::timeout(policy.idle_timeout, stream.next()).await;
        let chunk = match next {
            Err(_) => {
                return Err(Box::new(error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body paused for more than {:?}",
                        policy.idle_timeout
                    ),
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )));
            }
            Ok(Some(Ok(c))) => c,
        };
        if buf.len() as u64 + chunk.len() as u64 > policy.max_request_body {
            return Err(too_large());
        }
        let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        match tokio::time::timeout(policy.idle_timeout, BODY_BUDGET.acquire_many(n)).await {
            Ok(Ok(p)) => held.push(p),
            _ => {
                return Err(Box::new(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies in flight through the proxy",
                )));
            }
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Send the primary's response on: status, end-to-end headers, and the body through a pump
/// task that (1) cuts it off past `max_response_body`, (2) abandons it when the primary or
/// the client pauses longer than `idle_timeout`, and (3) gives the throttle slot back as soon
/// as the client, not the primary, is what the stream waits for — so clients that read
/// slowly (or never) cannot keep every slot and make all other requests 429.
fn relay(streamed: lookout_tracker::Streamed, policy: &ProxyPolicy) -> Response {
    let status = streamed.response.status();
    let mut headers = streamed.response.headers().clone();
    strip_connection_headers(&mut headers);
    let mut builder = Response::builder().status(status.as_u16());
    for (name, value) in &headers {
        if !is_hop_by_hop(name) {
            builder = builder.header(name, value);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&streamed.primary.base) {
        builder = builder.header("x-lookout-primary", v);
    }
    builder = builder.header("x-lookout-generation", streamed.generation);
    if streamed
        .response
        .content_length()
        .is_some_and(|n| n > policy.max_response_body)
    {
        return error(
            StatusCode::BAD_GATEWAY,
            format!(
                "the primary's response is larger than max_response_body ({} bytes)",
                policy.max_response_body
            ),
        );
    }
    let (response, permit) = streamed.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(RELAY_CHUNKS);
    let failed = Arc::new(std::sync::Mutex::new(None::<String>));
    let idle = policy.idle_timeout;
    let max = policy.max_response_body;
    let failed_pump = failed.clone();
    tokio::spawn(async move {
        let mut permit = Some(permit);
        let mut upstream = response.bytes_stream();
        let mut relayed: u64 = 0;
        let outcome: Result<(), String> = loop {
            let chunk = match tokio::time::timeout(idle, upstream.next()).await {
                Err(_) => break Err(format!("the primary paused for more than {idle:?}")),
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => break Err(format!("reading the primary's response: {e}")),
                Ok(Some(Ok(c))) => c,
            };
            relayed += chunk.len() as u64;
            if relayed > max {
                break Err(format!(
                    "the response exceeds max_response_body ({max} bytes)"
                ));
            }
            match tx.try_send(Ok(chunk)) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => break Ok(()),
                Err(TrySendError::Full(item)) => {
                    // The client is the bottleneck now: free the slot for other requests.
                    permit.take();
                    match tokio::time::timeout(idle, tx.send(item)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break Ok(()),
                        Err(_) => break Err(format!("the client paused for more than {idle:?}")),
                    }
                }
            }
        };
        drop(permit);
        if let Err(reason) = outcome {
            tracing::debug!("proxied response abandoned: {reason}");
            *failed_pump.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        }
    });
    // A cut-off body must end with an error, not look complete: hyper then closes the
    // connection instead of finishing a chunked body.
    let body = futures::stream::unfold(Some(rx), move |state| {
        let failed = failed.clone();
        async move {
            let mut rx = state?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None => {
                    let reason = failed.lock().unwrap_or_else(|e| e.into_inner()).take()?;
                    Some((Err(std::io::Error::other(reason)), None))
                }
            }
        }
    });
    builder
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string()))
}

/// Chunks a relayed response may have in flight between the primary and a slow client.
const RELAY_CHUNKS: usize = 8;

/// Remove the headers a `Connection` header names (RFC 9110 §7.6.1): they are hop-by-hop
/// for this connection only. The fixed hop-by-hop names go later, where headers are copied.
pub fn strip_connection_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(&name);
    }
    headers.remove(header::CONNECTION);
}

/// Length of the raw (still percent-encoded) path segment after `prefix`.
fn raw_segment_len(uri: &axum::http::Uri, prefix: &str) -> usize {
    let rest = uri.path().strip_prefix(prefix).unwrap_or("");
    rest.find('/').unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret ,x-other"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("2"));
        h.insert("x-kept", HeaderValue::from_static("3"));
        strip_connection_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    proptest! {
        /// Whatever a Connection header lists, no listed header survives and nothing panics.
        #[test]
        fn no_listed_header_survives(names in proptest::collection::vec("[a-z][a-z0-9-]{0,12}", 0..6), junk in "[ -~]{0,30}") {
            let mut h = HeaderMap::new();
            let list = names.join(", ");
            if let Ok(v) = HeaderValue::from_str(&format!("{list},{junk}")) {
                h.insert(header::CONNECTION, v);
                for n in &names {
                    h.insert(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_static("v"));
                }
                strip_connection_headers(&mut h);
                for n in &names {
                    prop_assert!(!h.contains_key(n.as_str()));
                }
                prop_assert!(!h.contains_key(header::CONNECTION));
            }
        }
    }
}
