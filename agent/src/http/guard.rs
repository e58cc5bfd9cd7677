//! Who may talk to the API: the checks every request passes before a handler runs.
//!
//! - **Host** (DNS rebinding). A web page that rebinds its own name to 127.0.0.1 reaches the
//!   agent with `Host: <its name>`; only IP literals, `localhost`, `agent.host`, the host of
//!   `agent.listen` and `agent.allowed_hosts` are accepted (421 otherwise), with the listen
//!   port when a port is given. Applied to `/v1/*` always, and to every path when the agent
//!   listens on loopback (where no other name can be legitimate).
//! - **Origin** (CSRF). A browser names the page that sent a request in `Origin` and
//!   `Sec-Fetch-Site`; a `/v1/*` request from any other site is refused (403). Tools such as
//!   curl or a service's HTTP client send neither.
//! - **Token**. With `agent.api_token_file`, every `/v1/*` request needs `Authorization:
//!   Bearer <token>` (401 otherwise); on `/v1/proxy` it may come as `Proxy-Authorization`
//!   instead. Candidates are compared through their SHA-256 digests with a constant-time
//!   equality, so neither the content nor the length of the token leaks through timing. The
//!   header that carried the token is removed before the proxy sees the request, so the
//!   token never reaches a primary.

use super::AppState;
use arc_swap::ArcSwapOption;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use subtle::ConstantTimeEq;

/// The API's access policy; the token can be replaced on reload.
pub struct Guard {
    token: ArcSwapOption<[u8; 32]>,
    port: u16,
    /// Lower-case host names accepted in `Host` besides IP literals.
    names: Vec<String>,
    /// The agent listens on loopback only: check `Host` on every path.
    loopback: bool,
}

/// Why a request is turned away (the status and a one-line reason).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
}

impl Guard {
    /// A guard for a server listening on `listen` (`host:port`, as bound) for host `agent_host`.
    pub fn new(
        listen: std::net::SocketAddr,
        listen_host: &str,
        agent_host: &str,
        allowed: &[String],
    ) -> Self {
        let mut names = vec!["localhost".to_string(), agent_host.to_ascii_lowercase()];
        names.push(
            listen_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
        );
        names.extend(allowed.iter().map(|h| h.to_ascii_lowercase()));
        names.retain(|n| !n.is_empty());
        names.dedup();
        Self {
            token: ArcSwapOption::empty(),
            port: listen.port(),
            names,
            loopback: listen.ip().is_loopback(),
        }
    }

    /// Require `token` from now on (`None`: the API is open).
    pub fn set_token(&self, token: Option<&str>) {
        self.token
            .store(token.map(|t| std::sync::Arc::new(Sha256::digest(t.as_bytes()).into())));
    }

    pub fn has_token(&self) -> bool {
        self.token.load().is_some()
    }

    /// Whether `host` (a `Host` header value) names this agent.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        if authority.as_str().contains('@') {
            return false;
        }
        // What follows the host must be nothing or `:<this port>` (http's `port()` reads an
        // invalid port as none).
        let rest = &authority.as_str()[authority.host().len()..];
        if !rest.is_empty()
            && rest.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) != Some(self.port)
        {
            return false;
        }
        let name = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if name.parse::<IpAddr>().is_ok() {
            // A rebinding page always arrives under a name: an IP literal was typed by
            // whoever sent the request.
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&name)
    }

    /// Check one request's headers; `path` decides which checks apply. On success, the
    /// header that carried the token (if any) is removed from `headers`.
    pub fn check(&self, path: &str, headers: &mut HeaderMap) -> Result<(), Refusal> {
        let api = path.starts_with("/v1/");
        if api || self.loopback {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            if !host.is_some_and(|h| self.host_allowed(h)) {
                return Err(Refusal {
                    status: StatusCode::MISDIRECTED_REQUEST,
                    reason: "the Host header does not name this agent",
                });
            }
        }
        if !api {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site")
            && !matches!(site.as_bytes(), b"same-origin" | b"none")
        {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "cross-site requests to /v1/ are refused",
            });
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let own = origin
                .to_str()
                .ok()
                .and_then(|o| url::Url::parse(o).ok())
                .filter(|u| u.scheme() == "http")
                .and_then(|u| {
                    let host = u.host_str()?.to_string();
                    let port = u.port_or_known_default()?;
                    Some(self.host_allowed(&format!("{host}:{port}")))
                })
                .unwrap_or(false);
            if !own {
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    reason: "requests from another origin to /v1/ are refused",
                });
            }
        }
        let proxy = path.starts_with("/v1/proxy/");
        let Some(want) = self.token.load_full() else {
            return Ok(());
        };
        let matches = |name: header::HeaderName, headers: &HeaderMap| {
            headers
                .get(&name)
                .and_then(|v| bearer(v))
                .is_some_and(|t| bool::from(Sha256::digest(t).as_slice().ct_eq(&want[..])))
        };
        if proxy && matches(header::PROXY_AUTHORIZATION, headers) {
            headers.remove(header::PROXY_AUTHORIZATION);
            return Ok(());
        }
        if matches(header::AUTHORIZATION, headers) {
            headers.remove(header::AUTHORIZATION);
            return Ok(());
        }
        Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            reason: "this endpoint needs Authorization: Bearer <token> (agent.api_token_file)",
        })
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1).
pub fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let v = value.as_bytes();
    let (scheme, rest) = v.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Read the token file: its content without surrounding whitespace. Refused when empty or
