//! A [`BlobStore`] wrapper for tests and benchmarks: counts requests and bytes in each
//! direction, injects errors and latency on demand, and notes when each manifest version was
//! first written (the publication time the consistency checker measures freshness from).
//! Not used by the daemon.

use super::blob::{BlobFuture, BlobStore, Fetched, PutCondition, PutOutcome, Tag};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of one [`ChaosBlob`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BlobStats {
    pub gets: u64,
    pub not_modified: u64,
    pub puts: u64,
    pub conflicts: u64,
    pub deletes: u64,
    pub lists: u64,
    pub errors_injected: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl BlobStats {
    pub fn requests(&self) -> u64 {
        self.gets + self.puts + self.deletes + self.lists
    }
}

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    not_modified: AtomicU64,
    puts: AtomicU64,
    conflicts: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    errors_injected: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

pub struct ChaosBlob {
    inner: Arc<dyn BlobStore>,
    /// Probability of an injected error, in parts per million.
    error_ppm: AtomicU64,
    /// Injected latency: uniform in [0, max] microseconds.
    latency_max_us: AtomicU64,
    counters: Counters,
    /// Manifest version → when a manifest naming it was first written successfully.
    published: Mutex<BTreeMap<u64, tokio::time::Instant>>,
}

const O: Ordering = Ordering::Relaxed;

impl ChaosBlob {
    pub fn new(inner: Arc<dyn BlobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            error_ppm: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
            counters: Counters::default(),
            published: Mutex::new(BTreeMap::new()),
        })
    }

    /// Fail this fraction (0..1) of requests from now on.
    pub fn set_error_rate(&self, rate: f64) {
        self.error_ppm.store((rate.clamp(0.0, 1.0) * 1e6) as u64, O);
    }

    /// Delay each request by up to `max`.
    pub fn set_latency(&self, max: Duration) {
        self.latency_max_us.store(max.as_micros() as u64, O);
    }

    pub fn stats(&self) -> BlobStats {
        let c = &self.counters;
        BlobStats {
            gets: c.gets.load(O),
            not_modified: c.not_modified.load(O),
            puts: c.puts.load(O),
            conflicts: c.conflicts.load(O),
            deletes: c.deletes.load(O),
            lists: c.lists.load(O),
            errors_injected: c.errors_injected.load(O),
            bytes_read: c.bytes_read.load(O),
            bytes_written: c.bytes_written.load(O),
        }
    }

    /// When each version was first published (its manifest written).
    pub fn publications(&self) -> BTreeMap<u64, tokio::time::Instant> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn chaos(&self) -> Result<(), super::blob::BlobError> {
        let lat = self.latency_max_us.load(O);
        if lat > 0 {
            let us = rand::random_range(0..=lat);
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        let ppm = self.error_ppm.load(O);
        if ppm > 0 && rand::random_range(0..1_000_000u64) < ppm {
            self.counters.errors_injected.fetch_add(1, O);
            return Err(super::blob::BlobError::Unavailable("injected fault".into()));
        }
        Ok(())
    }
}

impl BlobStore for ChaosBlob {
    fn get<'a>(
        &'a self,
        key: &'a str,
        if_none_match: Option<&'a Tag>,
        max_len: u64,
    ) -> BlobFuture<'a, Fetched> {
        Box::pin(async move {
            self.counters.gets.fetch_add(1, O);
            self.chaos().await?;
            let r = self.inner.get(key, if_none_match, max_len).await?;
            match &r {
                Fetched::NotModified => {
                    self.counters.not_modified.fetch_add(1, O);
                }
                Fetched::Found { bytes, .. } => {
                    self.counters.bytes_read.fetch_add(bytes.len() as u64, O);
                }
                Fetched::NotFound => {}
            }
            Ok(r)
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Bytes,
        cond: PutCondition,
    ) -> BlobFuture<'a, PutOutcome> {
        Box::pin(async move {
            self.counters.puts.fetch_add(1, O);
            self.chaos().await?;
            let len = bytes.len() as u64;
            let manifest = key
                .ends_with("/manifest.json")
                .then(|| super::manifest::Manifest::parse(&bytes).ok())
                .flatten();
            let r = self.inner.put(key, bytes, cond).await?;
            match &r {
                PutOutcome::Written(_) => {
                    self.counters.bytes_written.fetch_add(len, O);
                    if let Some(m) = manifest
                        && m.version > 0
                    {
                        self.published
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(m.version)
                            .or_insert_with(tokio::time::Instant::now);
                    }
                }
                PutOutcome::Conflict => {
                    self.counters.conflicts.fetch_add(1, O);
                }
            }
            Ok(r)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            self.counters.deletes.fetch_add(1, O);
            self.chaos().await?;
            self.inner.delete(key).await
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BlobFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.counters.lists.fetch_add(1, O);
            self.chaos().await?;
            self.inner.list(prefix).await
        })
    }

    fn describe(&self) -> String {
        format!("chaos({})", self.inner.describe())
    }
}
