//! `lookout-test-replica`: one replica of a replicated service, for the tracker's end-to-end
//! tests. It speaks CONTRACT.md's discovery protocol (`GET /primary` →
//! `{"primary", "term"}`) and serves data requests while it is the primary.
//!
//! When it is not the primary, a data request meets the configured failure mode: `421`
//! (without hint), `421-hint` (with `X-Primary`), `reset` (TCP RST), `drop` (never answered),
//! or `refuse` (the data port is closed: connections are refused). A request that was in
//! flight when the replica lost the primary role meets the same fate after its delay, as a
//! demoted leader's uncommitted writes would.
//!
//! Control and counters on a separate admin port (so a closed data port stays controllable):
//! `POST /admin/state` with any of `{"primary": url|null, "term": N, "mode": "...",
//! "delay_min_ms": N, "delay_ms": N, "delay_prob": 0..1}` (a fraction `delay_prob` of the
//! data requests waits a uniform `delay_min_ms..=delay_ms`), `GET /admin/stats`, `POST /admin/reset-stats`.
//!
//! With `--etcd URL[,URL..] --election NAME` it campaigns in that etcd v3 election through the
//! JSON gateway (lease with `--lease-ttl` seconds, kept alive) and is the primary once elected.
//!
//! Hand-written over hyper's low-level server rather than a framework because the faults need
//! the socket itself (an RST needs SO_LINGER 0 on the very connection).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast, watch};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Misdirected,
    MisdirectedHint,
    Reset,
    Drop,
    Refuse,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "421" => Mode::Misdirected,
            "421-hint" => Mode::MisdirectedHint,
            "reset" => Mode::Reset,
            "drop" => Mode::Drop,
            "refuse" => Mode::Refuse,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Misdirected => "421",
            Mode::MisdirectedHint => "421-hint",
            Mode::Reset => "reset",
            Mode::Drop => "drop",
            Mode::Refuse => "refuse",
        }
    }
}

struct Settings {
    primary: Option<String>,
    term: i64,
    mode: Mode,
    delay_min_ms: u64,
    delay_ms: u64,
    delay_prob: f64,
}

#[derive(Default)]
struct Counters {
    primary_calls: AtomicU64,
    served: AtomicU64,
    misdirected: AtomicU64,
    resets: AtomicU64,
    drops: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
}

struct Replica {
    url: String,
    settings: Mutex<Settings>,
    counters: Counters,
    /// Whether the data port should be open (false in `refuse` mode while not primary).
    listening: watch::Sender<bool>,
    /// Whether the data port is actually open right now (follows `listening`).
    bound: watch::Sender<bool>,
    /// Resets every open data connection (the port is closing).
    kill_all: broadcast::Sender<()>,
}

impl Replica {
    fn is_primary(&self) -> bool {
        self.settings.lock().unwrap().primary.as_deref() == Some(self.url.as_str())
    }

    /// Open or close the data port to match the settings; returns once it is so, so that
    /// an admin call that makes this replica the primary returns with its port open.
    async fn update_listening(&self) {
        let open = self.want_open();
        self.apply_listening(open);
        let mut bound = self.bound.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), bound.wait_for(|b| *b == open)).await;
    }

    fn want_open(&self) -> bool {
        let s = self.settings.lock().unwrap();
        !(s.mode == Mode::Refuse && s.primary.as_deref() != Some(self.url.as_str()))
    }

    fn apply_listening(&self, open: bool) {
        self.listening.send_if_modified(|cur| {
            if *cur != open {
                *cur = open;
                true
            } else {
                false
            }
        });
        if !open {
            let _ = self.kill_all.send(());
        }
    }

    fn stats(&self) -> Value {
        let c = &self.counters;
        let s = self.settings.lock().unwrap();
        json!({
            "url": self.url,
            "is_primary": s.primary.as_deref() == Some(self.url.as_str()),
            "primary": s.primary,
            "term": s.term,
            "mode": s.mode.name(),
            "primary_calls": c.primary_calls.load(Ordering::SeqCst),
            "served": c.served.load(Ordering::SeqCst),
            "misdirected": c.misdirected.load(Ordering::SeqCst),
            "resets": c.resets.load(Ordering::SeqCst),
            "drops": c.drops.load(Ordering::SeqCst),
            "in_flight": c.in_flight.load(Ordering::SeqCst),
            "max_in_flight": c.max_in_flight.load(Ordering::SeqCst),
        })
    }
}

