//! What every component of the daemon is handed: the meter, the series store, the findings
//! log, the readiness gates, the shutdown token and a few facts about this host.

use crate::series::SeriesStore;
use opentelemetry::metrics::Meter;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Context {
    pub host: String,
    pub data_dir: PathBuf,
    pub meter: Meter,
    pub series: Arc<SeriesStore>,
    pub findings: Arc<Findings>,
    pub readiness: Arc<Readiness>,
    /// Cancelled when the daemon stops, or when a config reload replaces this component.
    pub shutdown: CancellationToken,
    /// Cancelled when the agent itself stops (not on a reload), just before the components'
    /// `shutdown`: what must happen once at the very end (alerts resolving) looks here.
    pub stopping: CancellationToken,
    /// Beaten by the host probe loop each cycle; the systemd watchdog pings only while it is
    /// fresh.
    pub heartbeat: Arc<Heartbeat>,
}

impl Context {
    /// A context for unit tests and benches: a meter that exports nowhere.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        use opentelemetry::metrics::MeterProvider;
        Self {
            host: "test-host".into(),
            data_dir,
            meter: provider.meter("test"),
            series: SeriesStore::new(64),
            findings: Arc::new(Findings::new(256)),
            readiness: Arc::new(Readiness::default()),
            shutdown: CancellationToken::new(),
            stopping: CancellationToken::new(),
            heartbeat: Arc::new(Heartbeat::default()),
        }
    }

    /// The same context with a child shutdown token, for a component a reload may replace.
    pub fn child(&self) -> Self {
        Self {
            shutdown: self.shutdown.child_token(),
            ..self.clone()
        }
    }
}

/// A detector's or component's observation, as served at `/api/v1/findings` and read by the
/// alert rules.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Sequence number, increasing over the agent's life.
    pub seq: u64,
    /// What found it: `anomaly`, `timeout`, `cache`, `tracker`, ...
    pub source: String,
    /// What it is: e.g. `missing_timeout`, `anomaly_event`, `corrupt_blob`.
    pub kind: String,
    /// The subject, as alert labels: `service`, `cache`, `metric`, ...
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    #[serde(default)]
    pub detail: serde_json::Value,
    /// Wall-clock time, RFC 3339, for people.
    pub at: String,
    /// 0..1 where meaningful.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Finding {
    pub fn new(source: &str, kind: &str, summary: impl Into<String>) -> Self {
        Self {
            seq: 0,
            source: source.into(),
            kind: kind.into(),
            labels: BTreeMap::new(),
            summary: summary.into(),
            detail: serde_json::Value::Null,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            score: None,
        }
    }

    pub fn label(mut self, k: &str, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn score(mut self, score: f64) -> Self {
        self.score = Some(score);
        self
    }
}

/// The recent findings, bounded.
pub struct Findings {
    capacity: usize,
    inner: Mutex<(u64, VecDeque<Finding>)>,
}

impl Findings {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new((0, VecDeque::new())),
        }
    }

    pub fn push(&self, mut finding: Finding) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        finding.seq = g.0;
        if g.1.len() == self.capacity {
            g.1.pop_front();
        }
        g.1.push_back(finding);
        g.0
    }

    /// Findings with `seq > after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Finding> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter().filter(|f| f.seq > after).cloned().collect()
    }

    pub fn all(&self) -> Vec<Finding> {
        self.since(0)
    }
}

/// Named readiness gates; `/readyz` answers 200 once every gate is open.
#[derive(Default)]
pub struct Readiness {
    gates: Mutex<BTreeMap<String, Option<String>>>,
}

impl Readiness {
    /// Add a closed gate with the reason it is closed.
    pub fn wait_for(&self, gate: &str, reason: impl Into<String>) {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gate.into(), Some(reason.into()));
    }

    /// Close a gate only if it was never seen: what a later config generation uses for a gate
    /// the previous one already opened (a reload does not make the agent unready).
    pub fn wait_for_first(&self, gate: &str, reason: impl Into<String>) {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(gate.into())
            .or_insert_with(|| Some(reason.into()));
    }

    /// Update the reason of a gate that is still closed (no-op once open or unknown).
    pub fn still_waiting(&self, gate: &str, reason: impl Into<String>) {
        let mut g = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot @ Some(_)) = g.get_mut(gate) {
            *slot = Some(reason.into());
        }
    }

    pub fn open(&self, gate: &str) {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gate.into(), None);
    }

    pub fn forget(&self, gate: &str) {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(gate);
    }

    /// The gates still closed, with their reasons.
    pub fn blocking(&self) -> Vec<(String, String)> {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|r| (k.clone(), r.clone())))
            .collect()
    }
}

/// When a loop last made progress, readable from any thread without a lock.
#[derive(Debug)]
pub struct Heartbeat {
    origin: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            origin: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        self.last_ms.store(
            self.origin.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Time since the last beat (since creation before the first).
    pub fn age(&self) -> std::time::Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        std::time::Duration::from_millis(now.saturating_sub(last))
    }
}
