//! Stress: the tracker library in-process, 256 concurrent request tasks, against three real
//! replica processes whose primary moves every 200 ms–1 s. The old primary fails in turn by
//! 421 without hint, connection resets, dropped requests (never answered: timeouts) and a
//! closed port (refused); every replica also delays 5 % of requests by up to 100 ms.
//!
//! Checks: idempotent requests succeed ≥ 99.9 % (with retries); every failover costs exactly
//! one discovery call, counted at the replicas; a watchdog thread proves progress (it kills the
//! test when no request has succeeded for 20 s: a deadlock).
//!
//! Duration: `LOOKOUT_STRESS_SECS` (default 180).

mod tracker_support;

use lookout_tracker::{Discovery, Settings, Tracker};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracker_support::{discovery_calls, failover, start_replicas};

const TASKS: usize = 256;
const MODES: [&str; 4] = ["421", "reset", "drop", "refuse"];

fn stress_secs() -> u64 {
    std::env::var("LOOKOUT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180)
}

#[test]
fn stress_failovers_under_load() {
    let secs = stress_secs();
    let replicas = start_replicas(3, "421");
    for r in &replicas {
        r.set(json!({"delay_ms": 100, "delay_prob": 0.05}));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let discovery = Discovery::Http(replicas.iter().map(|r| r.url.clone()).collect());
    let settings = Settings {
        max_in_flight: 64,
        request_timeout: Duration::from_secs(1),
        discovery_timeout: Duration::from_millis(500),
        queue_timeout: Duration::from_secs(10),
        max_attempts: 6,
        failover_statuses: vec![421, 503],
    };
    let meter = opentelemetry::global::meter("test");
    let tracker = Tracker::new("stress", &discovery, settings, &meter).unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let _guard = rt.enter();
    rt.spawn(tracker.clone().run(token.clone()));
    let follow = |url: &str, within: Duration| {
        let deadline = Instant::now() + within;
        while tracker.primary().map(|p| p.base.to_string()).as_deref() != Some(url) {
            assert!(
                Instant::now() < deadline,
                "tracker did not follow to {url} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    follow(&replicas[0].url, Duration::from_secs(10));

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let (tracker, ok, failed, stop, errors) = (
            tracker.clone(),
            ok.clone(),
            failed.clone(),
            stop.clone(),
            errors.clone(),
        );
        tasks.push(rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match tracker.get_bytes(&format!("/item/{i}/{n}")).await {
                    Ok(body) if body.starts_with(b"{") => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        let mut e = errors.lock().unwrap();
                        if e.len() < 20 {
                            e.push(format!(
                                "{:?}",
                                other.map(|b| String::from_utf8_lossy(&b).to_string())
                            ));
                        }
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                let pause = 20 + rand::random_range(0..40);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }));
    }

    // The watchdog: progress or die loudly (a deadlock would otherwise hang until nextest's
    // timeout, with no clue).
    let watchdog_done = Arc::new(AtomicBool::new(false));
    {
        let (ok, done, tracker) = (ok.clone(), watchdog_done.clone(), tracker.clone());
        std::thread::spawn(move || {
            let mut last = (ok.load(Ordering::Relaxed), Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let now = ok.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(20) {
                    eprintln!(
                        "WATCHDOG: no request succeeded for 20 s: deadlock? snapshot {:?}, in flight {}",
                        tracker.snapshot(),
                        tracker.in_flight()
                    );
                    std::process::exit(101);
                }
            }
        });
    }

    let started = Instant::now();
    let mut current = 0usize;
    let mut term = 1i64;
    let mut per_failover = Vec::new();
    let mut calls_at_follow = discovery_calls(&replicas);
    let base_calls = calls_at_follow;
    let mut follow_times = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(rand::random_range(200..=1000)));
        let next = (current + 1 + rand::random_range(0..2usize)) % replicas.len();
        term += 1;
        let mode = MODES[per_failover.len() % MODES.len()];
        let t0 = Instant::now();
        failover(&replicas, next, term, mode);
        follow(&replicas[next].url, Duration::from_secs(15));
        follow_times.push(t0.elapsed());
        let calls = discovery_calls(&replicas);
        per_failover.push((mode, calls - calls_at_follow));
        calls_at_follow = calls;
        current = next;
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(tasks))
            .await
            .expect("request tasks did not stop within 30 s after the run: stuck");
    });
    watchdog_done.store(true, Ordering::Relaxed);
    token.cancel();

    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let total = ok + failed;
    let rate = ok as f64 / total.max(1) as f64;
    follow_times.sort();
    let failovers = per_failover.len();
    let final_calls = discovery_calls(&replicas);
    eprintln!(
        "stress: {secs} s, {total} requests ({:.0}/s), {failed} failed, success {:.4} %, {failovers} failovers, \
         follow p50 {:?} max {:?}, discovery calls {} (tracker discoveries {})",
        total as f64 / secs as f64,
        rate * 100.0,
        follow_times.get(failovers / 2),
        follow_times.last(),
        final_calls - base_calls,
        tracker.discoveries()
    );
    assert!(
        failovers as u64 >= secs / 2,
        "only {failovers} failovers in {secs} s"
    );
    assert!(total > 1000, "too little load: {total} requests");
    assert!(
        rate >= 0.999,
        "success {rate} < 99.9 %; first errors: {:#?}",
        errors.lock().unwrap()
    );
    let wrong: Vec<_> = per_failover
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "failovers that did not cost exactly one discovery call: {wrong:?}"
    );
    assert_eq!(
        final_calls - base_calls,
        failovers as i64,
        "discovery calls in total vs failovers"
    );
}
