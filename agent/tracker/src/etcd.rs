//! The etcd resolver: the primary is the value of the leader key of an etcd v3 election, and
//! the leader key's create revision is its fencing token (it only grows with newer leaders).
//!
//! Why hand-written over etcd's JSON gateway rather than the `etcd-client` crate: that crate
//! generates its gRPC code at build time and needs `protoc`, which a fresh machine does not
//! have (`cargo run` must work there). etcd 3.4+ serves the same v3 API as JSON on its client
//! URL (`/v3/election/leader`, the server-streaming `/v3/election/observe`, ...), and we need
//! only two calls of it, so a few dozen lines over the shared `reqwest` client do the job.
//!
//! [`EtcdGateway::leader`] answers one discovery; [`EtcdGateway::run`] *observes* the
//! election, so a leader change reaches the tracker before a request to the old leader fails.

use super::Primary;
use super::resolver::{DiscoveryError, short_error};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An election reached through the JSON gateway of any of several etcd members.
#[derive(Clone)]
pub struct EtcdGateway {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    /// The election name, base64 as the gateway wants bytes.
    name_b64: String,
    client: reqwest::Client,
    timeout: Duration,
    /// The member that answered last; asked first next time.
    preferred: AtomicUsize,
}

/// `mvccpb.KeyValue` in the gateway's JSON (bytes as base64, int64 as strings).
#[derive(Deserialize, Debug, Default)]
pub struct KeyValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, deserialize_with = "int64")]
    pub create_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    pub lease: i64,
}

#[derive(Deserialize, Debug)]
struct LeaderResponse {
    #[serde(default)]
    kv: Option<KeyValue>,
}

#[derive(Deserialize, Debug)]
struct ObserveLine {
    #[serde(default)]
    result: Option<LeaderResponse>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The gateway writes int64 as JSON strings; accept numbers too.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(i64),
    }
    match Either::deserialize(d)? {
        Either::N(n) => Ok(n),
        Either::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

impl KeyValue {
    /// The leader's value as a primary, fenced by the key's create revision.
    pub fn primary(&self) -> Result<Primary, DiscoveryError> {
        let raw = B64
            .decode(&self.value)
            .map_err(|e| DiscoveryError::BadAnswer(format!("leader value is not base64: {e}")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| DiscoveryError::BadAnswer("leader value is not UTF-8".into()))?;
        Primary::new(text.trim(), Some(self.create_revision))
    }
}

impl EtcdGateway {
    pub fn new(
        endpoints: Vec<String>,
        election: &str,
        client: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoints: endpoints
                    .into_iter()
                    .map(|e| e.trim_end_matches('/').to_string())
                    .collect(),
                name_b64: B64.encode(election.as_bytes()),
                client,
                timeout,
                preferred: AtomicUsize::new(0),
            }),
        }
    }

    /// Members in the order to try them: the last one that answered first.
    fn order(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.inner.endpoints.len();
        let first = self.inner.preferred.load(Ordering::Relaxed);
        (0..n).map(move |i| {
            let k = (first + i) % n;
            (k, self.inner.endpoints[k].as_str())
        })
    }

    /// The current leader (`POST /v3/election/leader`), asking members in turn.
    pub async fn leader(&self) -> Result<Primary, DiscoveryError> {
        let body = serde_json::json!({ "name": self.inner.name_b64 });
        let mut errors = Vec::new();
        for (k, endpoint) in self.order() {
            let sent = self
                .inner
                .client
                .post(format!("{endpoint}/v3/election/leader"))
                .json(&body)
                .timeout(self.inner.timeout)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{endpoint}: {}", short_error(&e)));
                    continue;
                }
            };
            let status = resp.status();
            let text = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    errors.push(format!("{endpoint}: {}", short_error(&e)));
                    continue;
                }
            };
            if !status.is_success() {
                // "election: no leader" is an answer, not a member failure.
                if String::from_utf8_lossy(&text).contains("no leader") {
                    self.inner.preferred.store(k, Ordering::Relaxed);
                    return Err(DiscoveryError::NoLeader);
                }
                errors.push(format!("{endpoint}: answered {status}"));
                continue;
            }
            self.inner.preferred.store(k, Ordering::Relaxed);
            let parsed: LeaderResponse = serde_json::from_slice(&text)
                .map_err(|e| DiscoveryError::BadAnswer(format!("leader answer: {e}")))?;
            return match parsed.kv {
                Some(kv) => kv.primary(),
                None => Err(DiscoveryError::NoLeader),
            };
        }
        Err(DiscoveryError::NoneAnswered(errors.join("; ")))
    }

    /// Observe the election until `token` is cancelled, calling `on_leader` with every leader
    /// etcd reports (the current one first). Reconnects to the next member with backoff.
    pub async fn run(self, token: CancellationToken, on_leader: impl Fn(Primary)) {
        let mut failures: u32 = 0;
        loop {
            for (k, endpoint) in self
                .order()
                .map(|(k, e)| (k, e.to_string()))
                .collect::<Vec<_>>()
            {
                let observed = tokio::select! {
                    _ = token.cancelled() => return,
                    r = self.observe_once(&endpoint, &on_leader) => r,
                };
                match observed {
                    Ok(seen) => {
                        if seen > 0 {
                            failures = 0;
                            self.inner.preferred.store(k, Ordering::Relaxed);
                        }
                        tracing::debug!(endpoint = %endpoint, "etcd observe stream ended");
                    }
                    Err(e) => {
                        tracing::debug!(endpoint = %endpoint, error = %e, "etcd observe failed")
                    }
                }
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(50 * 2u64.pow(failures.min(6)))
                    .min(Duration::from_secs(2));
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// One observe stream; returns how many leaders it reported.
    async fn observe_once(
        &self,
        endpoint: &str,
        on_leader: &impl Fn(Primary),
    ) -> Result<u64, String> {
        let resp = self
            .inner
            .client
            .post(format!("{endpoint}/v3/election/observe"))
            .json(&serde_json::json!({ "name": self.inner.name_b64 }))
            .send()
            .await
            .map_err(|e| short_error(&e))?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut seen = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| short_error(&e))?;
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let parsed: ObserveLine =
                    serde_json::from_slice(line).map_err(|e| format!("bad observe line: {e}"))?;
                if let Some(err) = parsed.error {
                    return Err(format!("observe error: {err}"));
                }
                if let Some(kv) = parsed.result.and_then(|r| r.kv) {
                    match kv.primary() {
                        Ok(p) => {
                            seen += 1;
                            on_leader(p);
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring an unusable etcd leader"),
                    }
                }
            }
            if buf.len() > 1 << 20 {
                return Err("observe line longer than 1 MiB".into());
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_leader_json() {
        let text = br#"{"header":{"revision":"9"},"kv":{"key":"Y2ZnLzY5NGQ=","create_revision":"7","mod_revision":"7","version":"1","value":"aHR0cDovLzEyNy4wLjAuMTo3MDAx","lease":"7587"}}"#;
        let r: LeaderResponse = serde_json::from_slice(text).unwrap();
        let p = r.kv.unwrap().primary().unwrap();
        assert_eq!(&*p.base, "http://127.0.0.1:7001");
        assert_eq!(p.fence, Some(7));
    }

    #[test]
    fn rejects_a_leader_value_that_is_not_a_url() {
        let kv = KeyValue {
            value: B64.encode("not a url"),
            ..Default::default()
        };
        assert!(kv.primary().is_err());
    }
}
