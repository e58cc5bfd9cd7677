//! The primary tracker: for one replicated service, knows which replica is the primary and
//! sends requests there, from many concurrent callers, without a thundering herd on failover.
//!
//! The state `{generation, primary}` lives behind `arc-swap`, so every request reads it without
//! a lock; the HTTP client (one connection pool per service) is shared by all of them.
//!
//! Failover protocol. A request remembers the generation `g` it used. When it sees a failure
//! signal (421, refused or reset connection, timeout, a status of `failover_statuses`), it asks
//! for re-discovery *of g*:
//! - a 421 with `X-Primary` names the new primary: it is adopted at once, no discovery call;
//! - otherwise the first asker starts one discovery task for `g` (single flight: an atomic
//!   "started for" mark, then a `tokio::sync::Mutex` so generations never overlap); every
//!   asker, the first included, waits for a generation above `g` on a `watch` channel, bounded
//!   by its deadline. The discovery runs on its own task, detached from the requests: a client
//!   that disconnects cancels only its own wait;
//! - nobody re-discovers a generation that has already moved on.
//!
//! Every completed discovery publishes generation `g + 1` (with the primary found, or none when
//! no replica knew one), so waiters are always released by the one discovery they waited for.
//! That is what keeps discovery calls at one per failover however many requests are in flight.
//!
//! Throttling: at most `max_in_flight` requests are at the primary at once (a semaphore permit
//! is held from send until the response body is read); others wait up to `queue_timeout`, then
//! get [`TrackerError::Throttled`] (HTTP 429). Retries (with exponential backoff from `backon`)
//! only for idempotent methods — or for any method when the primary certainly did not process
//! the request (a refused connection, or a 421).

//!
//! A service embeds it with a [`Discovery`] (the replicas' `GET /primary`, or an etcd v3
//! election), plain [`Settings`] and an OpenTelemetry [`Meter`] for its counters and
//! histograms; state is read with [`Tracker::status`], primary changes arrive as
//! [`TrackerEvent`]s. With no replica answering, a request fails with a clear error instead of
//! hanging:
//!
//! ```
//! use lookout_tracker::{Discovery, Settings, Tracker, TrackerError};
//! use std::time::Duration;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
//! let discovery = Discovery::Http(vec![format!("http://{nobody}")]);
//! let settings = Settings::default()
//!     .request_timeout(Duration::from_millis(200))
//!     .discovery_timeout(Duration::from_millis(200))
//!     .max_attempts(2);
//! let meter = opentelemetry::global::meter("my-service");
//! let orders = Tracker::new("orders", &discovery, settings, &meter).unwrap();
//!
//! let stop = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(orders.clone().run(stop.clone()));
//! let err = orders.get_bytes("/v1/orders/17").await.unwrap_err();
//! assert!(matches!(err, TrackerError::NoPrimary { .. }), "{err}");
//! assert!(orders.status().primary.is_none());
//! stop.cancel();
//! # });
//! ```
//!
//! Crate boundaries: this crate knows nothing of the lookout agent, the cache, HTTP servers or
//! config files; the agent maps `[[tracker]]` tables to [`Settings`], exports
//! [`TrackerStatus`] as gauges and serves `/v1/primary` and `/v1/proxy`.

pub mod etcd;
mod metrics;
pub mod names;
mod resolver;

use arc_swap::ArcSwap;
use backon::BackoffBuilder;
use bytes::Bytes;
use metrics::TrackerMetrics;
use opentelemetry::metrics::Meter;
use resolver::Resolver;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use resolver::DiscoveryError;

/// How often the etcd resolver re-reads the leader besides watching it.
const ETCD_LEADER_POLL: Duration = Duration::from_secs(10);

/// Header a non-primary replica may add to its 421 to name the primary.
pub const PRIMARY_HINT_HEADER: &str = "x-primary";

/// Errors of the tracker's library API; the proxy maps them to HTTP statuses.
#[derive(Debug, Error)]
pub enum TrackerError {
    #[error("no primary is known for service {service}")]
    NoPrimary { service: String },
    #[error(
        "throttled: {max_in_flight} requests already in flight at the primary of {service}, none finished within the queue timeout"
    )]
    Throttled {
        service: String,
        max_in_flight: usize,
    },
    #[error("request to the primary of {service} failed after {attempts} attempt(s): {last}")]
    Failed {
        service: String,
        attempts: u32,
        last: String,
    },
    #[error("the primary of {service} answered {status} for {path}")]
    Status {
        service: String,
        path: String,
        status: u16,
    },
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("cannot build the HTTP client of service {service}: {reason}")]
    Client { service: String, reason: String },
}

