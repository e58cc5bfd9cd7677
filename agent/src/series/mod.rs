//! The series store: the recent samples of every series the agent collects, in bounded ring
//! buffers, for the detectors and the alert rules to read.
//!
//! It also backs the agent's gauges: a probe calls [`Gauge::set`], the store keeps the sample,
//! and the OpenTelemetry observable gauge of that name reports the latest value of each label
//! set at collection time. A label set that is [`Gauge::remove`]d (a service that went away)
//! disappears from the export at once instead of lingering as a stale value.
//!
//! Memory bound: `capacity` samples × 8 bytes per series plus its key; with the default 600
//! samples that is about 5 KiB per series, 5 MiB for 1,000 series.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Labels of a series, sorted by key.
pub type Labels = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub name: String,
    pub labels: Labels,
}

impl SeriesKey {
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        let mut labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        Self {
            name: name.to_string(),
            labels,
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.labels.is_empty() {
            write!(f, "{{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    write!(f, ",")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            write!(f, "}}")?;
        }
        Ok(())
    }
}

/// One sample: seconds since the store was created (monotonic) and the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: f32,
    pub v: f32,
}

struct Series {
    ring: VecDeque<Sample>,
    latest: f64,
}

pub struct SeriesStore {
    start: Instant,
    capacity: usize,
    series: RwLock<HashMap<SeriesKey, Series>>,
    registered: Mutex<HashSet<String>>,
}