/// readable by other users (as ssh refuses such keys): a token others can read guards nothing.
pub fn read_token(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("api_token_file {shown}: {e}"))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "api_token_file {shown} is readable by every user (mode {:o}): chmod o-r it",
            meta.permissions().mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("api_token_file {shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("api_token_file {shown} is empty"));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "api_token_file {shown}: the token must be one line without spaces"
        ));
    }
    Ok(token.to_string())
}

/// The middleware in front of every route.
pub async fn layer(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    match app.guard.check(&path, req.headers_mut()) {
        Ok(()) => next.run(req).await,
        Err(r) => {
            let mut resp = (
                r.status,
                axum::Json(serde_json::json!({ "error": r.reason })),
            )
                .into_response();
            if r.status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"lookout\""),
                );
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn guard(listen: &str) -> Guard {
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        Guard::new(
            addr,
            &addr.ip().to_string(),
            "web-17",
            &["api.internal".into()],
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn host_names_this_agent_or_is_refused() {
        let g = guard("127.0.0.1:9464");
        for ok in [
            "127.0.0.1:9464",
            "localhost:9464",
            "LOCALHOST",
            "web-17:9464",
            "[::1]:9464",
            "api.internal:9464",
            "10.1.2.3:9464",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:9464",
            "127.0.0.1:9465",
            "localhost.evil.example",
            "user@localhost:9464",
            "",
            "127.0.0.1:notaport",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn checks_apply_in_order_and_strip_the_token_header() {
        let g = guard("127.0.0.1:9464");
        g.set_token(Some("s3cret"));
        let host = ("host", "127.0.0.1:9464");
        let mut h = headers(&[("host", "evil.example:9464")]);
        assert_eq!(
            g.check("/metrics", &mut h).unwrap_err().status,
            StatusCode::MISDIRECTED_REQUEST
        );
        let mut h = headers(&[host]);
        assert!(
            g.check("/metrics", &mut h).is_ok(),
            "observability stays open"
        );
        assert_eq!(
            g.check("/v1/cache/x", &mut h).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let mut h = headers(&[host, ("authorization", "Bearer wrong")]);
        assert_eq!(
            g.check("/v1/cache/x", &mut h).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let mut h = headers(&[host, ("authorization", "bearer s3cret")]);
        assert!(g.check("/v1/cache/x", &mut h).is_ok());
        assert!(
            !h.contains_key(header::AUTHORIZATION),
            "token not passed on"
        );
        // Proxy-Authorization only on the proxy; the caller's own Authorization goes on.
        let mut h = headers(&[
            host,
            ("proxy-authorization", "Bearer s3cret"),
            ("authorization", "Basic dXNlcjpwdw=="),
        ]);
        assert!(g.check("/v1/proxy/svc/x", &mut h).is_ok());
        assert!(!h.contains_key(header::PROXY_AUTHORIZATION));
        assert_eq!(h[header::AUTHORIZATION], "Basic dXNlcjpwdw==");
        let mut h = headers(&[host, ("proxy-authorization", "Bearer s3cret")]);
        assert!(g.check("/v1/cache/x", &mut h).is_err());
        // A browser on another site is refused even with the token.
        let mut h = headers(&[
            host,
            ("authorization", "Bearer s3cret"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            g.check("/v1/cache/x", &mut h).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let mut h = headers(&[host, ("sec-fetch-site", "cross-site")]);
        assert_eq!(
            g.check("/v1/cache/x", &mut h).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let mut h = headers(&[
            host,
            ("authorization", "Bearer s3cret"),
            ("origin", "http://127.0.0.1:9464"),
        ]);
        assert!(g.check("/v1/cache/x", &mut h).is_ok());
    }

    #[test]
    fn a_wildcard_listen_leaves_observability_open_to_any_name() {
        let g = guard("0.0.0.0:9464");
        let mut h = headers(&[("host", "web-17.dc1.example:9464")]);
        assert!(g.check("/metrics", &mut h).is_ok());
        assert!(g.check("/v1/cache/x", &mut h).is_err());
    }

    #[test]
    fn token_files_that_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "  abc123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "abc123");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            read_token(&p)
                .unwrap_err()
                .contains("readable by every user")
        );
        std::fs::write(&p, "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_token(&p).unwrap_err().contains("empty"));
    }

    proptest! {
        /// Any header bytes: the guard never panics, and only the exact token passes.
        #[test]
        fn only_the_exact_token_passes(
            host in "[ -~]{0,40}",
            auth in proptest::collection::vec(any::<u8>(), 0..60),
            path in "/[ -~]{0,30}",
        ) {
            let g = guard("127.0.0.1:9464");
            g.set_token(Some("tok-1"));
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&host) { h.insert(header::HOST, v); }
            let auth_value = HeaderValue::from_bytes(&auth).ok();
            if let Some(v) = &auth_value { h.insert(header::AUTHORIZATION, v.clone()); }
            let r = g.check(&path, &mut h);
            if path.starts_with("/v1/") && r.is_ok() {
                let v = auth_value.unwrap();
                prop_assert_eq!(bearer(&v), Some(&b"tok-1"[..]));
            }
        }

        /// Host values that name another machine by name are refused, whatever they look like.
        #[test]
        fn foreign_names_are_refused(name in "[a-z][a-z0-9-]{0,20}\\.(example|test)", port in 1u16..) {
            let g = guard("127.0.0.1:9464");
            let with_port = format!("{name}:{port}");
            prop_assert!(!g.host_allowed(&with_port));
            prop_assert!(!g.host_allowed(&name));
        }
    }
}