/// The primary as the tracker knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Primary {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:7001`.
    pub base: Arc<str>,
    /// A token that only grows with newer primaries: the etcd leader key's create revision, or
    /// the replica protocol's `term`. `None` when unknown (a 421 hint).
    pub fence: Option<i64>,
}

impl Primary {
    pub fn new(base: &str, fence: Option<i64>) -> Result<Self, DiscoveryError> {
        let parsed = url::Url::parse(base).map_err(|e| {
            DiscoveryError::BadAnswer(format!("primary {base:?} is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(DiscoveryError::BadAnswer(format!(
                "primary {base:?} is not an http(s) URL"
            )));
        }
        Ok(Self {
            base: Arc::from(base.trim_end_matches('/')),
            fence,
        })
    }
}

/// One published view: read lock-free by every request.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub primary: Option<Primary>,
    /// When this primary (or its absence) was first seen.
    pub since: Instant,
}

/// Where a tracker learns who the primary is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// Ask any of these replicas `GET {replica}/primary` (base URLs).
    Http(Vec<String>),
    /// The value of the leader key of an etcd v3 election, through any of these members'
    /// client URLs.
    Etcd {
        endpoints: Vec<String>,
        election: String,
    },
}

/// Tunables of one tracker. [`Settings::default`] holds the agent's `[[tracker]]` defaults;
/// change what you need:
///
/// ```
/// use std::time::Duration;
/// let s = lookout_tracker::Settings::default()
///     .max_in_flight(16)
///     .request_timeout(Duration::from_millis(500));
/// assert_eq!(s.max_attempts, 4);
/// ```
#[derive(Clone, Debug)]
pub struct Settings {
    /// Requests at the primary at once; more wait up to `queue_timeout`, then are throttled.
    pub max_in_flight: usize,
    /// Bound of one attempt (headers and, when collected, the body).
    pub request_timeout: Duration,
    /// Bound of one discovery.
    pub discovery_timeout: Duration,
    /// How long a request may wait for a free slot.
    pub queue_timeout: Duration,
    /// Attempts for idempotent requests, the first one included.
    pub max_attempts: u32,
    /// Statuses that, besides 421, mean "not the primary any more".
    pub failover_statuses: Vec<u16>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            request_timeout: Duration::from_secs(2),
            discovery_timeout: Duration::from_secs(2),
            queue_timeout: Duration::from_secs(1),
            max_attempts: 4,
            failover_statuses: vec![421, 503],
        }
    }
}

impl Settings {
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    pub fn discovery_timeout(mut self, d: Duration) -> Self {
        self.discovery_timeout = d;
        self
    }

    pub fn queue_timeout(mut self, d: Duration) -> Self {
        self.queue_timeout = d;
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    pub fn failover_statuses(mut self, statuses: Vec<u16>) -> Self {
        self.failover_statuses = statuses;
        self
    }
}

/// A tracker's state as one value, for a host to export or show.
#[derive(Clone, Debug)]
pub struct TrackerStatus {
    /// Grows with every discovery, hint and observed leader change.
    pub generation: u64,
    pub primary: Option<Primary>,
    /// When this primary (or its absence) was first seen.
    pub since: Instant,
    /// Requests holding a slot at the primary now.
    pub in_flight: usize,
    /// Discoveries run so far.
    pub discoveries: u64,
    /// Times a primary was found that differs from the one before.
    pub changes: u64,
    /// Requests refused by the throttle so far.
    pub throttled: u64,
}

/// What a tracker tells the program embedding it through [`Tracker::subscribe`].
#[derive(Clone, Debug)]
pub enum TrackerEvent {
    /// A new generation was published; `changed` when its primary differs from the last one.
    Published {
        generation: u64,
        primary: Option<Primary>,
        changed: bool,
    },
}

/// How many events wait for a slow subscriber before it misses some.
const EVENT_BUFFER: usize = 256;

/// The body of a forwarded request.
pub enum ForwardBody {
    /// Held in memory: can be re-sent, so idempotent requests are retried.
    Full(Bytes),
    /// Streamed from the caller: sent once, never retried.
    Stream(reqwest::Body),
}

/// A response whose body is still streaming from the primary. It holds its throttle slot
/// until dropped.
pub struct Streamed {
    pub response: reqwest::Response,
    pub primary: Primary,
    pub generation: u64,
    permit: OwnedSemaphorePermit,
}

impl Streamed {
    /// The response and its throttle slot, for a caller that decides itself when the slot
    /// is no longer needed (the proxy frees it once the client, not the primary, is what a
    /// stream waits for).
    pub fn into_parts(self) -> (reqwest::Response, OwnedSemaphorePermit) {
        (self.response, self.permit)
    }