type Body = Full<Bytes>;

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

/// What the data handler asks of its connection.
enum Fate {
    Answer(Response<Body>),
    Reset,
    Drop,
}

async fn data(replica: Arc<Replica>, req: Request<Incoming>) -> Fate {
    if req.uri().path() == "/primary" {
        replica
            .counters
            .primary_calls
            .fetch_add(1, Ordering::SeqCst);
        let s = replica.settings.lock().unwrap();
        return Fate::Answer(match &s.primary {
            Some(p) => json_response(StatusCode::OK, &json!({"primary": p, "term": s.term})),
            None => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "no primary elected"}),
            ),
        });
    }
    if !replica.is_primary() {
        return demoted(&replica);
    }
    let c = &replica.counters;
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let (delay_min_ms, delay_ms, delay_prob) = {
        let s = replica.settings.lock().unwrap();
        (s.delay_min_ms, s.delay_ms, s.delay_prob)
    };
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let content_type = req.headers().get("content-type").cloned();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
        .collect();
    let echo_header = req.headers().get("x-echo").cloned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    if delay_ms > 0 && rand::random::<f64>() < delay_prob {
        let ms = rand::random_range(delay_min_ms.min(delay_ms)..=delay_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
    let Ok(body) = body else {
        return Fate::Drop;
    };
    // Lost the role while working: the demoted replica's answer, not a success.
    if !replica.is_primary() {
        return demoted(&replica);
    }
    c.served.fetch_add(1, Ordering::SeqCst);
    if path.starts_with("/echo") {
        let mut resp = Response::builder().status(StatusCode::OK);
        if let Some(ct) = content_type {
            resp = resp.header("content-type", ct);
        }
        if let Some(e) = echo_header {
            resp = resp.header("x-echo", e);
        }
        resp = resp.header("x-served-by", replica.url.as_str());
        return Fate::Answer(resp.body(Full::new(body)).unwrap());
    }
    Fate::Answer(json_response(
        StatusCode::OK,
        &json!({"served_by": replica.url, "method": method, "path": path, "body_len": body.len(), "headers": headers}),
    ))
}

fn demoted(replica: &Replica) -> Fate {
    let c = &replica.counters;
    let s = replica.settings.lock().unwrap();
    match s.mode {
        Mode::Misdirected | Mode::MisdirectedHint => {
            c.misdirected.fetch_add(1, Ordering::SeqCst);
            let mut resp = Response::builder().status(StatusCode::MISDIRECTED_REQUEST);
            if s.mode == Mode::MisdirectedHint
                && let Some(p) = &s.primary
            {
                resp = resp.header("x-primary", p.as_str());
            }
            Fate::Answer(
                resp.body(Full::new(Bytes::from_static(b"not the primary\n")))
                    .unwrap(),
            )
        }
        // A closing port resets its connections too.
        Mode::Reset | Mode::Refuse => {
            c.resets.fetch_add(1, Ordering::SeqCst);
            Fate::Reset
        }
        Mode::Drop => {
            c.drops.fetch_add(1, Ordering::SeqCst);
            Fate::Drop
        }
    }
}

async fn admin(replica: Arc<Replica>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match (method.as_str(), path.as_str()) {
        ("GET", "/admin/stats") => json_response(StatusCode::OK, &replica.stats()),
        ("POST", "/admin/reset-stats") => {
            let c = &replica.counters;
            for a in [
                &c.primary_calls,
                &c.served,
                &c.misdirected,
                &c.resets,
                &c.drops,
            ] {
                a.store(0, Ordering::SeqCst);
            }
            c.max_in_flight
                .store(c.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
            json_response(StatusCode::OK, &replica.stats())
        }
        ("POST", "/admin/state") => {
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": e.to_string()}),
                    );
                }
            };
            {
                let mut s = replica.settings.lock().unwrap();
                if let Some(p) = v.get("primary") {
                    s.primary = p.as_str().map(str::to_string);
                }
                if let Some(t) = v.get("term").and_then(Value::as_i64) {
                    s.term = t;
                }
                if let Some(m) = v.get("mode").and_then(Value::as_str) {
                    match Mode::parse(m) {
                        Some(m) => s.mode = m,
                        None => {
                            return json_response(
                                StatusCode::BAD_REQUEST,
                                &json!({"error": format!("unknown mode {m}")}),
                            );
                        }
                    }
                }
                if let Some(d) = v.get("delay_min_ms").and_then(Value::as_u64) {
                    s.delay_min_ms = d;
                }
                if let Some(d) = v.get("delay_ms").and_then(Value::as_u64) {
                    s.delay_ms = d;
                }
                if let Some(p) = v.get("delay_prob").and_then(Value::as_f64) {
                    s.delay_prob = p;
                }
            }
            replica.update_listening().await;
            json_response(StatusCode::OK, &replica.stats())
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such admin route"}),
        ),
    }
}

