//! Delivery of spooled notifications to Alertmanager (`POST /api/v2/alerts`, API v2): one
//! task per configured Alertmanager, each sending the notices it has not taken yet, oldest
//! first, in batches; retrying with backoff while it does not answer, so that alerts wait on
//! disk and arrive in order when it returns.
//!
//! A firing notice gets its `endsAt` when it is sent: send time + 4 × resend interval, as
//! Prometheus does, so Alertmanager resolves the alert by itself if this agent dies and stops
//! re-sending. A 4xx answer (other than 429) means Alertmanager will never take that batch:
//! it is logged, counted as `rejected` and skipped rather than blocking the queue forever.

use super::engine::Notice;
use super::spool::Spool;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Notices per POST.
const BATCH: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Small, so that alerts flow within seconds of an Alertmanager's return.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Delivery {
    pub target: String,
    pub spool: Arc<Mutex<Spool>>,
    pub client: reqwest::Client,
    pub resend: Duration,
    pub notifications: Counter<u64>,
    /// Bumped whenever something is pushed to the spool.
    pub wake: watch::Receiver<u64>,
    /// Called after the spool changed, to update the depth gauge.
    pub on_change: Arc<dyn Fn() + Send + Sync>,
}

/// The URL alerts are posted to on an Alertmanager whose base URL is `base`.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// Firing notices get their `endsAt`; repeats of one alert within a batch collapse to the
/// latest (Alertmanager would only keep the latest anyway).
fn prepare(batch: Vec<Notice>, resend: Duration) -> Vec<Notice> {
    let ends = humantime::format_rfc3339_millis(SystemTime::now() + 4 * resend).to_string();
    let mut out: Vec<Notice> = Vec::with_capacity(batch.len());
    for mut n in batch {
        if n.ends_at.is_none() {
            n.ends_at = Some(ends.clone());
        }
        let fp = n.fingerprint();
        out.retain(|o| o.fingerprint() != fp);
        out.push(n);
    }
    out
}

enum Outcome {
    Sent,
    Rejected(String),
    Failed(String),
}

impl Delivery {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let url = alerts_url(&self.target);
        let shown = lookout_common::redact_url(&self.target);
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        loop {
            let next = self
                .spool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pending(&self.target, BATCH);
            let Some((last_seq, batch)) = next else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    woken = self.wake.changed() => {
                        if woken.is_err() {
                            // The engine is gone (its generation is stopping): poll slowly
                            // rather than spin on a closed channel until we are cancelled.
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            let count = batch.len() as u64;
            let body = prepare(batch, self.resend);
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                o = self.post(&url, &body) => o,
            };
            match outcome {
                Outcome::Sent | Outcome::Rejected(_) => {
                    let label = if let Outcome::Rejected(why) = &outcome {
                        tracing::error!(alertmanager = %shown, "Alertmanager rejected {count} alert notification(s), skipping them: {why}");
                        "rejected"
                    } else {
                        "sent"
                    };
                    self.notifications
                        .add(count, &[KeyValue::new("outcome", label)]);
                    if failing {
                        tracing::info!(alertmanager = %shown, "Alertmanager answers again; delivering spooled alerts");
                        failing = false;
                    }
                    backoff = BACKOFF_MIN;
                    let acked = self
                        .spool
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .ack(&self.target, last_seq);
                    if let Err(e) = acked {
                        tracing::error!("{e}");
                    }
                    (self.on_change)();
                }
                Outcome::Failed(why) => {
                    self.notifications
                        .add(count, &[KeyValue::new("outcome", "failed")]);
                    if !failing {
                        tracing::warn!(alertmanager = %shown, "cannot deliver alerts, keeping them in the spool and retrying: {why}");
                        failing = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn post(&self, url: &str, body: &[Notice]) -> Outcome {
        let sent = self
            .client
            .post(url)
            .timeout(REQUEST_TIMEOUT)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                Outcome::Rejected(format!(
                    "{status}: {}",
                    text.chars().take(300).collect::<String>()
                ))
            }
            Ok(r) => Outcome::Failed(format!("HTTP {}", r.status())),
            Err(e) => Outcome::Failed(lookout_common::error_chain(&e.without_url())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_sets_ends_and_keeps_latest_per_alert() {
        let mk = |name: &str, ends: Option<&str>| Notice {
            labels: [("alertname".to_string(), name.to_string())].into(),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: ends.map(str::to_string),
            generator_url: String::new(),
        };
        let out = prepare(
            vec![
                mk("X", None),
                mk("Y", None),
                mk("X", Some("2026-01-01T00:01:00Z")),
            ],
            Duration::from_secs(60),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels["alertname"], "Y");
        assert!(out[0].ends_at.is_some());
        assert_eq!(out[1].ends_at.as_deref(), Some("2026-01-01T00:01:00Z"));
        assert_eq!(alerts_url("http://a:9093/"), "http://a:9093/api/v2/alerts");
    }

    /// An Alertmanager stand-in answering the statuses of `script` in turn (then 200), and
    /// recording the alert names of each POST.
    async fn fake_alertmanager(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
        use axum::routing::post;
        let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let (s2, seen2) = (script.clone(), seen.clone());
        let app = axum::Router::new().route(
            "/api/v2/alerts",
            post(move |axum::Json(body): axum::Json<Vec<Notice>>| {
                let (script, seen) = (s2.clone(), seen2.clone());
                async move {
                    seen.lock()
                        .unwrap()
                        .push(body.iter().map(|n| n.labels["alertname"].clone()).collect());
                    let code = script.lock().unwrap().next().unwrap_or(200);
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn notice(name: &str) -> Notice {
        Notice {
            labels: [("alertname".to_string(), name.to_string())].into(),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            generator_url: String::new(),
        }
    }

    #[tokio::test]
    async fn retries_on_5xx_in_order_and_skips_what_alertmanager_rejects() {
        // 503 twice (retried, nothing lost), then 400 (rejected: skipped), then 200.
        let (url, seen) = fake_alertmanager(vec![503, 503, 400]).await;
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Mutex::new(
            Spool::open(dir.path(), 100, std::slice::from_ref(&url)).unwrap(),
        ));
        spool.lock().unwrap().push(notice("A")).unwrap();
        spool.lock().unwrap().push(notice("B")).unwrap();
        let (wake_tx, wake_rx) = watch::channel(0u64);
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        use opentelemetry::metrics::MeterProvider;
        let delivery = Delivery {
            target: url,
            spool: spool.clone(),
            client: reqwest::Client::new(),
            resend: Duration::from_secs(60),
            notifications: meter.meter("t").u64_counter("n").build(),
            wake: wake_rx,
            on_change: Arc::new(|| {}),
        };
        let token = CancellationToken::new();
        let task = tokio::spawn(delivery.run(token.clone()));
        let wait_depth_zero = async {
            while spool.lock().unwrap().depth() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait_depth_zero)
            .await
            .unwrap();
        spool.lock().unwrap().push(notice("C")).unwrap();
        wake_tx.send(1).unwrap();
        let wait_c = async {
            while seen.lock().unwrap().len() < 4 || spool.lock().unwrap().depth() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait_c)
            .await
            .unwrap();
        token.cancel();
        task.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [vec!["A", "B"], vec!["A", "B"], vec!["A", "B"], vec!["C"]]
        );
    }
}