    /// The body as a stream that keeps the throttle slot until it ends or is dropped.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static {
        use futures::StreamExt;
        let permit = self.permit;
        self.response.bytes_stream().map(move |chunk| {
            let _slot = &permit;
            chunk
        })
    }
}

/// A response, read whole ([`Tracker::call`]) or still streaming ([`Tracker::forward`]).
enum Finished {
    Collected(::http::Response<Bytes>),
    Streamed(Streamed),
}

/// What one attempt ended with.
enum Attempt<T> {
    Done(T),
    /// A failure signal: re-discover, maybe retry.
    Failover {
        hint: Option<String>,
        /// The primary certainly did not process the request (refused, 421).
        not_processed: bool,
        error: String,
        /// The response itself, kept to be returned when no attempt is left.
        last: Option<T>,
    },
    Fatal(TrackerError),
}

/// One tracked service.
pub struct Tracker {
    service: String,
    settings: Settings,
    state: ArcSwap<Snapshot>,
    client: reqwest::Client,
    resolver: Resolver,
    /// Held by the one task running discovery.
    flight: tokio::sync::Mutex<()>,
    /// The current generation, for waiters.
    published: watch::Sender<u64>,
    /// Serialises writers of `state` (discovery, 421 hints, the etcd observer).
    publish_lock: std::sync::Mutex<()>,
    permits: Arc<Semaphore>,
    metrics: TrackerMetrics,
    events: broadcast::Sender<TrackerEvent>,
    /// Failed discoveries in a row, for backoff between them.
    failed_discoveries: AtomicU64,
    discoveries: AtomicU64,
    /// One more than the newest generation a discovery task was started for: one task per
    /// generation, however many requests ask.
    discovery_started: AtomicU64,
    /// This tracker, for the discovery tasks it spawns.
    me: std::sync::Weak<Tracker>,
}

