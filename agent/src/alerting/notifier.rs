//! Delivery of spooled notifications to Alertmanager (`POST /api/v2/alerts`, API v2): one
//! task per configured Alertmanager, each sending what its queue holds, oldest first, in
//! batches, and retrying with backoff while it does not take them, so that alerts wait in the
//! spool and arrive when it returns.
//!
//! What is retried and what is dropped: only a `400 Bad Request` means Alertmanager will
//! never take a notice (it is malformed). A rejected batch is split and re-sent one notice
//! at a time so that only the malformed ones are dropped, counted as `rejected`, with the
//! reason logged once per Alertmanager. Everything else — 5xx, 401/403 (credentials being
//! rotated), 404 (a proxy or path misconfigured), 429, timeouts, refused connections — is a
//! problem on the way that a person fixes: the notices wait and are retried.
//!
//! Clocks: Alertmanager judges `endsAt` by *its* clock. Each Alertmanager's offset from ours
//! is estimated from the `Date` header of its answers (a probe `GET /-/healthy` before the
//! first batch, then every answer), and every timestamp we send is shifted by it: a firing
//! alert's `endsAt` is Alertmanager's now + 4 × resend interval (as Prometheus does, so it
//! resolves by itself if this agent dies), a resolution's `endsAt` is the moment it resolved
//! on Alertmanager's clock, and `startsAt` moves with them (so `endsAt ≥ startsAt` holds and
//! the batch is not rejected). Offsets under [`SKEW_IGNORED`] are treated as zero: `Date`
//! has a one-second resolution.

use super::engine::Notice;
use super::spool::{Spool, Waiting, strip_credentials};
use lookout_common::error_chain;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Notices per POST.
const BATCH: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Small, so that alerts flow within seconds of an Alertmanager's return.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Clock offsets below this are noise of the `Date` header's resolution.
pub const SKEW_IGNORED: f64 = 2.0;
/// An offset older than this is measured again before it is used.
const OFFSET_MAX_AGE: Duration = Duration::from_secs(600);
/// Distinct rejection reasons logged per Alertmanager (the rest only counted).
const REASONS_LOGGED: usize = 8;

/// The estimated clock offset of each Alertmanager (seconds to add to our wall clock to get
/// its), shared across config generations.
#[derive(Default)]
pub struct Clocks {
    inner: Mutex<BTreeMap<String, (f64, Instant)>>,
}

impl Clocks {
    fn get(&self, target: &str) -> Option<f64> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.get(target)
            .filter(|(_, at)| at.elapsed() < OFFSET_MAX_AGE)
            .map(|(o, _)| *o)
    }

    fn set(&self, target: &str, shown: &str, offset: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = g.get(target).map(|(o, _)| *o);
        if offset != 0.0 && before.is_none_or(|b| (b - offset).abs() >= SKEW_IGNORED) {
            tracing::warn!(alertmanager = %shown, offset_seconds = offset, "Alertmanager's clock differs from ours; shifting the alert timestamps sent to it");
        }
        g.insert(target.to_string(), (offset, Instant::now()));
    }
}

/// The offset told by a response's `Date` header, for a request sent at `sent` (our wall
/// clock) that took `rtt`. `Date` truncates to the second, so its middle is the estimate.
fn offset_from(headers: &reqwest::header::HeaderMap, sent: SystemTime, rtt: Duration) -> f64 {
    let Some(date) = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return 0.0;
    };
    let theirs = secs(date) + 0.5;
    let ours = secs(sent) + rtt.as_secs_f64() / 2.0;
    let offset = theirs - ours;
    if offset.abs() < SKEW_IGNORED {
        0.0
    } else {
        offset
    }
}

fn secs(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn at(secs: f64) -> SystemTime {
    if secs >= 0.0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs_f64(-secs)
    }
}

fn rfc3339(secs: f64) -> String {
    humantime::format_rfc3339_millis(at(secs)).to_string()
}

fn parse(text: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(text).ok().map(secs)
}

