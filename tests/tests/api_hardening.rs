//! The agent's API against abuse, on a real `lookout run`: the bearer token of
//! `agent.api_token_file` (401 without it, never forwarded by the proxy), the Host check
//! (DNS rebinding: 421) and the Origin check (CSRF: 403), header-read timeouts and the
//! connection limit (slowloris, 1,000 idle connections), and the proxy's limits: redirects not
//! followed, foreign `X-Primary` hints and foreign discovery answers ignored, slow readers
//! that cannot take every throttle slot.
//!
//! The primaries are small axum servers started by the test on loopback ports: each counts
//! the requests it gets, so "never sent there" is checked at the destination.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use lookout_e2e::{Agent, block_on, client, free_port, wait_for};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "t0ken-for-the-test";

/// A test primary: `/primary` names `names` (itself unless told otherwise), and data paths
/// behave as their name says. `hits` counts every request it receives.
struct TestServer {
    url: String,
    hits: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct ServerState {
    names: String,
    elsewhere: String,
    hits: Arc<AtomicU64>,
}

impl TestServer {
    /// `names`: the primary `/primary` answers (`None`: this server); `elsewhere`: the URL
    /// redirects and hints point at.
    fn start(names: Option<&str>, elsewhere: &str) -> TestServer {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let hits = Arc::new(AtomicU64::new(0));
        let state = ServerState {
            names: names.unwrap_or(&url).to_string(),
            elsewhere: elsewhere.to_string(),
            hits: hits.clone(),
        };
        let app = Router::new()
            .route("/primary", get(primary))
            .route("/echo-headers", any(echo_headers))
            .route("/redirect", get(redirect))
            .route("/hint", get(hint))
            .route("/big", get(big))
            .route("/small", get(|| async { "small" }))
            .fallback(any(|| async { "other" }))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                count_hits,
            ))
            .with_state(state);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        TestServer { url, hits, _rt: rt }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn count_hits(
    State(s): State<ServerState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

async fn primary(State(s): State<ServerState>) -> Response {
    axum::Json(serde_json::json!({"primary": s.names, "term": 1})).into_response()
}

async fn echo_headers(headers: HeaderMap) -> Response {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    axum::Json(map).into_response()
}

async fn redirect(State(s): State<ServerState>) -> Response {
    (
        StatusCode::FOUND,
        [("location", format!("{}/stolen", s.elsewhere))],
    )
        .into_response()
}

async fn hint(State(s): State<ServerState>) -> Response {
    (
        StatusCode::MISDIRECTED_REQUEST,
        [("x-primary", s.elsewhere.clone())],
    )
        .into_response()
}

/// 2 MiB: far more than a socket buffer of a client that never reads.
async fn big() -> Response {
    vec![b'x'; 2 << 20].into_response()
}

/// Write `request` on a fresh connection and return the status code of the answer.
fn raw_status(port: u16, request: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

fn token_file(dir: &std::path::Path) -> String {
    let path = dir.join("api-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// An agent whose `[agent]` table gets `agent_extra` (before the other tables).
fn agent(agent_extra: &str, rest: &str) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token = token_file(dir.path());
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"test-host\"\napi_token_file = \"{token}\"\n{agent_extra}\n{rest}",
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("lookout.toml");
    std::fs::write(&config_path, config).unwrap();
    let a = Agent::spawn(dir, port, config_path, &[]);
    a.wait_ready(Duration::from_secs(30));
    a
}

fn tracker(service: &str, replicas: &[&str], extra: &str) -> String {
    let list: Vec<String> = replicas.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "[[tracker]]\nservice = \"{service}\"\ndiscovery = {{ http = [{}] }}\nrequest_timeout = \"2s\"\ndiscovery_timeout = \"500ms\"\n{extra}\n",
        list.join(", ")
    )
}

fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    block_on(async {
        let mut r = client().get(url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    })
}

#[test]
fn token_host_and_origin_are_checked_and_the_token_never_reaches_a_primary() {
    let elsewhere = TestServer::start(None, "http://127.0.0.1:1");
    let primary = TestServer::start(None, &elsewhere.url);
    let a = agent("", &tracker("svc", &[&primary.url], ""));
    let bearer = format!("Bearer {TOKEN}");
    wait_for("a primary", Duration::from_secs(15), || {
        (get_with(&a.url("/v1/primary/svc"), &[("authorization", &bearer)]).0 == 200).then_some(())
    });

    // 401 without the token or with another one; observability stays open.
    let (s, _) = get_with(&a.url("/v1/primary/svc"), &[]);
    assert_eq!(s, 401);
    let (s, _) = get_with(
        &a.url("/v1/primary/svc"),
        &[("authorization", "Bearer nope")],
    );
    assert_eq!(s, 401);
    let before = primary.hits();
    let (s, _) = get_with(&a.url("/v1/proxy/svc/small"), &[]);
    assert_eq!(s, 401);
    assert_eq!(
        primary.hits(),
        before,
        "an unauthenticated request reached the primary"
    );
    assert_eq!(a.get("/metrics").map(|(s, _)| s), Some(200));

    // The token as Proxy-Authorization: the caller's own Authorization goes on, the token not.
    let (s, body) = get_with(
        &a.url("/v1/proxy/svc/echo-headers"),
        &[
            ("proxy-authorization", &bearer),
            ("authorization", "Basic dXNlcjpwdw=="),
            ("connection", "x-listed"),
            ("x-listed", "must not pass"),
        ],
    );
    assert_eq!(s, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["authorization"], "Basic dXNlcjpwdw==", "{seen}");
    assert!(seen.get("proxy-authorization").is_none(), "{seen}");
    assert!(
        seen.get("x-listed").is_none(),
        "Connection-listed header forwarded: {seen}"
    );
    // The token as Authorization is removed too.
    let (s, body) = get_with(
        &a.url("/v1/proxy/svc/echo-headers"),
        &[("authorization", &bearer)],
    );
    assert_eq!(s, 200, "{body}");
    assert!(
        !body.contains(TOKEN),
        "the token reached the primary: {body}"
    );

    // DNS rebinding: a name that is not this agent's → 421, on the API and on /metrics.
    let auth = format!("Authorization: {bearer}\r\n");
    for path in ["/v1/primary/svc", "/metrics"] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: rebind.attacker.example:{}\r\n{auth}Connection: close\r\n\r\n",
            a.port
        );
        assert_eq!(raw_status(a.port, &req), 421, "{path}");
    }
    let req = format!(
        "GET /v1/primary/svc HTTP/1.1\r\nHost: localhost:{}\r\n{auth}Connection: close\r\n\r\n",
        a.port
    );
    assert_eq!(raw_status(a.port, &req), 200);
    // CSRF: a page of another origin, even with a (guessed) token → 403.
    let (s, _) = get_with(
        &a.url("/v1/primary/svc"),
        &[
            ("authorization", &bearer),
            ("origin", "http://evil.example"),
        ],
    );
    assert_eq!(s, 403);
    assert_eq!(elsewhere.hits(), 0);
}

#[test]
fn the_proxy_follows_no_redirect_and_no_foreign_primary() {
    let elsewhere = TestServer::start(None, "http://127.0.0.1:1");
    let primary = TestServer::start(None, &elsewhere.url);
    // A replica whose /primary names a host that is not a configured replica.
    let liar = TestServer::start(Some(&elsewhere.url), &elsewhere.url);
    let a = agent(
        "",
        &format!(
            "{}{}",
            tracker("svc", &[&primary.url], ""),
            tracker("lied", &[&liar.url], "")
        ),
    );
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    wait_for("a primary", Duration::from_secs(15), || {
        (get_with(&a.url("/v1/primary/svc"), &auth).0 == 200).then_some(())
    });

    lookout_common::install_tls_provider();
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (status, location) = block_on(async {
        let r = no_redirects
            .get(a.url("/v1/proxy/svc/redirect"))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
        )
    });
    assert_eq!(status, 302, "the redirect itself is the answer");
    assert_eq!(
        location.as_deref(),
        Some(&*format!("{}/stolen", elsewhere.url))
    );