impl SeriesStore {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            capacity: capacity.max(1),
            series: RwLock::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
        })
    }

    /// Seconds on the store's monotonic clock.
    pub fn now(&self) -> f32 {
        self.start.elapsed().as_secs_f32()
    }

    pub fn record(&self, key: &SeriesKey, value: f64) {
        let sample = Sample {
            t: self.now(),
            v: value as f32,
        };
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get_mut(key) {
            if s.ring.len() == self.capacity {
                s.ring.pop_front();
            }
            s.ring.push_back(sample);
            s.latest = value;
            return;
        }
        let mut ring = VecDeque::with_capacity(self.capacity);
        ring.push_back(sample);
        map.insert(
            key.clone(),
            Series {
                ring,
                latest: value,
            },
        );
    }

    /// Record a sample at an explicit store time, for unit tests that replay a timeline
    /// (the alert rules' `for` durations and windows). Times of one series must not go back.
    #[cfg(test)]
    pub(crate) fn record_at(&self, key: &SeriesKey, t: f32, value: f64) {
        let sample = Sample { t, v: value as f32 };
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        let s = map.entry(key.clone()).or_insert_with(|| Series {
            ring: VecDeque::with_capacity(self.capacity),
            latest: value,
        });
        if s.ring.len() == self.capacity {
            s.ring.pop_front();
        }
        s.ring.push_back(sample);
        s.latest = value;
    }

    pub fn remove(&self, key: &SeriesKey) {
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Remove every series of `name` whose label `label` has value `value`.
    pub fn remove_matching(&self, name: &str, label: &str, value: &str) {
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !(k.name == name && k.label(label) == Some(value)));
    }

    pub fn latest(&self, key: &SeriesKey) -> Option<f64> {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|s| s.latest)
    }

    /// Latest value of every label set of `name`.
    pub fn latest_of(&self, name: &str) -> Vec<(SeriesKey, f64)> {
        let map = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .filter(|(k, _)| k.name == name)
            .map(|(k, s)| (k.clone(), s.latest))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn keys(&self) -> Vec<SeriesKey> {
        let mut keys: Vec<_> = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The samples of one series, oldest first.
    pub fn samples(&self, key: &SeriesKey) -> Vec<Sample> {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|s| s.ring.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Samples of one series newer than `since` (store seconds).
    pub fn samples_since(&self, key: &SeriesKey, since: f32) -> Vec<Sample> {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|s| s.ring.iter().filter(|x| x.t > since).copied().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.series.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A gauge named `name`, exported through `meter` as an observable gauge reading this
    /// store. Registering the same name twice returns a handle to the same gauge.
    pub fn gauge(
        self: &Arc<Self>,
        meter: &Meter,
        name: &'static str,
        description: &'static str,
        unit: &'static str,
    ) -> Gauge {
        if self.first_registration(name) {
            let mut builder = meter
                .f64_observable_gauge(name)
                .with_description(description);
            if !unit.is_empty() {
                builder = builder.with_unit(unit);
            }
            builder
                .with_callback(observe_latest(Arc::downgrade(self), name))
                .build();
        }
        Gauge {
            name,
            store: self.clone(),
        }
    }
}

/// The callback of an observable instrument that exports the latest value of every series
/// named `name`. It holds the store weakly: a dropped store exports nothing.
fn observe_latest(
    store: std::sync::Weak<SeriesStore>,
    name: &'static str,
) -> impl Fn(&dyn opentelemetry::metrics::AsyncInstrument<f64>) + Send + Sync + 'static {
    move |observer| {
        let Some(store) = store.upgrade() else { return };
        for (key, value) in store.latest_of(name) {
            let attrs: Vec<KeyValue> = key
                .labels
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect();
            observer.observe(value, &attrs);
        }
    }
}

impl SeriesStore {
    /// Whether `name` is registered here for the first time (an instrument is built once).
    fn first_registration(&self, name: &str) -> bool {
        self.registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string())
    }

    /// A counter named `name` (its Prometheus name, ending in `_total`) whose running total a
    /// probe reads from the kernel and [`Gauge::set`]s, exported as an observable counter
    /// (named without `_total`, which the Prometheus exporter adds back). The store keeps the
    /// totals, so that rules and charts can take their increase.
    pub fn counter(
        self: &Arc<Self>,
        meter: &Meter,
        name: &'static str,
        description: &'static str,
        unit: &'static str,
    ) -> Gauge {
        if self.first_registration(name) {
            let mut builder = meter
                .f64_observable_counter(name.strip_suffix("_total").unwrap_or(name))
                .with_description(description);
            if !unit.is_empty() {
                builder = builder.with_unit(unit);
            }
            builder
                .with_callback(observe_latest(Arc::downgrade(self), name))
                .build();
        }
        Gauge {
            name,
            store: self.clone(),
        }
    }
}

/// A handle to one gauge of the store; see [`SeriesStore::gauge`].
#[derive(Clone)]
pub struct Gauge {
    name: &'static str,
    store: Arc<SeriesStore>,
}

impl Gauge {
    pub fn set(&self, labels: &[(&str, &str)], value: f64) {
        self.store.record(&SeriesKey::new(self.name, labels), value);
    }

    pub fn remove(&self, labels: &[(&str, &str)]) {
        self.store.remove(&SeriesKey::new(self.name, labels));
    }

    /// Drop every label set of this gauge whose `label` equals `value`.
    pub fn remove_where(&self, label: &str, value: &str) {
        self.store.remove_matching(self.name, label, value);
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_ordered() {
        let store = SeriesStore::new(3);
        let key = SeriesKey::new("x", &[("b", "2"), ("a", "1")]);
        for i in 0..5 {
            store.record(&key, i as f64);
        }
        let s = store.samples(&key);
        assert_eq!(
            s.iter().map(|x| x.v).collect::<Vec<_>>(),
            vec![2.0, 3.0, 4.0]
        );
        assert_eq!(store.latest(&key), Some(4.0));
        assert_eq!(key.labels[0].0, "a");
    }

    #[test]
    fn remove_matching_drops_only_that_label_value() {
        let store = SeriesStore::new(4);
        store.record(&SeriesKey::new("t", &[("service", "a")]), 1.0);
        store.record(&SeriesKey::new("t", &[("service", "b")]), 2.0);
        store.remove_matching("t", "service", "a");
        assert_eq!(store.latest_of("t").len(), 1);
    }
}