impl Tracker {
    /// A tracker of `service`; counters and histograms go to `meter`. Nothing runs until
    /// [`Tracker::run`] (or the first request).
    pub fn new(
        service: &str,
        discovery: &Discovery,
        settings: Settings,
        meter: &Meter,
    ) -> Result<Arc<Self>, TrackerError> {
        let client_err = |e: reqwest::Error| TrackerError::Client {
            service: service.to_string(),
            reason: e.to_string(),
        };
        // Redirects are never followed: a replica answering `302 Location: <anywhere>` would
        // otherwise make the agent fetch from any host its network identity reaches (SSRF).
        lookout_common::install_tls_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_max_idle_per_host(settings.max_in_flight)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(1)))
            .build()
            .map_err(client_err)?;
        // Discovery has its own client: a long-lived etcd observe stream must not be cut by
        // the request read timeout.
        let discovery_client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .connect_timeout(settings.discovery_timeout)
            .build()
            .map_err(client_err)?;
        let resolver = Resolver::new(discovery, discovery_client, settings.discovery_timeout);
        let (published, _) = watch::channel(0);
        Ok(Arc::new_cyclic(|me| Self {
            service: service.to_string(),
            metrics: TrackerMetrics::new(meter, service),
            events: broadcast::channel(EVENT_BUFFER).0,
            permits: Arc::new(Semaphore::new(settings.max_in_flight)),
            settings,
            state: ArcSwap::from_pointee(Snapshot {
                generation: 0,
                primary: None,
                since: Instant::now(),
            }),
            client,
            resolver,
            flight: tokio::sync::Mutex::new(()),
            published,
            publish_lock: std::sync::Mutex::new(()),
            failed_discoveries: AtomicU64::new(0),
            discoveries: AtomicU64::new(0),
            discovery_started: AtomicU64::new(0),
            me: me.clone(),
        }))
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current view (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.load_full()
    }

    /// The current primary (lock-free; the hot path of every request).
    #[inline]
    pub fn primary(&self) -> Option<Primary> {
        self.state.load().primary.clone()
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.state.load().generation
    }

    /// Discoveries this tracker has run (each asks replicas or etcd until one answers).
    pub fn discoveries(&self) -> u64 {
        self.discoveries.load(Ordering::Relaxed)
    }

    /// Requests currently holding a slot at the primary.
    pub fn in_flight(&self) -> usize {
        self.settings.max_in_flight - self.permits.available_permits()
    }

    /// The state of this tracker now.
    pub fn status(&self) -> TrackerStatus {
        let snap = self.snapshot();
        TrackerStatus {
            generation: snap.generation,
            primary: snap.primary.clone(),
            since: snap.since,
            in_flight: self.in_flight(),
            discoveries: self.discoveries(),
            changes: self.metrics.changes_total.load(Ordering::Relaxed),
            throttled: self.metrics.throttled_total.load(Ordering::Relaxed),
        }
    }

    /// Events from now on (see [`TrackerEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<TrackerEvent> {
        self.events.subscribe()
    }

    /// Background work until `token` is cancelled: the first discovery, retries while no
    /// primary is known, the etcd election watch, and the gauges.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut tasks = JoinSet::new();
        if let Some(observer) = self.resolver.observer() {
            // The observe stream is silent while the leader is stable, so a stream that died
            // quietly (a partitioned member) looks the same: ask for the leader now and then.
            let me = self.clone();
            let token_poll = token.clone();
            let poller = observer.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = token_poll.cancelled() => return,
                        _ = tokio::time::sleep(ETCD_LEADER_POLL) => {}
                    }
                    if let Ok(p) = poller.leader().await {
                        me.publish_observed(p);
                    }
                }
            });
            let me = self.clone();
            let token = token.clone();
            tasks.spawn(async move {
                observer
                    .run(token, |primary| {
                        me.publish_observed(primary);
                    })
                    .await
            });
        }
        let me = self.clone();
        let keeper_token = token.clone();
        tasks.spawn(async move { me.keep_primary(keeper_token).await });
        let me = self.clone();
        tasks.spawn(async move {
            me.metrics
                .sample_until(|| me.state.load().primary.is_some(), token)
                .await
        });
        while tasks.join_next().await.is_some() {}
    }

    /// Discover whenever no primary is known (at start, after a failed discovery), with backoff.
    async fn keep_primary(&self, token: CancellationToken) {
        let mut rx = self.published.subscribe();
        loop {
            let snap = self.snapshot();
            if snap.primary.is_none() {
                let deadline = Instant::now() + self.settings.discovery_timeout * 2;
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = self.rediscover(snap.generation, None, deadline) => {}
                }
                if self.snapshot().primary.is_none() {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(self.discovery_backoff().max(Duration::from_millis(50))) => {}
                    }
                }
                continue;
            }
            tokio::select! {
                _ = token.cancelled() => return,
                r = rx.changed() => if r.is_err() { return },
            }
        }
    }

    /// Ask for re-discovery of generation `seen`, and return once the generation has moved
    /// past it or `deadline` passed. Only one caller at a time talks to the replicas.
    pub async fn rediscover(&self, seen: u64, hint: Option<&str>, deadline: Instant) {
        if self.generation() != seen {
            return;
        }
        if let Some(hint) = hint {
            match Primary::new(hint, None) {
                Ok(p) if !self.resolver.hint_allowed(&p.base) => {
                    tracing::warn!(service = %self.service, hint = %p.base, "ignoring an X-Primary hint that names no configured replica");
                }
                Ok(p) if self.primary().as_ref().map(|c| &c.base) != Some(&p.base) => {
                    self.publish_if(seen, Some(p), "hint");
                    return;
                }
                // A hint naming the failing primary itself, or garbage: ask the replicas.
                _ => {}
            }
        }
        let mut rx = self.published.subscribe();
        self.start_discovery(seen);
        loop {
            if self.generation() != seen {
                return;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline.into()) => return,
            }
        }
    }

    /// Start the discovery of generation `seen` on its own task, once per generation: a
    /// caller that stops waiting (a request whose client went away) cancels only its wait,
    /// never the discovery the others are waiting for.
    fn start_discovery(&self, seen: u64) {
        let key = seen + 1;
        if self.discovery_started.fetch_max(key, Ordering::AcqRel) >= key {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            // `flight` keeps discoveries of successive generations from overlapping.
            let _guard = me.flight.lock().await;
            if me.generation() == seen {
                me.discover(seen).await;
            }
        });
    }

    /// Wait between failed discoveries: 50 ms doubling to 2 s.
    fn discovery_backoff(&self) -> Duration {
        let failed = self.failed_discoveries.load(Ordering::Relaxed).min(6) as u32;
        if failed == 0 {
            Duration::ZERO
        } else {
            (Duration::from_millis(50) * 2u32.pow(failed - 1)).min(Duration::from_secs(2))
        }
    }

    /// Run one discovery (the caller holds `flight`) and publish generation `seen + 1`.
    async fn discover(&self, seen: u64) {
        let backoff = self.discovery_backoff();
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
        let old = self.snapshot();
        let span = tracing::info_span!(
            "discovery",
            service = %self.service,
            old_primary = old.primary.as_ref().map(|p| &*p.base).unwrap_or("none"),
            old_generation = old.generation,
            new_primary = tracing::field::Empty,
            new_generation = tracing::field::Empty,
        );
        let started = Instant::now();
        self.discoveries.fetch_add(1, Ordering::Relaxed);
        let found = self
            .resolver
            .discover(old.primary.as_ref())
            .instrument(span.clone())
            .await;
        self.metrics.discovery_duration(started.elapsed());
        let primary = match found {
            Ok(p) => {
                self.failed_discoveries.store(0, Ordering::Relaxed);
                Some(p)
            }
            Err(e) => {
                self.failed_discoveries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(parent: &span, service = %self.service, error = %e, "primary discovery failed");
                None
            }
        };
        if let Some(new) = self.publish_if(seen, primary, "discovery") {
            span.record(
                "new_primary",
                new.primary.as_ref().map(|p| &*p.base).unwrap_or("none"),
            );
            span.record("new_generation", new.generation);
        }
    }

    /// Publish `primary` as generation `seen + 1` if the generation is still `seen`.
    fn publish_if(
        &self,
        seen: u64,
        primary: Option<Primary>,
        cause: &str,
    ) -> Option<Arc<Snapshot>> {
        let _g = self.publish_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.state.load_full();
        if cur.generation != seen {
            return None;
        }
        Some(self.store(&cur, primary, cause))
    }

    /// A leader seen by a watcher (etcd observe): publish it unless it is what we have, or
    /// older (a lower fencing token) than what we have.
    fn publish_observed(&self, primary: Primary) {
        let _g = self.publish_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.state.load_full();
        if let Some(c) = &cur.primary {
            if c == &primary {
                return;
            }
            if let (Some(have), Some(seen)) = (c.fence, primary.fence)
                && seen < have
            {
                return;
            }
        }
        self.store(&cur, Some(primary), "watch");
    }

    /// Store the next generation (the caller holds `publish_lock`).
    fn store(&self, cur: &Snapshot, primary: Option<Primary>, cause: &str) -> Arc<Snapshot> {
        let changed = cur.primary.as_ref().map(|p| &p.base) != primary.as_ref().map(|p| &p.base);
        let next = Arc::new(Snapshot {
            generation: cur.generation + 1,
            since: if changed { Instant::now() } else { cur.since },
            primary,
        });
        self.state.store(next.clone());
        self.published.send_replace(next.generation);
        if changed && next.primary.is_some() {
            self.metrics.primary_found();
        }
        let _ = self.events.send(TrackerEvent::Published {
            generation: next.generation,
            primary: next.primary.clone(),
            changed,
        });
        if changed {
            tracing::info!(
                service = %self.service,
                cause,
                old_primary = cur.primary.as_ref().map(|p| &*p.base).unwrap_or("none"),
                new_primary = next.primary.as_ref().map(|p| &*p.base).unwrap_or("none"),
                old_generation = cur.generation,
                new_generation = next.generation,
                fence = next.primary.as_ref().and_then(|p| p.fence),
                "primary changed"
            );
        }
        next
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, TrackerError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(
            self.settings.queue_timeout,
            self.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Ok(p),
            _ => {
                self.metrics.throttled();
                Err(TrackerError::Throttled {
                    service: self.service.clone(),
                    max_in_flight: self.settings.max_in_flight,
                })
            }
        }
    }

    /// Idempotent GET of `{primary}{path}` with retries; a non-2xx answer is an error.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, TrackerError> {
        if !path.starts_with('/') {
            return Err(TrackerError::BadRequest(format!(
                "path {path:?} must start with '/'"
            )));
        }
        let req = ::http::Request::get(path)
            .body(Bytes::new())
            .map_err(|e| TrackerError::BadRequest(e.to_string()))?;
        let resp = self.call(req).await?;
        if !resp.status().is_success() {
            return Err(TrackerError::Status {
                service: self.service.clone(),
                path: path.to_string(),
                status: resp.status().as_u16(),
            });
        }
        Ok(resp.into_body())
    }

    /// Send `req` (its URI is the path and query at the primary) to the current primary,
    /// following failovers; the whole response is read into memory.
    pub async fn call(
        &self,
        req: ::http::Request<Bytes>,
    ) -> Result<::http::Response<Bytes>, TrackerError> {
        let (parts, body) = req.into_parts();
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            return Err(TrackerError::BadRequest(format!(
                "{} is not a path: the tracker picks the host",
                parts.uri
            )));
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        match self
            .run_request(
                &parts.method,
                &path,
                &parts.headers,
                ForwardBody::Full(body),
                true,
            )
            .await?
        {
            Finished::Collected(r) => Ok(r),
            Finished::Streamed(_) => unreachable!("run_request collects when asked to"),
        }
    }

    /// Forward a request and return as soon as the primary's response headers arrive; the
    /// body streams (the proxy's path). `path` is the path and query at the primary.
    pub async fn forward(
        &self,
        method: &::http::Method,
        path: &str,
        headers: &::http::HeaderMap,
        body: ForwardBody,
    ) -> Result<Streamed, TrackerError> {
        match self.run_request(method, path, headers, body, false).await? {
            Finished::Streamed(s) => Ok(s),
            Finished::Collected(_) => unreachable!("run_request streams when asked to"),
        }
    }

    /// Turn a response (with its throttle slot) into the result: read whole, or left
    /// streaming. An `Err` is a transport failure while reading.
    async fn finish(
        &self,
        response: reqwest::Response,
        permit: OwnedSemaphorePermit,
        primary: &Primary,
        generation: u64,
        collect: bool,
        timer: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Result<Finished, String> {
        if !collect {
            return Ok(Finished::Streamed(Streamed {
                response,
                primary: primary.clone(),
                generation,
                permit,
            }));
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::select! {
            biased;
            b = response.bytes() => Ok(b),
            _ = timer => Err(()),
        };
        drop(permit);
        let body = match body {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                return Err(format!(
                    "reading the response body: {}",
                    lookout_common::error_chain(&e)
                ));
            }
            Err(_) => return Err("timed out reading the response body".into()),
        };
        let mut out = ::http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(Finished::Collected(out))
    }

    /// The retry loop shared by [`Tracker::call`] and [`Tracker::forward`].
    async fn run_request(
        &self,
        method: &::http::Method,
        path: &str,
        headers: &::http::HeaderMap,
        body: ForwardBody,
        collect: bool,
    ) -> Result<Finished, TrackerError> {
        if !path.starts_with('/') {
            return Err(TrackerError::BadRequest(format!(
                "path {path:?} must start with '/'"
            )));
        }
        let mut body = match body {
            ForwardBody::Full(b) => Sendable::Full(b),
            ForwardBody::Stream(s) => Sendable::Stream(Some(s)),
        };
        let started = Instant::now();
        let idempotent = is_idempotent(method);
        let attempts = if idempotent {
            self.settings.max_attempts
        } else {
            // Still retried when the primary certainly did not see it.
            self.settings.max_attempts.min(2)
        };
        // Bounds the whole call, waits for discovery included.
        let deadline =
            started + (self.settings.request_timeout + self.settings.discovery_timeout) * attempts;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(500))
            .with_jitter()
            .without_max_times()
            .build();
        let mut last_error = String::from("no attempt made");
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            let snap = self.state.load_full();
            let Some(primary) = snap.primary.clone() else {
                self.rediscover(snap.generation, None, deadline).await;
                last_error = "no primary known".into();
                if self.primary().is_none() && Instant::now() >= deadline {
                    break;
                }
                continue;
            };
            let permit = match self.acquire().await {
                Ok(p) => p,
                Err(e) => {
                    self.metrics.request(started.elapsed(), "throttled");
                    return Err(e);
                }
            };
            let outcome = self
                .attempt(
                    &primary,
                    snap.generation,
                    method,
                    path,
                    headers,
                    &mut body,
                    permit,
                    collect,
                )
                .await;
            match outcome {
                Attempt::Done(v) => {
                    self.metrics.request(started.elapsed(), "ok");
                    return Ok(v);
                }
                Attempt::Fatal(e) => {
                    self.metrics.request(started.elapsed(), "error");
                    return Err(e);
                }
                Attempt::Failover {
                    hint,
                    not_processed,
                    error,
                    last,
                } => {
                    last_error = error;
                    tracing::debug!(service = %self.service, primary = %primary.base, generation = snap.generation, error = %last_error, "failover signal");
                    self.rediscover(snap.generation, hint.as_deref(), deadline)
                        .await;
                    let retry_allowed = (idempotent || not_processed)
                        && attempt < attempts
                        && matches!(body, Sendable::Full(_))
                        && Instant::now() < deadline;
                    if !retry_allowed {
                        if let Some(v) = last {
                            self.metrics.request(started.elapsed(), "ok");
                            return Ok(v);
                        }
                        break;
                    }
                    // Back off only when the same primary stays in place; after a failover the
                    // new primary is tried at once.
                    if self.generation() == snap.generation
                        || self.primary().as_ref() == Some(&primary)
                    {
                        let pause = backoff.next().unwrap_or(Duration::from_millis(500));
                        tokio::time::sleep(
                            pause.min(deadline.saturating_duration_since(Instant::now())),
                        )
                        .await;
                    }
                }
            }
        }
        if self.primary().is_none() {
            self.metrics.request(started.elapsed(), "no_primary");
            return Err(TrackerError::NoPrimary {
                service: self.service.clone(),
            });
        }
        self.metrics.request(started.elapsed(), "failed");
        Err(TrackerError::Failed {
            service: self.service.clone(),
            attempts: attempt,
            last: last_error,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        primary: &Primary,
        generation: u64,
        method: &::http::Method,
        path: &str,
        headers: &::http::HeaderMap,
        body: &mut Sendable,
        permit: OwnedSemaphorePermit,
        collect: bool,
    ) -> Attempt<Finished> {
        let url = format!("{}{}", primary.base, path);
        let mut builder = self.client.request(method.clone(), &url);
        for (name, value) in headers {
            if !is_hop_by_hop(name)
                && name != ::http::header::HOST
                && name != ::http::header::CONTENT_LENGTH
            {
                builder = builder.header(name, value);
            }
        }
        builder = match body {
            Sendable::Full(b) => builder.body(b.clone()),
            Sendable::Stream(s) => match s.take() {
                Some(s) => builder.body(s),
                None => {
                    return Attempt::Fatal(TrackerError::BadRequest(
                        "a streamed body cannot be sent twice".into(),
                    ));
                }
            },
        };
        // One timer for the whole attempt (headers, then the body when collected): a timer
        // registration per phase is measurable at tens of thousands of requests a second.
        let timer = tokio::time::sleep(self.settings.request_timeout);
        tokio::pin!(timer);
        let sent = tokio::select! {
            biased;
            r = builder.send() => Ok(r),
            _ = &mut timer => Err(()),
        };
        let resp = match sent {
            Err(_) => {
                return Attempt::Failover {
                    hint: None,
                    not_processed: false,
                    error: format!("{url}: timed out after {:?}", self.settings.request_timeout),
                    last: None,
                };
            }
            Ok(Err(e)) if e.is_builder() => {
                return Attempt::Fatal(TrackerError::BadRequest(e.to_string()));
            }
            Ok(Err(e)) => {
                return Attempt::Failover {
                    hint: None,
                    not_processed: e.is_connect(),
                    error: format!("{url}: {}", lookout_common::error_chain(&e)),
                    last: None,
                };
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if status == 421 || self.settings.failover_statuses.contains(&status) {
            let hint = (status == 421)
                .then(|| {
                    resp.headers()
                        .get(PRIMARY_HINT_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
                .flatten();
            let error = format!("{url}: answered {status}");
            let last = self
                .finish(resp, permit, primary, generation, collect, timer.as_mut())
                .await
                .ok();
            return Attempt::Failover {
                hint,
                not_processed: status == 421,
                error,
                last,
            };
        }
        match self
            .finish(resp, permit, primary, generation, collect, timer.as_mut())
            .await
        {
            Ok(v) => Attempt::Done(v),
            Err(e) => Attempt::Failover {
                hint: None,
                not_processed: false,
                error: format!("{url}: {e}"),
                last: None,
            },
        }
    }
}

/// A request body inside the retry loop: a stream is taken by its one attempt.
enum Sendable {
    Full(Bytes),
    Stream(Option<reqwest::Body>),
}

/// Methods that may be repeated without changing the outcome (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &::http::Method) -> bool {
    matches!(
        *method,
        ::http::Method::GET
            | ::http::Method::HEAD
            | ::http::Method::PUT
            | ::http::Method::DELETE
            | ::http::Method::OPTIONS
            | ::http::Method::TRACE
    )
}

/// Connection-level headers a proxy must not forward (RFC 9110 §7.6.1).
pub fn is_hop_by_hop(name: &::http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_are_retried() {
        for m in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
            assert!(is_idempotent(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT"] {
            assert!(!is_idempotent(&m.parse().unwrap()), "{m}");
        }
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        assert!(is_hop_by_hop(&::http::header::CONNECTION));
        assert!(is_hop_by_hop(&::http::header::TRANSFER_ENCODING));
        assert!(!is_hop_by_hop(&::http::header::CONTENT_TYPE));
        assert!(!is_hop_by_hop(&::http::HeaderName::from_static(
            "x-primary"
        )));
    }

    #[test]
    fn primary_urls_are_validated_and_normalised() {
        let p = Primary::new("http://127.0.0.1:7001/", Some(3)).unwrap();
        assert_eq!(&*p.base, "http://127.0.0.1:7001");
        assert!(Primary::new("not a url", None).is_err());
        assert!(Primary::new("ftp://host/", None).is_err());
    }

    #[tokio::test]
    async fn no_replica_means_no_primary_and_a_clear_error() {
        // A port nobody listens on: discovery fails, requests get NoPrimary, not a hang.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let discovery = Discovery::Http(vec![format!("http://127.0.0.1:{port}")]);
        let settings = Settings {
            max_in_flight: 2,
            request_timeout: Duration::from_millis(200),
            discovery_timeout: Duration::from_millis(200),
            queue_timeout: Duration::from_millis(50),
            max_attempts: 2,
            failover_statuses: vec![421],
        };
        let meter = opentelemetry::global::meter("test");
        let t = Tracker::new("nobody", &discovery, settings, &meter).unwrap();
        let err = t.get_bytes("/x").await.unwrap_err();
        assert!(matches!(err, TrackerError::NoPrimary { .. }), "{err}");
        assert!(t.primary().is_none());
        assert!(
            t.generation() >= 1,
            "each failed discovery still publishes a generation"
        );
        let err = t.get_bytes("relative").await.unwrap_err();
        assert!(matches!(err, TrackerError::BadRequest(_)), "{err}");
    }

    /// A replica that answers `GET /primary` after `delay`, naming itself; counts the asks.
    async fn slow_replica(delay: Duration) -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let asks = Arc::new(AtomicU64::new(0));
        let (me, counter) = (base.clone(), asks.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let body = format!("{{\"primary\":\"{me}\"}}");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        (base, asks)
    }

    /// Discovery runs detached from the request that asked for it: requests that give up
    /// (a client disconnecting drops the handler's future) do not cancel it, and however
    /// many ask, the replicas are asked once.
    #[tokio::test]
    async fn discovery_outlives_the_requests_that_asked_for_it() {
        let (replica, asks) = slow_replica(Duration::from_millis(300)).await;
        let discovery = Discovery::Http(vec![replica.clone()]);
        let settings = Settings::default().discovery_timeout(Duration::from_secs(2));
        let meter = opentelemetry::global::meter("test");
        let t = Tracker::new("detached", &discovery, settings, &meter).unwrap();
        // Eight callers, each dropped after 50 ms, long before the replica answers.
        let mut callers = Vec::new();
        for _ in 0..8 {
            let t = t.clone();
            callers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(2);
                let _ = tokio::time::timeout(
                    Duration::from_millis(50),
                    t.rediscover(0, None, deadline),
                )
                .await;
            }));
        }
        for c in callers {
            c.await.unwrap();
        }
        assert!(t.primary().is_none(), "the replica has not answered yet");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            t.primary().map(|p| p.base.to_string()),
            Some(replica),
            "the discovery was cancelled with its requests"
        );
        assert_eq!(t.discoveries(), 1);
        assert_eq!(asks.load(Ordering::Relaxed), 1);
    }
}