    // A 421 naming a foreign primary: not adopted, never sent there.
    let (s, _) = get_with(&a.url("/v1/proxy/svc/hint"), &auth);
    assert_ne!(s, 200);
    let (s, body) = get_with(&a.url("/v1/proxy/svc/small"), &auth);
    assert_eq!(
        (s, body.as_str()),
        (200, "small"),
        "still the configured primary"
    );
    let (_, body) = get_with(&a.url("/v1/primary/svc"), &auth);
    assert!(body.contains(&primary.url), "{body}");

    // A discovery answer naming a foreign host: no primary rather than that host.
    std::thread::sleep(Duration::from_secs(1));
    let (s, body) = get_with(&a.url("/v1/primary/lied"), &auth);
    assert_eq!(s, 503, "{body}");
    let (s, _) = get_with(&a.url("/v1/proxy/lied/small"), &auth);
    assert_eq!(s, 503);
    assert!(liar.hits() > 0, "the liar was asked");
    assert_eq!(
        elsewhere.hits(),
        0,
        "a request went to a host that is no replica"
    );
}

#[test]
fn slow_readers_do_not_starve_a_fast_client() {
    let primary = TestServer::start(None, "http://127.0.0.1:1");
    let a = agent(
        "",
        &tracker(
            "svc",
            &[&primary.url],
            "max_in_flight = 8\nqueue_timeout = \"1s\"\nidle_timeout = \"20s\"",
        ),
    );
    let bearer = format!("Bearer {TOKEN}");
    wait_for("a primary", Duration::from_secs(15), || {
        (get_with(&a.url("/v1/proxy/svc/small"), &[("authorization", &bearer)]).0 == 200)
            .then_some(())
    });
    // 64 clients ask for 2 MiB each and never read a byte of it.
    let slow: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
            write!(
                s,
                "GET /v1/proxy/svc/big HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {bearer}\r\n\r\n",
                a.port
            )
            .unwrap();
            s
        })
        .collect();
    wait_for(
        "the primary to see the slow requests",
        Duration::from_secs(20),
        || (primary.hits() >= 64).then_some(()),
    );
    // Within the idle timeout (20 s) the slow readers are all still connected; a fast client
    // must get through anyway.
    let started = Instant::now();
    for _ in 0..5 {
        let (s, body) = get_with(&a.url("/v1/proxy/svc/small"), &[("authorization", &bearer)]);
        assert_eq!((s, body.as_str()), (200, "small"));
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(slow);
}

