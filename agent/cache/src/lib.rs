//! The two-tier cache: an immutable in-memory snapshot read without locks (tier 1) in front of
//! a shared blob store (tier 2) that every agent of the fleet polls, with one source load per
//! refresh interval for the whole fleet. The protocol, its guarantees and its costs are in
//! `agent/docs/cache-protocol.md`; in short:
//!
//! - The blob tier holds a small manifest (version, content hash, fleet refresh state) and
//!   content-addressed data objects. Agents read the manifest with If-None-Match every
//!   `check_interval` and fetch data only when the hash changed, verifying it.
//! - Refresh timing uses LOCAL monotonic deadlines only: an agent restarts its deadline when it
//!   first sees a new refresh epoch in the manifest. When it passes, the agent claims the
//!   refresh by compare-and-swap; the winner loads the source and publishes; a claim expires
//!   `claim_ttl` after each observer first saw it, by the observer's own clock.
//! - Versions only go up, per agent and across restarts (the on-disk snapshot is written before
//!   a version is served); a strong read returns at least the blob's version or fails.
//!
//! A service embeds it with a blob store ([`blob::open`]: `az://`, `s3://`, `gs://`,
//! `file://`, `memory://`), a [`Source`] (a file, a URL, a command, or its own loader), plain
//! [`CacheOptions`] and an OpenTelemetry [`Meter`] for the counters and the refresh histogram.
//! State is read with [`Cache::status`], changes arrive as [`CacheEvent`]s:
//!
//! ```
//! use bytes::Bytes;
//! use lookout_cache::{Cache, CacheOptions, blob, source};
//! use std::time::Duration;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = blob::open("memory://doc-example", &Default::default()).unwrap();
//! let load = source::from_fn(|| Box::pin(async { Ok(Bytes::from_static(b"{\"flag\":true}")) }));
//! let meter = opentelemetry::global::meter("my-service");
//! let opts = CacheOptions::new("flags").check_interval(Duration::from_millis(50));
//! let cache = Cache::new(opts, load, store, &meter);
//!
//! let mut events = cache.subscribe();
//! let stop = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(cache.clone().run(stop.clone(), || {}));
//! while cache.get().is_none() {
//!     events.recv().await.unwrap();
//! }
//! // Reads are lock-free loads of an immutable snapshot.
//! assert_eq!(&cache.get().unwrap().bytes[..], b"{\"flag\":true}");
//! assert_eq!(cache.status().version, Some(1));
//! stop.cancel();
//! # });
//! ```
//!
//! Crate boundaries: this crate knows nothing of the lookout agent, the tracker, HTTP servers
//! or config files; the agent maps `[[cache]]` tables to [`CacheOptions`], exports
//! [`CacheStatus`] as gauges and serves `GET /v1/cache/{name}`.

pub mod blob;
pub mod chaos;
mod disk;
pub mod localdir;
pub mod manifest;
pub mod names;
pub mod source;
#[cfg(test)]
mod tests;

use arc_swap::ArcSwapOption;
use blob::{BlobError, BlobStore, Fetched, PutCondition, PutOutcome, Tag};
use bytes::Bytes;
use manifest::{Claim, DataRef, Manifest, ManifestError, is_sha256_hex};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use sha2::{Digest, Sha256};
pub use source::{Source, SourceError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// One immutable version of a cached document.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
    pub bytes: Bytes,
}

impl Snapshot {
    pub fn new(version: u64, bytes: Bytes) -> Self {
        Self {
            version,
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
        }
    }
}

/// Why a cache operation failed. [`CacheError::kind`] is the `kind` label of
/// `lookout_cache_errors_total` and of the finding.
#[derive(Debug, Error, Clone)]
pub enum CacheError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("corrupt blob data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("manifest names data {0} that is not in the blob store")]
    MissingData(String),
    #[error("{0}")]
    Format(String),
    #[error("lost a compare-and-swap on the manifest: {0}")]
    Conflict(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("no version of this cache exists yet")]
    NoVersion,
    #[error("the blob tier has no manifest: nothing confirms the newest version")]
    NoManifest,
    #[error("version {0} is the last one a u64 holds: nothing can be published above it")]
    VersionExhausted(u64),
    #[error("cannot write the local snapshot: {0}")]
    Disk(String),
}

impl CacheError {
    pub fn kind(&self) -> &'static str {
        match self {
            CacheError::Blob(BlobError::TooLarge { .. }) => "too_large",
            CacheError::Blob(_) => "blob",
            CacheError::Corrupt(_) => "corrupt",
            CacheError::TooLarge(_) => "too_large",
            CacheError::MissingData(_) => "missing_data",
            CacheError::Format(_) => "format",
            CacheError::Conflict(_) => "conflict",
            CacheError::Source(SourceError::TooLarge { .. }) => "too_large",
            CacheError::Source(_) => "source",
            CacheError::NoVersion | CacheError::NoManifest => "blob",
            CacheError::VersionExhausted(_) => "format",
            CacheError::Disk(_) => "disk",
        }
    }
}

/// The tunables of one cache. Start from [`CacheOptions::new`] (the defaults of the agent's
/// `[[cache]]`) and change what you need:
///
/// ```
/// use std::time::Duration;
/// let opts = lookout_cache::CacheOptions::new("fleet-config")
///     .check_interval(Duration::from_secs(1))
///     .refresh_interval(Duration::from_secs(60))
///     .local_dir("/var/lib/my-service/cache");
/// assert_eq!(opts.claim_ttl, Duration::from_secs(90), "3 x source_timeout unless set");
/// ```
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// The cache's name: the prefix of its objects in the blob tier and its `cache` label.
    pub name: String,
    /// How often the manifest is read (If-None-Match, so mostly a 304).
    pub check_interval: Duration,
    /// How often the fleet loads the source.
    pub refresh_interval: Duration,
    /// How long others honour a refresh claim before taking over.
    pub claim_ttl: Duration,
    /// Largest document accepted, from the source or the blob tier.
    pub max_size: u64,
    /// Bound of one source load.
    pub source_timeout: Duration,
    /// Where the on-disk snapshot lives; `None` = memory only.
    pub local_dir: Option<PathBuf>,
    /// This instance's identity in claims: host, pid and a random suffix.
    pub owner: String,
}