/// The URL alerts are posted to on an Alertmanager whose base URL is `base`.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// The notices as sent to an Alertmanager whose clock is `offset` seconds ahead of ours, at
/// our wall time `now`: timestamps on its clock, a firing notice's `endsAt` 4 resend
/// intervals ahead of its now.
pub fn prepare(batch: &[Waiting], offset: f64, now: SystemTime, resend: Duration) -> Vec<Notice> {
    let their_now = secs(now) + offset;
    batch
        .iter()
        .map(|w| {
            let mut n = w.notice.clone();
            let starts = parse(&n.starts_at).map(|s| s + offset);
            if let Some(s) = starts {
                n.starts_at = rfc3339(s);
            }
            let ends = match n.ends_at.as_deref().and_then(parse) {
                Some(e) => e + offset,
                None => their_now + 4.0 * resend.as_secs_f64(),
            };
            // Never before its start: Alertmanager rejects such an alert (400).
            n.ends_at = Some(rfc3339(starts.map_or(ends, |s| ends.max(s))));
            n
        })
        .collect()
}

enum Outcome {
    Sent,
    /// 400: Alertmanager will never take this.
    Malformed(String),
    Failed(String),
}

/// Delivery to one Alertmanager.
pub struct Sender {
    pub target: String,
    pub spool: Arc<Mutex<Spool>>,
    pub client: reqwest::Client,
    pub resend: Duration,
    pub notifications: Counter<u64>,
    pub clocks: Arc<Clocks>,
    /// Called after the spool changed, to update the depth gauges.
    pub on_change: Arc<dyn Fn() + Send + Sync>,
    reasons: BTreeSet<String>,
}

/// What one step of delivery did.
pub enum Step {
    /// Nothing waits.
    Idle,
    /// Notices were taken (or dropped as malformed).
    Progress,
    Failed(String),
}