#[test]
fn slow_and_idle_connections_are_bounded() {
    let a = agent("header_timeout = \"1s\"", "");
    // Slowloris: half a request header, then silence. Closed after the header timeout.
    let mut half: Vec<TcpStream> = (0..250)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    for s in &mut half {
        let mut buf = [0u8; 256];
        // EOF (0) or a 408 then EOF: either way the server let go.
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "half-sent headers kept for {:?}",
        started.elapsed()
    );

    drop(half);
    // Once closed they are counted no more.
    wait_for(
        "the slow connections to be gone",
        Duration::from_secs(10),
        || {
            (a.metric("lookout_http_connections", &[])
                .unwrap_or(f64::MAX)
                < 10.0)
                .then_some(())
        },
    );

    // 1,000 idle connections (never a byte) within the header timeout: /metrics still
    // answers, and the connection gauge shows them. The latency figure is in
    // tests/bench/idle_connections.py.
    let b = agent("header_timeout = \"60s\"", "");
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", b.port)).unwrap())
        .collect();
    let (s, body) = get_with(&b.url("/metrics"), &[]);
    assert_eq!(s, 200);
    assert!(
        body.contains("lookout_http_connections"),
        "no connection gauge"
    );
    wait_for(
        "the gauge to count the idle connections",
        Duration::from_secs(5),
        || (b.metric("lookout_http_connections", &[]).unwrap_or(0.0) >= 1000.0).then_some(()),
    );
    let (s, _) = get_with(&b.url("/readyz"), &[]);
    assert_eq!(s, 200);
    drop(idle);
}