impl CacheOptions {
    /// The defaults: check every 5 s, refresh every 5 min, 30 s source timeout, claims
    /// honoured for 3 × the source timeout, documents up to 256 MiB, memory only.
    pub fn new(name: impl Into<String>) -> Self {
        let source_timeout = Duration::from_secs(30);
        Self {
            name: name.into(),
            check_interval: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(300),
            claim_ttl: source_timeout * 3,
            max_size: 256 * 1024 * 1024,
            source_timeout,
            local_dir: None,
            owner: new_owner_id(&local_host()),
        }
    }

    pub fn check_interval(mut self, d: Duration) -> Self {
        self.check_interval = d;
        self
    }

    pub fn refresh_interval(mut self, d: Duration) -> Self {
        self.refresh_interval = d;
        self
    }

    pub fn claim_ttl(mut self, d: Duration) -> Self {
        self.claim_ttl = d;
        self
    }

    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Also moves a claim TTL that was left at its default (3 × the source timeout).
    pub fn source_timeout(mut self, d: Duration) -> Self {
        if self.claim_ttl == self.source_timeout * 3 {
            self.claim_ttl = d * 3;
        }
        self.source_timeout = d;
        self
    }

    pub fn local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }

    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }
}

/// The host name for claim identities; `localhost` when the kernel does not say.
fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A fresh claim identity: unique per process and instance, readable by people.
pub fn new_owner_id(host: &str) -> String {
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// What a cache tells the program embedding it, in order, through [`Cache::subscribe`]. A
/// host that exports gauges re-reads [`Cache::status`] on each event; the agent also turns
/// errors into findings.
#[derive(Debug, Clone)]
pub enum CacheEvent {
    /// One check against the blob tier finished (successful or not).
    Checked,
    /// A new version is served (from the blob tier, the source, or the local snapshot).
    Served { version: u64 },
    /// The slow source was loaded, successfully or not.
    SourceLoaded { ok: bool },
    /// An error, with its [`CacheError::kind`].
    Error { kind: &'static str, message: String },
}

/// A cache's state as one value: what it serves, what it last saw in the blob tier, and its
/// running totals. Cheap to take (a few atomics and two small maps).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStatus {
    /// The version served now; `None` until one exists.
    pub version: Option<u64>,
    /// The version named by the manifest at the last successful check.
    pub blob_version: Option<u64>,
    /// Versions this instance was behind the blob tier at the last successful check.
    pub version_lag: Option<u64>,
    /// Local monotonic time since the last successful check against the blob tier.
    pub staleness: Duration,
    /// Whether the last blob operation succeeded; `None` before the first one.
    pub blob_up: Option<bool>,
    /// Source loads by outcome (`ok`, `error`).
    pub source_loads: BTreeMap<&'static str, u64>,
    /// Errors by [`CacheError::kind`].
    pub errors: BTreeMap<&'static str, u64>,
    /// Whether the last write of the on-disk snapshot succeeded; `None` before the first one
    /// (or with no `local_dir`). While it fails, a restart may come up with nothing to serve
    /// until the blob tier answers.
    pub local_save_ok: Option<bool>,
}

/// How many events wait for a slow subscriber before it misses some (it then re-reads
/// [`Cache::status`], whose totals are exact).
const EVENT_BUFFER: usize = 256;

const BLOB_UNKNOWN: u8 = 0;
const BLOB_DOWN: u8 = 1;
const BLOB_UP: u8 = 2;
/// `u64::MAX` in a status atomic: not known yet.
const UNSET: u64 = u64::MAX;

/// The instruments and running state of one cache.
struct Metrics {
    loads: Counter<u64>,
    errors: Counter<u64>,
    refresh: Histogram<f64>,
    totals: Mutex<HashMap<(&'static str, &'static str), u64>>,
    blob_version: AtomicU64,
    lag: AtomicU64,
    blob_up: AtomicU8,
    local_save: AtomicU8,
    /// The latest duration of each refresh phase, for benches and troubleshooting.
    last_phase: Mutex<HashMap<&'static str, Duration>>,
    events: tokio::sync::broadcast::Sender<CacheEvent>,
}

impl Metrics {
    fn new(meter: &Meter) -> Self {
        Self {
            loads: meter
                .u64_counter(names::SOURCE_LOADS)
                .with_description("Loads of the slow source, by outcome")
                .build(),
            errors: meter
                .u64_counter(names::ERRORS)
                .with_description("Cache errors by kind")
                .build(),
            refresh: meter
                .f64_histogram(names::REFRESH_DURATION_SECONDS)
                .with_description("Refresh latency by phase: check, fetch, source, publish")
                .with_unit("s")
                .with_boundaries(lookout_common::LATENCY_BUCKETS.to_vec())
                .build(),
            totals: Mutex::new(HashMap::new()),
            blob_version: AtomicU64::new(UNSET),
            lag: AtomicU64::new(UNSET),
            blob_up: AtomicU8::new(BLOB_UNKNOWN),
            local_save: AtomicU8::new(BLOB_UNKNOWN),
            last_phase: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

/// What the check loop last learned from the blob tier.
#[derive(Debug, Clone, Default)]
enum View {
    /// Not read yet, or the blob tier is failing.
    #[default]
    Unknown,
    /// No manifest: nothing was ever published.
    Absent,
    /// A manifest that does not parse: repaired by the next refresh.
    Garbage(Tag),
    /// A manifest of a format this agent does not know: left alone.
    Future,
    Valid(Tag, Manifest),
}

/// The check loop's private bookkeeping (local monotonic times only).
#[derive(Default)]
struct LoopState {
    view: View,
    /// The refresh epoch last seen, and when this agent first saw it.
    epoch_seen: Option<(u64, Instant)>,
    /// The claim nonce last seen, and when this agent first saw it.
    claim_seen: Option<(String, Instant)>,
    /// The blob needs a refresh regardless of the schedule: its data is missing or corrupt,
    /// or it is behind the version this agent serves.
    repair: bool,
}

/// One configured cache.
pub struct Cache {
    opts: CacheOptions,
    blob: Arc<dyn BlobStore>,
    source: Arc<dyn Source>,
    current: ArcSwapOption<Snapshot>,
    /// Serializes installs so the served version can only go up.
    install: tokio::sync::Mutex<()>,
    /// The newest manifest any read has seen, with its tag (for If-None-Match).
    known: Mutex<Option<(Tag, Manifest)>>,
    /// The last strong read: when it started and what it returned (single flight).
    strong_flight: tokio::sync::Mutex<Option<StrongFlight>>,
    /// Nanoseconds after `started` of the last successful check (0 = never).
    validated_at: AtomicU64,
    started: Instant,
    metrics: Metrics,
}

/// When the last strong read started and what it returned.
type StrongFlight = (Instant, Result<Arc<Snapshot>, CacheError>);

const ORDER: Ordering = Ordering::Relaxed;

impl Cache {
    /// A cache named `opts.name` over `blob`, refreshed from `source`; counters and
    /// histograms go to `meter`. Nothing runs until [`Cache::run`].
    pub fn new(
        opts: CacheOptions,
        source: Arc<dyn Source>,
        blob: Arc<dyn BlobStore>,
        meter: &Meter,
    ) -> Arc<Self> {
        Arc::new(Self {
            metrics: Metrics::new(meter),
            opts,
            blob,
            source,
            current: ArcSwapOption::empty(),
            install: tokio::sync::Mutex::new(()),
            known: Mutex::new(None),
            strong_flight: tokio::sync::Mutex::new(None),
            validated_at: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Start from what `previous` serves (the same cache of the configuration being replaced on
    /// a reload): no reload drops the memory tier or re-reads the disk, and readiness needs no
    /// new load. Only before [`Cache::run`]; never lowers the version.
    pub fn adopt(&self, previous: &Cache) {
        if let Some(snap) = previous.get()
            && self.get().is_none_or(|c| c.version < snap.version)
        {
            self.current.store(Some(snap));
        }
        if previous.metrics.local_save.load(ORDER) == BLOB_DOWN {
            self.metrics.local_save.store(BLOB_DOWN, ORDER);
        }
    }

    /// Events from now on (see [`CacheEvent`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<CacheEvent> {
        self.metrics.events.subscribe()
    }

    /// The state of this cache now.
    pub fn status(&self) -> CacheStatus {
        let known = |v: u64| (v != UNSET).then_some(v);
        let totals = self
            .metrics
            .totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let pick = |series: &str| {
            totals
                .iter()
                .filter(|((s, _), _)| *s == series)
                .map(|((_, k), n)| (*k, *n))
                .collect::<BTreeMap<_, _>>()
        };
        CacheStatus {
            version: self.peek().as_ref().map(|s| s.version),
            blob_version: known(self.metrics.blob_version.load(ORDER)),
            version_lag: known(self.metrics.lag.load(ORDER)),
            staleness: self.staleness(),
            blob_up: match self.metrics.blob_up.load(ORDER) {
                BLOB_UP => Some(true),
                BLOB_DOWN => Some(false),
                _ => None,
            },
            source_loads: pick(names::SOURCE_LOADS),
            errors: pick(names::ERRORS),
            local_save_ok: match self.metrics.local_save.load(ORDER) {
                BLOB_UP => Some(true),
                BLOB_DOWN => Some(false),
                _ => None,
            },
        }
    }

    /// Where the blob tier is, without credentials.
    pub fn blob_description(&self) -> String {
        self.blob.describe()
    }

    /// What kind of source this cache loads from (`file`, `http`, ...).
    pub fn source_kind(&self) -> &'static str {
        self.source.kind()
    }

    fn emit(&self, event: CacheEvent) {
        // No subscriber is fine: a library user may only read status().
        let _ = self.metrics.events.send(event);
    }

    pub fn name(&self) -> &str {
        &self.opts.name
    }

    pub fn options(&self) -> &CacheOptions {
        &self.opts
    }

    /// The snapshot served now, from memory, without locks. `None` until a version exists.
    pub fn get(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Like [`Cache::get`] without touching the snapshot's reference count: the fastest read,
    /// for callers that look at the bytes and let go.
    pub fn peek(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// Seconds since the last successful check against the blob tier (local monotonic clock);
    /// since start when there was none.
    pub fn staleness(&self) -> Duration {
        let at = self.validated_at.load(ORDER);
        let elapsed = self.started.elapsed();
        elapsed.saturating_sub(Duration::from_nanos(at))
    }

    fn mark_validated(&self) {
        let nanos = self.started.elapsed().as_nanos().max(1) as u64;
        self.validated_at.fetch_max(nanos, ORDER);
    }

    /// Manifest operations are tiny: bound them well below the check cadence, so that a hung
    /// blob endpoint (object_store retries for minutes by default) shows up as `blob_up` 0 and
    /// growing staleness instead of a silent stall.
    fn manifest_timeout(&self) -> Duration {
        (self.opts.check_interval * 2).max(Duration::from_secs(5))
    }

    /// Data transfers may be large: bound them by the source timeout, at least a minute.
    fn data_timeout(&self) -> Duration {
        self.opts.source_timeout.max(Duration::from_secs(60))
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        op: impl std::future::Future<Output = Result<T, BlobError>>,
    ) -> Result<T, BlobError> {
        match tokio::time::timeout(limit, op).await {
            Ok(r) => r,
            Err(_) => Err(BlobError::Unavailable(format!(
                "blob operation timed out after {limit:?}"
            ))),
        }
    }

    fn manifest_key(&self) -> String {
        format!("{}/manifest.json", self.opts.name)
    }

    fn data_prefix(&self) -> String {
        format!("{}/data", self.opts.name)
    }

    fn data_key(&self, sha: &str) -> String {
        format!("{}/data/{sha}", self.opts.name)
    }

    /// A read validated against the blob tier: the version returned is at least the one the
    /// manifest names at the time of the read. Fails when the blob tier cannot confirm it.
    ///
    /// Single flight: concurrent strong reads share one manifest read — a caller takes the
    /// result of a read that *started after it called*, so that read also saw every write
    /// completed before the call; otherwise it runs one itself, under the lock, for everyone
    /// waiting behind it. A burst of N calls costs at most two blob reads, not N.
    pub async fn get_strong(&self) -> Result<Arc<Snapshot>, CacheError> {
        let called = Instant::now();
        let mut last = self.strong_flight.lock().await;
        if let Some((started, result)) = last.as_ref()
            && *started >= called
        {
            return result.clone();
        }
        let started = Instant::now();
        let result = self.read_strong().await;
        *last = Some((started, result.clone()));
        result
    }

    async fn read_strong(&self) -> Result<Arc<Snapshot>, CacheError> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let key = self.manifest_key();
        let fetched = self
            .bounded(
                self.manifest_timeout(),
                self.blob.get(
                    &key,
                    known.as_ref().map(|(t, _)| t),
                    manifest::MAX_MANIFEST_BYTES,
                ),
            )
            .await;
        let manifest = match fetched {
            Err(e) => {
                self.set_blob_up(false);
                return Err(e.into());
            }
            Ok(Fetched::NotModified) => known.map(|(_, m)| m),
            Ok(Fetched::NotFound) => None,
            Ok(Fetched::Found { bytes, tag }) => {
                let m = parse_manifest(&bytes)?;
                self.remember(&tag, &m);
                Some(m)
            }
        };
        // The manifest may be behind what was published (restored from a backup, rolled back)
        // or gone (wiped): the version markers are the record of every version taken. One
        // more read when the manifest is there: the marker above it, normally absent.
        let above = match &manifest {
            Some(m) => match m.version.checked_add(1) {
                Some(next) => self.marker(next).await?.is_some(),
                None => false,
            },
            None => true,
        };
        let mut needed: Option<(u64, DataRef)> = manifest
            .as_ref()
            .and_then(|m| m.data.clone().map(|d| (m.version, d)));
        if above
            && let Some((v, d)) = self.highest_marker().await?
            && is_sha256_hex(&d.sha256)
            && needed.as_ref().is_none_or(|(nv, _)| v > *nv)
        {
            needed = Some((v, d));
        }
        let current = self.get();
        tracing::debug!(cache = %self.opts.name, manifest = ?manifest.as_ref().map(|m| m.version), above, needed = ?needed.as_ref().map(|n| n.0), current = ?current.as_ref().map(|c| c.version), "strong read");
        let (version, data) = match (needed, manifest) {
            (Some(n), _) => n,
            // Nothing published yet.
            (None, Some(_)) => return current.ok_or(CacheError::NoVersion),
            // No manifest and no marker: the blob tier cannot confirm that what this agent
            // holds is the newest; answering from local state would not be strong.
            (None, None) => return Err(CacheError::NoManifest),
        };
        if let Some(cur) = &current
            && cur.version >= version
        {
            self.mark_validated();
            return Ok(cur.clone());
        }
        let bytes = self.fetch_verified(&data).await?;
        let snap = Arc::new(Snapshot {
            version,
            sha256: data.sha256.clone(),
            bytes,
        });
        self.install(snap).await;
        self.mark_validated();
        self.get().ok_or(CacheError::NoVersion)
    }

    fn remember(&self, tag: &Tag, m: &Manifest) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let newer = known
            .as_ref()
            .is_none_or(|(_, k)| (m.version, m.epoch) >= (k.version, k.epoch));
        if newer {
            *known = Some((tag.clone(), m.clone()));
        }
    }

    /// Fetch a data object and verify size and hash; nothing unverified gets past here.
    async fn fetch_verified(&self, data: &DataRef) -> Result<Bytes, CacheError> {
        if data.size > self.opts.max_size {
            return Err(CacheError::TooLarge(format!(
                "manifest names {} bytes, above max_size {}",
                data.size, self.opts.max_size
            )));
        }
        let key = self.data_key(&data.sha256);
        let span = tracing::debug_span!("cache_fetch", cache = %self.opts.name, sha256 = %data.sha256, size = data.size, outcome = tracing::field::Empty);
        let t0 = Instant::now();
        let res = async {
            match self
                .bounded(self.data_timeout(), self.blob.get(&key, None, data.size))
                .await
            {
                Ok(Fetched::Found { bytes, .. }) => {
                    if bytes.len() as u64 != data.size {
                        return Err(CacheError::Corrupt(format!(
                            "data {} is {} bytes, the manifest says {}",
                            data.sha256,
                            bytes.len(),
                            data.size
                        )));
                    }
                    let sha = hex::encode(Sha256::digest(&bytes));
                    if sha != data.sha256 {
                        return Err(CacheError::Corrupt(format!(
                            "data {} hashes to {sha}",
                            data.sha256
                        )));
                    }
                    Ok(bytes)
                }
                Ok(Fetched::NotFound) => Err(CacheError::MissingData(data.sha256.clone())),
                Ok(Fetched::NotModified) => Err(CacheError::Blob(BlobError::Unavailable(
                    "unexpected 304 on a data object".into(),
                ))),
                Err(BlobError::TooLarge { size, .. }) => Err(CacheError::Corrupt(format!(
                    "data {} is {size} bytes or more, the manifest says {}",
                    data.sha256, data.size
                ))),
                Err(e) => Err(e.into()),
            }
        }
        .instrument(span.clone())
        .await;
        span.record("outcome", outcome_of(&res));
        self.observe_phase("fetch", t0);
        res
    }

    /// Make `snap` the served version if it is newer; persist it first (restart monotonicity).
    async fn install(&self, snap: Arc<Snapshot>) -> bool {
        let _guard = self.install.lock().await;
        if let Some(cur) = self.current.load_full()
            && cur.version >= snap.version
        {
            return false;
        }
        if !self.save_local(&snap).await {
            // Serving a version the disk does not hold is safe only if a restart cannot come
            // up with an older one: the old snapshot must go, or the new version waits (the
            // next check retries).
            let Some(dir) = self.opts.local_dir.clone() else {
                return false;
            };
            let discarded = tokio::task::spawn_blocking(move || disk::discard(&dir)).await;
            if !matches!(discarded, Ok(Ok(()))) {
                tracing::error!(cache = %self.opts.name, version = snap.version, "the old local snapshot cannot be removed either: keeping the served version");
                return false;
            }
        }
        tracing::info!(cache = %self.opts.name, version = snap.version, sha256 = %snap.sha256, size = snap.bytes.len(), "serving a new version");
        let version = snap.version;
        self.current.store(Some(snap));
        self.emit(CacheEvent::Served { version });
        true
    }

    /// Write `snap` to the on-disk snapshot (if there is a `local_dir`); false when that
    /// failed, which is counted (`kind="disk"`), logged and shown in [`CacheStatus`].
    async fn save_local(&self, snap: &Arc<Snapshot>) -> bool {
        let Some(dir) = self.opts.local_dir.clone() else {
            return true;
        };
        let to_save = snap.clone();
        let saved = tokio::task::spawn_blocking(move || disk::save(&dir, &to_save)).await;
        let err = match saved {
            Ok(Ok(())) => {
                self.metrics.local_save.store(BLOB_UP, ORDER);
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the snapshot task failed: {e}"),
        };
        self.metrics.local_save.store(BLOB_DOWN, ORDER);
        self.record_error(&CacheError::Disk(format!(
            "version {}: {err}",
            snap.version
        )));
        false
    }

    /// The latest duration of each refresh phase this instance ran (`check`, `fetch`,
    /// `source`, `publish`).
    pub fn last_phase_durations(&self) -> HashMap<&'static str, Duration> {
        self.metrics
            .last_phase
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn observe_phase(&self, phase: &'static str, since: Instant) {
        let took = since.elapsed();
        self.metrics
            .last_phase
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(phase, took);
        self.metrics.refresh.record(
            took.as_secs_f64(),
            &[
                KeyValue::new("cache", self.opts.name.clone()),
                KeyValue::new("phase", phase),
            ],
        );
    }

    /// Count an error, log it, and tell the subscribers.
    fn record_error(&self, err: &CacheError) {
        let kind = err.kind();
        self.count(&self.metrics.errors, names::ERRORS, "kind", kind);
        tracing::warn!(cache = %self.opts.name, kind, "{err}");
        self.emit(CacheEvent::Error {
            kind,
            message: err.to_string(),
        });
    }

    fn record_load(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.count(&self.metrics.loads, names::SOURCE_LOADS, "outcome", outcome);
        self.emit(CacheEvent::SourceLoaded { ok });
    }

    /// Add one to `counter{cache, label=value}` and to the running total [`Cache::status`]
    /// reports.
    fn count(
        &self,
        counter: &Counter<u64>,
        series: &'static str,
        label: &'static str,
        value: &'static str,
    ) {
        counter.add(
            1,
            &[
                KeyValue::new("cache", self.opts.name.clone()),
                KeyValue::new(label, value),
            ],
        );
        *self
            .metrics
            .totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((series, value))
            .or_insert(0) += 1;
    }

    fn set_blob_up(&self, up: bool) {
        self.metrics
            .blob_up
            .store(if up { BLOB_UP } else { BLOB_DOWN }, ORDER);
    }

    /// Serve the on-disk snapshot, if any, before the blob tier answers (flagged stale).
    async fn load_local(&self) {
        let Some(dir) = self.opts.local_dir.clone() else {
            return;
        };
        match tokio::task::spawn_blocking(move || disk::load(&dir)).await {
            // Already serving as new a version (taken over from the previous instance on a
            // reload): the memory tier stays.
            Ok(Ok(Some(snap))) if self.get().is_some_and(|c| c.version >= snap.version) => {}
            Ok(Ok(Some(snap))) => {
                tracing::info!(cache = %self.opts.name, version = snap.version, "serving the local snapshot until the blob tier confirms it");
                let version = snap.version;
                self.current.store(Some(Arc::new(snap)));
                self.emit(CacheEvent::Served { version });
            }
            Ok(Ok(None)) => {}
            Ok(Err(reason)) => {
                self.record_error(&CacheError::Corrupt(reason));
            }
            Err(e) => tracing::error!(cache = %self.opts.name, "local snapshot task failed: {e}"),
        }
    }

    /// Run the cache until `token` is cancelled: cold start from disk, then check the blob
    /// tier every `check_interval` and refresh when due. `ready` is called once a version is
    /// served.
    pub async fn run(self: Arc<Self>, token: CancellationToken, ready: impl FnOnce() + Send) {
        let mut ready = Some(ready);
        self.load_local().await;
        let mut st = LoopState::default();
        loop {
            if self.get().is_some()
                && let Some(r) = ready.take()
            {
                r();
            }
            let started = Instant::now();
            tokio::select! {
                _ = token.cancelled() => break,
                _ = self.check_once(&mut st) => {}
            }
            self.update_gauges(&st);
            if self.get().is_some()
                && let Some(r) = ready.take()
            {
                r();
            }
            let next = started + self.opts.check_interval;
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// Publish what this check learned: status, then the `Checked` event.
    fn update_gauges(&self, st: &LoopState) {
        let served = self.get().map(|s| s.version).unwrap_or(0);
        if let View::Valid(_, m) = &st.view {
            self.metrics.blob_version.store(m.version, ORDER);
            self.metrics
                .lag
                .store(m.version.saturating_sub(served), ORDER);
        }
        self.emit(CacheEvent::Checked);
    }

    /// One check against the blob tier, then a refresh if one is due.
    async fn check_once(&self, st: &mut LoopState) {
        let served = self.get();
        if self.metrics.local_save.load(ORDER) == BLOB_DOWN
            && let Some(s) = &served
        {
            // The disk failed before: try again, so readiness comes back without a new version.
            self.save_local(s).await;
        }
        let span = tracing::debug_span!(
            "cache_check",
            cache = %self.opts.name,
            local_version = served.as_ref().map(|s| s.version).unwrap_or(0),
            blob_version = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let t0 = Instant::now();
        let tag = match &st.view {
            View::Valid(t, _) => Some(t.clone()),
            _ => None,
        };
        let key = self.manifest_key();
        let fetched = self
            .bounded(
                self.manifest_timeout(),
                self.blob
                    .get(&key, tag.as_ref(), manifest::MAX_MANIFEST_BYTES),
            )
            .instrument(span.clone())
            .await;
        self.observe_phase("check", t0);
        let now = Instant::now();
        match fetched {
            Err(e) => {
                span.record("outcome", "blob_error");
                self.set_blob_up(false);
                st.view = View::Unknown;
                self.record_error(&e.into());
                return;
            }
            Ok(Fetched::NotModified) => {
                span.record("outcome", "not_modified");
            }
            Ok(Fetched::NotFound) => {
                span.record("outcome", "absent");
                st.view = View::Absent;
            }
            Ok(Fetched::Found { bytes, tag }) => match Manifest::parse(&bytes) {
                Ok(m) => {
                    span.record("outcome", "changed");
                    self.remember(&tag, &m);
                    st.view = View::Valid(tag, m);
                }
                Err(ManifestError::UnknownFormat(f)) => {
                    span.record("outcome", "unknown_format");
                    st.view = View::Future;
                    self.set_blob_up(true);
                    self.record_error(&CacheError::Format(format!(
                        "manifest format {f} is newer than this agent understands ({}); keeping version {:?}",
                        manifest::FORMAT,
                        served.map(|s| s.version)
                    )));
                    return;
                }
                Err(ManifestError::Garbage(why)) => {
                    span.record("outcome", "garbage_manifest");
                    st.view = View::Garbage(tag);
                    self.record_error(&CacheError::Corrupt(format!("manifest: {why}")));
                }
            },
        }
        self.set_blob_up(true);

        // Bring the memory tier up to the manifest.
        st.repair = matches!(st.view, View::Garbage(_));
        let mut in_sync = matches!(st.view, View::Absent);
        if let View::Valid(_, m) = &st.view {
            span.record("blob_version", m.version);
            if st.epoch_seen.as_ref().is_none_or(|(e, _)| *e != m.epoch) {
                st.epoch_seen = Some((m.epoch, now));
            }
            match &m.claim {
                Some(c) if st.claim_seen.as_ref().is_none_or(|(n, _)| *n != c.nonce) => {
                    st.claim_seen = Some((c.nonce.clone(), now));
                }
                None => st.claim_seen = None,
                _ => {}
            }
            let served = self.get();
            let served_version = served.as_ref().map(|s| s.version).unwrap_or(0);
            match &m.data {
                Some(d) if m.version > served_version => match self.fetch_verified(d).await {
                    Ok(bytes) => {
                        self.install(Arc::new(Snapshot {
                            version: m.version,
                            sha256: d.sha256.clone(),
                            bytes,
                        }))
                        .await;
                        in_sync = true;
                    }
                    Err(e) => {
                        if matches!(e.kind(), "corrupt" | "missing_data" | "too_large") {
                            st.repair = true;
                        }
                        if e.kind() == "blob" {
                            self.set_blob_up(false);
                        }
                        self.record_error(&e);
                    }
                },
                Some(d) if m.version == served_version => {
                    if served.is_some_and(|s| s.sha256 == d.sha256) {
                        in_sync = true;
                    } else {
                        // Same version, other content: the blob was reset behind our back.
                        st.repair = true;
                    }
                }
                _ if m.version < served_version => {
                    // The blob is behind what this agent served (wiped or restored): keep
                    // serving ours, and republish above it.
                    st.repair = true;
                    in_sync = true;
                }
                _ => in_sync = true,
            }
        }
        if in_sync {
            self.mark_validated();
        }
        self.maybe_refresh(st).await;
    }

    /// How long after a refresh epoch the next refresh is due.
    fn refresh_delay(&self, m: &Manifest, repair: bool) -> Duration {
        let r = self.opts.refresh_interval;
        if m.failures > 0 {
            // Source failing: retry sooner than a full interval, backing off to it.
            let base = (r / 4).max(self.opts.check_interval);
            let factor = 1u32 << (m.failures - 1).min(8);
            (base * factor).min(r)
        } else if repair || m.version == 0 {
            Duration::ZERO
        } else {
            r
        }
    }

    async fn maybe_refresh(&self, st: &mut LoopState) {
        let now = Instant::now();
        let due = match &st.view {
            View::Unknown | View::Future => false,
            View::Absent | View::Garbage(_) => true,
            View::Valid(_, m) => {
                let since_epoch = st
                    .epoch_seen
                    .as_ref()
                    .map(|(_, at)| now.duration_since(*at))
                    .unwrap_or_default();
                let due = since_epoch >= self.refresh_delay(m, st.repair);
                match (&m.claim, &st.claim_seen) {
                    // A claim is honoured until it has been visible for claim_ttl here;
                    // after that its owner is presumed dead and anyone may take over.
                    (Some(_), Some((_, seen))) => now.duration_since(*seen) >= self.opts.claim_ttl,
                    _ => due,
                }
            }
        };
        if !due {
            return;
        }
        let (base, cond) = match &st.view {
            View::Valid(tag, m) => (m.clone(), PutCondition::Match(tag.clone())),
            View::Garbage(tag) => (
                self.manifest_from_served(),
                PutCondition::Match(tag.clone()),
            ),
            _ => (self.manifest_from_served(), PutCondition::Create),
        };
        let mut claimed = base.clone();
        claimed.claim = Some(Claim {
            owner: self.opts.owner.clone(),
            nonce: format!("{:016x}", rand::random::<u64>()),
        });
        claimed.writer = self.opts.owner.clone();
        let key = self.manifest_key();
        // Taken before the claim is written: every observer starts its claim_ttl later than
        // this, so a claimer that keeps to this deadline never acts on a claim another agent
        // may already have taken over (after a SIGSTOP or a VM stall, say).
        let deadline = Instant::now() + self.opts.claim_ttl;
        match self
            .bounded(
                self.manifest_timeout(),
                self.blob.put(&key, claimed.to_bytes(), cond),
            )
            .await
        {
            Err(e) => {
                self.set_blob_up(false);
                self.record_error(&e.into());
            }
            Ok(PutOutcome::Conflict) => {
                // Another agent claimed or published first: the protocol working. Re-read
                // next check.
                tracing::debug!(cache = %self.opts.name, "lost the refresh claim race");
                st.view = View::Unknown;
            }
            Ok(PutOutcome::Written(tag)) => {
                // A missing or garbled manifest cannot say which versions were taken: the
                // markers are read before choosing one.
                let repair = st.repair || !matches!(st.view, View::Valid(..));
                self.refresh_as_claimer(st, base, &claimed, tag, repair, deadline)
                    .await;
            }
        }
    }

    /// A manifest describing what this agent serves, used to replace a garbage or missing one.
    fn manifest_from_served(&self) -> Manifest {
        let mut m = Manifest::empty(&self.opts.owner);
        if let Some(s) = self.get() {
            m.version = s.version;
            m.data = Some(DataRef {
                sha256: s.sha256.clone(),
                size: s.bytes.len() as u64,
            });
        }
        m
    }

    /// This agent holds the claim: load the source once, upload the data if new, collect old
    /// data, and publish with a compare-and-swap against the claim.
    async fn refresh_as_claimer(
        &self,
        st: &mut LoopState,
        base: Manifest,
        claimed: &Manifest,
        claim_tag: Tag,
        repair: bool,
        deadline: Instant,
    ) {
        let span = tracing::info_span!(
            "cache_refresh",
            cache = %self.opts.name,
            source = self.source.kind(),
            blob_version = base.version,
            new_version = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        async {
            let t_source = Instant::now();
            let loaded = source::load(
                self.source.as_ref(),
                self.opts.source_timeout,
                self.opts.max_size,
            )
            .instrument(tracing::info_span!("cache_source", cache = %self.opts.name))
            .await;
            self.observe_phase("source", t_source);
            self.record_load(loaded.is_ok());
            let t_publish = Instant::now();
            let mut next = base.clone();
            next.claim = None;
            next.epoch = base.epoch.wrapping_add(1);
            next.writer = self.opts.owner.clone();
            let bytes = match loaded {
                Err(e) => {
                    span.record("outcome", "source_error");
                    self.record_error(&e.into());
                    next.failures = base.failures.saturating_add(1);
                    // Release the claim and tell the fleet when to retry.
                    let _ = self.publish(st, next, claim_tag).await;
                    return;
                }
                Ok(b) => b,
            };
            let sha = hex::encode(Sha256::digest(&bytes));
            let data = DataRef {
                sha256: sha.clone(),
                size: bytes.len() as u64,
            };
            // Fencing by the claimer's own clock: past its claim's deadline another agent may
            // hold the claim; uploading, reserving a version, collecting garbage or publishing
            // then could delete or overwrite what that agent published.
            let expired = |what: &str| {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    span.record("outcome", "claim_expired");
                    self.record_error(&CacheError::Conflict(format!(
                        "the refresh claim expired before {what}; leaving the manifest to whoever holds it now"
                    )));
                }
                left
            };
            let upload = repair || base.data.as_ref().is_none_or(|d| d.sha256 != sha);
            if upload {
                let left = expired("the data upload");
                if left.is_zero() {
                    return;
                }
                let key = self.data_key(&sha);
                if let Err(e) = self
                    .bounded(
                        self.data_timeout().min(left),
                        self.blob.put(&key, bytes.clone(), PutCondition::Overwrite),
                    )
                    .await
                {
                    span.record("outcome", "blob_error");
                    self.set_blob_up(false);
                    self.record_error(&e.into());
                    // The claim stays; it expires by the others' clocks.
                    return;
                }
            }
            let version = match self
                .choose_version(&base, repair, &data, &expired)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    span.record("outcome", e.kind());
                    if e.kind() == "blob" {
                        self.set_blob_up(false);
                    }
                    self.record_error(&e);
                    return;
                }
            };
            span.record("new_version", version);
            if expired("publishing").is_zero() {
                return;
            }
            next.version = version;
            next.data = Some(data);
            next.failures = 0;
            // Old data is collected only after the new version is published, and only while
            // this agent still holds the claim: the manifest is published with the claim kept,
            // the garbage collected within the claim's deadline, then the claim released.
            let collect = upload && base.data.is_some();
            if collect {
                next.claim = claimed.claim.clone();
            }
            let Some(tag) = self.publish(st, next.clone(), claim_tag).await else {
                span.record("outcome", "conflict");
                self.observe_phase("publish", t_publish);
                return;
            };
            span.record("outcome", "published");
            self.install(Arc::new(Snapshot {
                version,
                sha256: sha.clone(),
                bytes,
            }))
            .await;
            self.mark_validated();
            if collect {
                let previous = base.data.as_ref().map(|d| d.sha256.as_str());
                self.collect_garbage(&sha, previous, version, &expired).await;
                next.claim = None;
                // A conflict here means the claim expired meanwhile: the next holder's
                // manifest stands, and ours (the same version) was already published.
                self.publish(st, next, tag).await;
            }
            self.observe_phase("publish", t_publish);
        }
        .instrument(span.clone())
        .await
    }

    /// The version to publish `data` as: the highest version anyone published when it holds
    /// the same bytes, else one above it, reserved by creating its write-once marker. The
    /// highest is taken from the manifest and this agent's own version, and from the markers
    /// when the manifest cannot be trusted to be the highest (`repair`: wiped, garbled, gone
    /// backwards) or when the reservation finds the number taken.
    async fn choose_version(
        &self,
        base: &Manifest,
        repair: bool,
        data: &DataRef,
        expired: &impl Fn(&str) -> Duration,
    ) -> Result<u64, CacheError> {
        let served = self.get();
        let mut top: Option<(u64, String)> = None;
        let mut consider = |v: u64, sha: &str| {
            if v > 0 && top.as_ref().is_none_or(|(t, _)| v > *t) {
                top = Some((v, sha.to_string()));
            }
        };
        if let Some(d) = &base.data {
            consider(base.version, &d.sha256);
        }
        if let Some(s) = &served {
            consider(s.version, &s.sha256);
        }
        if repair && let Some((v, d)) = self.highest_marker().await? {
            consider(v, &d.sha256);
        }
        // A taken number sends us to the markers, whose highest is final unless another
        // claimer reserved above it in between (its claim then expired, and so did ours).
        for _ in 0..3 {
            let (top_v, top_sha) = top.clone().unwrap_or((0, String::new()));
            if top_v > 0 && top_sha == data.sha256 {
                return Ok(top_v);
            }
            let v = top_v
                .checked_add(1)
                .ok_or(CacheError::VersionExhausted(top_v))?;
            let left = expired("reserving a version");
            if left.is_zero() {
                return Err(CacheError::Conflict(format!(
                    "claim expired before version {v} was reserved"
                )));
            }
            let key = manifest::version_key(&self.opts.name, v);
            match self
                .bounded(
                    self.manifest_timeout().min(left),
                    self.blob.put(&key, data.to_bytes(), PutCondition::Create),
                )
                .await?
            {
                PutOutcome::Written(_) => return Ok(v),
                PutOutcome::Conflict => {
                    if self
                        .marker(v)
                        .await?
                        .is_some_and(|d| d.sha256 == data.sha256)
                    {
                        return Ok(v);
                    }
                }
            }
            // Taken with other bytes (by a claimer that lost its claim, or before a wipe): go
            // above the highest marker.
            top = match self.highest_marker().await? {
                Some((hv, hd)) if hv >= v => Some((hv, hd.sha256)),
                _ => Some((v, String::new())),
            };
        }
        Err(CacheError::Conflict(
            "could not reserve a version number: other claimers keep taking them".into(),
        ))
    }

    /// The marker of version `v`, if it exists and parses.
    async fn marker(&self, v: u64) -> Result<Option<DataRef>, CacheError> {
        let key = manifest::version_key(&self.opts.name, v);
        match self
            .bounded(
                self.manifest_timeout(),
                self.blob.get(&key, None, manifest::MAX_MANIFEST_BYTES),
            )
            .await?
        {
            Fetched::Found { bytes, .. } => Ok(DataRef::parse_marker(&bytes).ok()),
            _ => Ok(None),
        }
    }

    /// The highest version that has a marker, with its data.
    async fn highest_marker(&self) -> Result<Option<(u64, DataRef)>, CacheError> {
        let mut versions = self.marker_versions().await?;
        versions.sort_unstable();
        // A garbled top marker still took its number: publish above it.
        match versions.last() {
            None => Ok(None),
            Some(&v) => Ok(Some((
                v,
                self.marker(v).await?.unwrap_or(DataRef {
                    sha256: String::new(),
                    size: 0,
                }),
            ))),
        }
    }

    async fn marker_versions(&self) -> Result<Vec<u64>, CacheError> {
        let prefix = format!("{}/versions", self.opts.name);
        let keys = self
            .bounded(self.manifest_timeout(), self.blob.list(&prefix))
            .await?;
        Ok(keys
            .iter()
            .filter_map(|k| manifest::marker_version(k))
            .collect())
    }

    /// Compare-and-swap the manifest from the claim to `next`. Its new tag when it was written.
    async fn publish(&self, st: &mut LoopState, next: Manifest, claim_tag: Tag) -> Option<Tag> {
        let key = self.manifest_key();
        match self
            .bounded(
                self.manifest_timeout(),
                self.blob
                    .put(&key, next.to_bytes(), PutCondition::Match(claim_tag)),
            )
            .await
        {
            Ok(PutOutcome::Written(tag)) => {
                self.remember(&tag, &next);
                st.epoch_seen = Some((next.epoch, Instant::now()));
                st.claim_seen = None;
                st.view = View::Valid(tag.clone(), next);
                Some(tag)
            }
            Ok(PutOutcome::Conflict) => {
                st.view = View::Unknown;
                self.record_error(&CacheError::Conflict(format!(
                    "version {} not published: this agent's claim expired and another agent wrote the manifest",
                    next.version
                )));
                None
            }
            Err(e) => {
                st.view = View::Unknown;
                self.set_blob_up(false);
                self.record_error(&e.into());
                None
            }
        }
    }

    /// Delete data objects other than the new and the previous one, and version markers but
    /// the newest [`KEEP_MARKERS`] (the highest is what a repair publishes above). Runs after
    /// the publish, while this agent still holds the claim and only within its deadline; a
    /// reader still fetching an older object retries.
    async fn collect_garbage(
        &self,
        keep: &str,
        previous: Option<&str>,
        version: u64,
        expired: &impl Fn(&str) -> Duration,
    ) {
        let mut doomed: Vec<String> = match self.blob.list(&self.data_prefix()).await {
            Ok(keys) => keys
                .into_iter()
                .filter(|key| {
                    let sha = key.rsplit('/').next().unwrap_or_default();
                    sha != keep && Some(sha) != previous
                })
                .collect(),
            Err(e) => {
                tracing::debug!(cache = %self.opts.name, "garbage collection skipped: {e}");
                return;
            }
        };
        if let Ok(mut markers) = self.marker_versions().await {
            markers.sort_unstable();
            let cut = markers.len().saturating_sub(KEEP_MARKERS);
            doomed.extend(
                markers[..cut]
                    .iter()
                    .filter(|&&v| v < version)
                    .map(|&v| manifest::version_key(&self.opts.name, v)),
            );
        }
        for key in doomed {
            let left = expired("garbage collection");
            if left.is_zero() {
                return;
            }
            match self.bounded(left, self.blob.delete(&key)).await {
                Ok(()) => tracing::debug!(cache = %self.opts.name, key, "deleted old object"),
                Err(e) => {
                    tracing::debug!(cache = %self.opts.name, key, "cannot delete old object: {e}")
                }
            }
        }
    }
}

/// Version markers kept by garbage collection.
const KEEP_MARKERS: usize = 8;

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, CacheError> {
    Manifest::parse(bytes).map_err(|e| match e {
        ManifestError::UnknownFormat(_) => CacheError::Format(e.to_string()),
        ManifestError::Garbage(_) => CacheError::Corrupt(e.to_string()),
    })
}

fn outcome_of<T>(r: &Result<T, CacheError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}
