//! Where a tracker learns who the primary is: the replica protocol of CONTRACT.md
//! (`GET {replica}/primary`) or an etcd v3 election (see [`super::etcd`]).

use super::Discovery;
use super::Primary;
use super::etcd::EtcdGateway;
use serde::Deserialize;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error("no replica named a primary: {0}")]
    NoneAnswered(String),
    #[error("the election has no leader")]
    NoLeader,
    #[error("unusable answer: {0}")]
    BadAnswer(String),
}

pub(super) enum Resolver {
    Http(HttpResolver),
    Etcd(EtcdGateway),
}

impl Resolver {
    pub(super) fn new(discovery: &Discovery, client: reqwest::Client, timeout: Duration) -> Self {
        match discovery {
            Discovery::Http(replicas) => Resolver::Http(HttpResolver {
                replicas: replicas
                    .iter()
                    .map(|u| u.trim_end_matches('/').to_string())
                    .collect(),
                client,
                timeout,
                next: AtomicUsize::new(0),
                highest_term: AtomicI64::new(i64::MIN),
            }),
            Discovery::Etcd {
                endpoints,
                election,
            } => Resolver::Etcd(EtcdGateway::new(
                endpoints.clone(),
                election,
                client,
                timeout,
            )),
        }
    }

    /// One discovery: ask until someone names a primary. `failing` is asked last.
    pub(super) async fn discover(
        &self,
        failing: Option<&Primary>,
    ) -> Result<Primary, DiscoveryError> {
        match self {
            Resolver::Http(r) => r.discover(failing).await,
            Resolver::Etcd(g) => g.leader().await,
        }
    }

    /// Whether a `421`'s `X-Primary` hint naming `base` may be followed: only towards a
    /// configured replica. With an etcd election the leader key is the only authority, so
    /// hints are never taken (a replica is asked for nothing the election does not say).
    pub(super) fn hint_allowed(&self, base: &str) -> bool {
        match self {
            Resolver::Http(r) => r.is_replica(base),
            Resolver::Etcd(_) => false,
        }
    }

    /// A watcher that learns of a new primary before a request fails, when the source has one.
    pub(super) fn observer(&self) -> Option<EtcdGateway> {
        match self {
            Resolver::Http(_) => None,
            Resolver::Etcd(g) => Some(g.clone()),
        }
    }
}

/// The replica protocol: `GET {replica}/primary` → `{"primary": "<base url>", "term": N}`.
pub(super) struct HttpResolver {
    replicas: Vec<String>,
    client: reqwest::Client,
    timeout: Duration,
    /// Spreads discoveries over the replicas.
    next: AtomicUsize,
    /// Answers naming an older term than one already seen come from a lagging replica.
    highest_term: AtomicI64,
}

#[derive(Deserialize)]
struct PrimaryAnswer {
    primary: String,
    #[serde(default)]
    term: Option<i64>,
}

/// A base URL in one spelling: parsed, without a trailing slash.
fn normalise(base: &str) -> String {
    url::Url::parse(base)
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|_| base.trim_end_matches('/').to_string())
}

impl HttpResolver {
    fn is_replica(&self, base: &str) -> bool {
        let base = normalise(base);
        self.replicas.contains(&base)
    }

    async fn discover(&self, failing: Option<&Primary>) -> Result<Primary, DiscoveryError> {
        let n = self.replicas.len();
        if n == 0 {
            return Err(DiscoveryError::NoneAnswered(
                "no replicas configured".into(),
            ));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut order: Vec<&str> = (0..n)
            .map(|i| self.replicas[(start + i) % n].as_str())
            .collect();
        // The replica that just failed us is the least likely to answer: ask it last.
        if let Some(f) = failing {
            order.sort_by_key(|r| *r == &*f.base);
        }
        let mut errors = Vec::new();
        for replica in order {
            match self.ask(replica).await {
                Ok(answer) => {
                    let term = answer.term;
                    if let Some(t) = term
                        && t < self.highest_term.load(Ordering::Relaxed)
                    {
                        errors.push(format!("{replica}: stale term {t}"));
                        continue;
                    }
                    match Primary::new(&answer.primary, term) {
                        // The proxy only ever sends to a configured replica: an answer naming
                        // any other host (a compromised or confused replica) is not followed.
                        Ok(p) if !self.is_replica(&p.base) => errors.push(format!(
                            "{replica}: named {:?}, which is not a configured replica",
                            &*p.base
                        )),
                        Ok(p) => {
                            if let Some(t) = term {
                                self.highest_term.fetch_max(t, Ordering::Relaxed);
                            }
                            return Ok(p);
                        }
                        Err(e) => errors.push(format!("{replica}: {e}")),
                    }
                }
                Err(e) => errors.push(format!("{replica}: {e}")),
            }
        }
        Err(DiscoveryError::NoneAnswered(errors.join("; ")))
    }

    async fn ask(&self, replica: &str) -> Result<PrimaryAnswer, String> {
        let resp = self
            .client
            .get(format!("{replica}/primary"))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| short_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let body = resp.bytes().await.map_err(|e| short_error(&e))?;
        serde_json::from_slice(&body).map_err(|e| format!("bad /primary answer: {e}"))
    }
}

pub(super) fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        lookout_common::error_chain(e)
    }
}