impl Sender {
    pub fn new(
        target: String,
        spool: Arc<Mutex<Spool>>,
        client: reqwest::Client,
        resend: Duration,
        notifications: Counter<u64>,
        clocks: Arc<Clocks>,
        on_change: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            target,
            spool,
            client,
            resend,
            notifications,
            clocks,
            on_change,
            reasons: BTreeSet::new(),
        }
    }

    fn shown(&self) -> String {
        strip_credentials(&self.target)
    }

    fn count(&self, n: usize, outcome: &'static str) {
        self.notifications
            .add(n as u64, &[KeyValue::new("outcome", outcome)]);
    }

    /// Send one batch of what waits (or learn the clock first).
    pub async fn step(&mut self) -> Step {
        let batch = self
            .spool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending(&self.target, BATCH);
        if batch.is_empty() {
            return Step::Idle;
        }
        let offset = match self.clocks.get(&self.target) {
            Some(o) => o,
            None => match self.probe_clock().await {
                Ok(o) => o,
                Err(why) => {
                    self.count(batch.len(), "failed");
                    return Step::Failed(why);
                }
            },
        };
        match self.post(&batch, offset).await {
            Outcome::Sent => {
                self.count(batch.len(), "sent");
                self.ack(&batch);
                Step::Progress
            }
            Outcome::Failed(why) => {
                self.count(batch.len(), "failed");
                Step::Failed(why)
            }
            Outcome::Malformed(why) if batch.len() == 1 => {
                self.reject(&batch, &why);
                Step::Progress
            }
            Outcome::Malformed(_) => {
                // Find the malformed ones: the others must not pay for them.
                for one in batch.chunks(1) {
                    match self.post(one, offset).await {
                        Outcome::Sent => {
                            self.count(1, "sent");
                            self.ack(one);
                        }
                        Outcome::Malformed(why) => self.reject(one, &why),
                        Outcome::Failed(why) => {
                            self.count(1, "failed");
                            return Step::Failed(why);
                        }
                    }
                }
                Step::Progress
            }
        }
    }

    fn ack(&self, taken: &[Waiting]) {
        self.spool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ack(&self.target, taken);
        (self.on_change)();
    }

    fn reject(&mut self, taken: &[Waiting], why: &str) {
        self.count(taken.len(), "rejected");
        if self.reasons.len() < REASONS_LOGGED && self.reasons.insert(why.to_string()) {
            let alerts: Vec<&str> = taken
                .iter()
                .filter_map(|w| w.notice.labels.get("alertname").map(String::as_str))
                .collect();
            tracing::error!(alertmanager = %self.shown(), ?alerts, "Alertmanager rejects alert notifications as malformed; dropping them (this reason is logged once): {why}");
        }
        self.ack(taken);
    }

    async fn probe_clock(&self) -> Result<f64, String> {
        let url = format!("{}/-/healthy", self.target.trim_end_matches('/'));
        let sent = SystemTime::now();
        let t0 = Instant::now();
        let r = self
            .client
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| error_chain(&e.without_url()))?;
        let offset = offset_from(r.headers(), sent, t0.elapsed());
        self.clocks.set(&self.target, &self.shown(), offset);
        Ok(offset)
    }

    async fn post(&self, batch: &[Waiting], offset: f64) -> Outcome {
        let sent_at = SystemTime::now();
        let body = prepare(batch, offset, sent_at, self.resend);
        let t0 = Instant::now();
        let sent = self
            .client
            .post(alerts_url(&self.target))
            .timeout(REQUEST_TIMEOUT)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) => {
                let measured = offset_from(r.headers(), sent_at, t0.elapsed());
                if r.headers().contains_key(reqwest::header::DATE) {
                    self.clocks.set(&self.target, &self.shown(), measured);
                }
                let status = r.status();
                if status.is_success() {
                    Outcome::Sent
                } else if status == reqwest::StatusCode::BAD_REQUEST {
                    let text = r.text().await.unwrap_or_default();
                    Outcome::Malformed(format!(
                        "{status}: {}",
                        text.trim().chars().take(300).collect::<String>()
                    ))
                } else {
                    Outcome::Failed(format!("HTTP {status}"))
                }
            }
            Err(e) => Outcome::Failed(error_chain(&e.without_url())),
        }
    }

    /// Deliver until nothing waits, or give up at `deadline` (the agent stopping).
    pub async fn drain(&mut self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.step()).await {
                Ok(Step::Idle) => return true,
                Ok(Step::Progress) => {}
                Ok(Step::Failed(_)) | Err(_) => return false,
            }
        }
    }

    /// The delivery loop of a config generation: wake on new notices (or every second),
    /// retry with backoff while the Alertmanager does not take them.
    pub async fn run(mut self, mut wake: watch::Receiver<u64>, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = self.step() => s,
            };
            match step {
                Step::Idle => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        woken = wake.changed() => {
                            if woken.is_err() {
                                // The engine is gone (its generation is stopping): poll slowly
                                // rather than spin on a closed channel until we are cancelled.
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Step::Progress => {
                    if failing {
                        tracing::info!(alertmanager = %self.shown(), "Alertmanager answers again; delivering spooled alerts");
                        failing = false;
                    }
                    backoff = BACKOFF_MIN;
                }
                Step::Failed(why) => {
                    if !failing {
                        tracing::warn!(alertmanager = %self.shown(), "cannot deliver alerts, keeping them in the spool and retrying: {why}");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(name: &str, starts: &str, ends: Option<&str>) -> Waiting {
        Waiting {
            fingerprint: name.into(),
            seq: 1,
            notice: Notice {
                labels: [("alertname".to_string(), name.to_string())].into(),
                annotations: Default::default(),
                starts_at: starts.into(),
                ends_at: ends.map(str::to_string),
                generator_url: String::new(),
            },
        }
    }

    #[test]
    fn timestamps_move_to_the_alertmanagers_clock() {
        let now = humantime::parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
        let batch = [
            waiting("F", "2026-01-01T00:00:00Z", None),
            waiting("R", "2026-01-01T00:00:00Z", Some("2026-01-01T00:09:00Z")),
        ];
        // Same clock: firing ends 4 resend intervals ahead, resolution as it was.
        let out = prepare(&batch, 0.0, now, Duration::from_secs(60));
        assert_eq!(out[0].ends_at.as_deref(), Some("2026-01-01T00:14:00.000Z"));
        assert_eq!(out[1].ends_at.as_deref(), Some("2026-01-01T00:09:00.000Z"));
        // Alertmanager 5 minutes behind us: everything moves back with it, so the resolution
        // is in its past (it resolves now, not in 5 minutes) and still after its start.
        let out = prepare(&batch, -300.0, now, Duration::from_secs(60));
        assert_eq!(out[0].starts_at, "2025-12-31T23:55:00.000Z");
        assert_eq!(out[0].ends_at.as_deref(), Some("2026-01-01T00:09:00.000Z"));
        assert_eq!(out[1].ends_at.as_deref(), Some("2026-01-01T00:04:00.000Z"));
        assert!(out[1].ends_at.as_deref().unwrap() > out[1].starts_at.as_str());
        assert_eq!(alerts_url("http://a:9093/"), "http://a:9093/api/v2/alerts");
    }

    #[test]
    fn the_date_header_gives_the_offset() {
        let mut h = reqwest::header::HeaderMap::new();
        let sent = humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        h.insert(
            reqwest::header::DATE,
            "Thu, 01 Jan 2026 00:01:40 GMT".parse().unwrap(),
        );
        let o = offset_from(&h, sent, Duration::from_millis(10));
        assert!((o - 100.495).abs() < 1e-6, "{o}");
        h.insert(
            reqwest::header::DATE,
            "Thu, 01 Jan 2026 00:00:01 GMT".parse().unwrap(),
        );
        assert_eq!(offset_from(&h, sent, Duration::from_millis(10)), 0.0);
        assert_eq!(offset_from(&Default::default(), sent, Duration::ZERO), 0.0);
    }

    /// An Alertmanager stand-in answering the statuses of `script` in turn (then 200) to
    /// POSTs, rejecting any alert named "Bad" with 400, and recording the alert names of
    /// each POST.
    async fn fake_alertmanager(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
        use axum::routing::{get, post};
        let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let (s2, seen2) = (script.clone(), seen.clone());
        let app = axum::Router::new()
            .route("/-/healthy", get(|| async { "OK" }))
            .route(
                "/api/v2/alerts",
                post(move |axum::Json(body): axum::Json<Vec<Notice>>| {
                    let (script, seen) = (s2.clone(), seen2.clone());
                    async move {
                        let names: Vec<String> =
                            body.iter().map(|n| n.labels["alertname"].clone()).collect();
                        let bad = names.iter().any(|n| n == "Bad");
                        seen.lock().unwrap().push(names);
                        let code = script.lock().unwrap().next().unwrap_or(200);
                        let code = if bad && code == 200 { 400 } else { code };
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
    async fn retries_what_is_not_malformed_and_drops_only_the_malformed() {
        // 503, 401, 403, 404 and 429 are retried (nothing lost), then the batch with a
        // malformed notice is split so only that one is dropped.
        let (url, seen) = fake_alertmanager(vec![503, 401, 403, 404, 429]).await;
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Mutex::new(Spool::open(
            dir.path(),
            100,
            std::slice::from_ref(&url),
        )));
        for name in ["A", "Bad", "B"] {
            spool.lock().unwrap().push(notice(name));
        }
        let (wake_tx, wake_rx) = watch::channel(0u64);
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        use opentelemetry::metrics::MeterProvider;
        lookout_common::install_tls_provider();
        let sender = Sender::new(
            url,
            spool.clone(),
            reqwest::Client::new(),
            Duration::from_secs(60),
            meter.meter("t").u64_counter("n").build(),
            Arc::default(),
            Arc::new(|| {}),
        );
        let token = CancellationToken::new();
        let task = tokio::spawn(sender.run(wake_rx, token.clone()));
        let wait_depth_zero = async {
            while spool.lock().unwrap().depth() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait_depth_zero)
            .await
            .unwrap();
        spool.lock().unwrap().push(notice("C"));
        wake_tx.send(1).unwrap();
        let wait_c = async {
            while seen.lock().unwrap().last().is_none_or(|l| l != &["C"]) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait_c)
            .await
            .unwrap();
        token.cancel();
        task.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let all = vec!["A", "Bad", "B"];
        assert_eq!(
            seen,
            [
                all.clone(),
                all.clone(),
                all.clone(),
                all.clone(),
                all.clone(),
                all,
                vec!["A"],
                vec!["Bad"],
                vec!["B"],
                vec!["C"]
            ]
        );
    }
}