/// RST instead of FIN when the socket closes.
fn set_linger_zero(fd: i32) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: fd is an open socket owned by a live connection; the struct outlives the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn serve_data_connection(replica: Arc<Replica>, stream: TcpStream) {
    let fd = stream.as_raw_fd();
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(Notify::new());
    let mut kill_all = replica.kill_all.subscribe();
    let svc = {
        let reset = reset.clone();
        service_fn(move |req| {
            let replica = replica.clone();
            let reset = reset.clone();
            async move {
                match data(replica, req).await {
                    Fate::Answer(r) => Ok::<_, std::convert::Infallible>(r),
                    Fate::Reset => {
                        reset.notify_one();
                        std::future::pending().await
                    }
                    Fate::Drop => {
                        // Never answered; the connection dies with the test or the client.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        reset.notify_one();
                        std::future::pending().await
                    }
                }
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = reset.notified() => set_linger_zero(fd),
        _ = kill_all.recv() => set_linger_zero(fd),
    }
}

async fn serve_data(replica: Arc<Replica>, addr: String) {
    let mut listening = replica.listening.subscribe();
    loop {
        if !*listening.borrow_and_update() {
            if listening.changed().await.is_err() {
                return;
            }
            continue;
        }
        let listener = loop {
            match TcpListener::bind(&addr).await {
                Ok(l) => {
                    replica.bound.send_replace(true);
                    break l;
                }
                Err(e) => {
                    eprintln!("replica: rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve_data_connection(replica.clone(), stream));
                    }
                }
                changed = listening.changed() => {
                    if changed.is_err() { return; }
                    if !*listening.borrow() { break; }
                }
            }
        }
        // Dropping the listener closes the port: new connections are refused.
        drop(listener);
        replica.bound.send_replace(false);
    }
}

async fn serve_admin(replica: Arc<Replica>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let replica = replica.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let replica = replica.clone();
                async move { Ok::<_, std::convert::Infallible>(admin(replica, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Campaign in an etcd election through the JSON gateway; become the primary once elected.
async fn campaign(replica: Arc<Replica>, endpoints: Vec<String>, election: String, ttl: i64) {
    lookout_common::install_tls_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let name = B64.encode(election.as_bytes());
    let value = B64.encode(replica.url.as_bytes());
    let mut i = 0usize;
    loop {
        let ep = endpoints[i % endpoints.len()]
            .trim_end_matches('/')
            .to_string();
        i += 1;
        let grant: Result<Value, _> = async {
            client
                .post(format!("{ep}/v3/lease/grant"))
                .json(&json!({"TTL": ttl}))
                .send()
                .await?
                .json()
                .await
        }
        .await;
        let lease = match grant.ok().and_then(|v| {
            v.get("ID").and_then(|id| {
                id.as_str()
                    .map(str::to_string)
                    .or_else(|| id.as_i64().map(|n| n.to_string()))
            })
        }) {
            Some(l) => l,
            None => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // Keep the lease alive while this process lives; a killed replica's lease expires.
        {
            let client = client.clone();
            let ep = ep.clone();
            let lease = lease.clone();
            let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(100));
            tokio::spawn(async move {
                loop {
                    let _ = client
                        .post(format!("{ep}/v3/lease/keepalive"))
                        .json(&json!({"ID": lease}))
                        .send()
                        .await;
                    tokio::time::sleep(period).await;
                }
            });
        }
        let won = client
            .post(format!("{ep}/v3/election/campaign"))
            .json(&json!({"name": name, "lease": lease, "value": value}))
            .send()
            .await;
        match won {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                let rev = v
                    .pointer("/leader/rev")
                    .and_then(|r| r.as_str().and_then(|s| s.parse().ok()).or(r.as_i64()))
                    .unwrap_or(0);
                {
                    let mut s = replica.settings.lock().unwrap();
                    s.primary = Some(replica.url.clone());
                    s.term = rev;
                }
                replica.update_listening().await;
                eprintln!("replica {}: elected (rev {rev})", replica.url);
                return;
            }
            other => {
                eprintln!(
                    "replica {}: campaign failed: {:?}",
                    replica.url,
                    other.map(|r| r.status())
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: lookout-test-replica --listen HOST:PORT --admin HOST:PORT [--url URL] [--primary URL] [--mode 421|421-hint|reset|drop|refuse] [--etcd URL,URL --election NAME [--lease-ttl SECS]]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut admin_addr, mut url, mut primary) = (None, None, None, None);
    let (mut mode, mut etcd, mut election, mut ttl) = (Mode::Misdirected, None, None, 2i64);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(val()),
            "--admin" => admin_addr = Some(val()),
            "--url" => url = Some(val()),
            "--primary" => primary = Some(val()),
            "--mode" => mode = Mode::parse(&val()).unwrap_or_else(|| usage()),
            "--etcd" => etcd = Some(val()),
            "--election" => election = Some(val()),
            "--lease-ttl" => ttl = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let (Some(listen), Some(admin_addr)) = (listen, admin_addr) else {
        usage()
    };
    let url = url.unwrap_or_else(|| format!("http://{listen}"));
    let (listening, _) = watch::channel(true);
    let (kill_all, _) = broadcast::channel(4);
    let (bound, _) = watch::channel(false);
    let replica = Arc::new(Replica {
        url,
        settings: Mutex::new(Settings {
            primary,
            term: 1,
            mode,
            delay_min_ms: 0,
            delay_ms: 0,
            delay_prob: 0.0,
        }),
        counters: Counters::default(),
        listening,
        bound,
        kill_all,
    });
    let open = replica.want_open();
    replica.apply_listening(open);
    let admin_listener = TcpListener::bind(&admin_addr).await.unwrap_or_else(|e| {
        eprintln!("replica: cannot listen on {admin_addr}: {e}");
        std::process::exit(1)
    });
    tokio::spawn(serve_admin(replica.clone(), admin_listener));
    if let (Some(etcd), Some(election)) = (etcd, election) {
        let endpoints = etcd.split(',').map(str::to_string).collect();
        tokio::spawn(campaign(replica.clone(), endpoints, election, ttl));
    }
    serve_data(replica, listen).await;
}
