//! What one evaluation of every alert rule costs on a large host (200 watched services, 50
//! caches, 20 trackers, each series with a full 600-sample history), and what a durable
//! spool push (write + fsync + rename) costs. Run: `cargo bench -p lookout-agent --bench alerting`.

use criterion::{Criterion, criterion_group, criterion_main};
use lookout_agent::alerting::engine::{Engine, Notice, Stamp, configured_rules};
use lookout_agent::alerting::rules::{EvalInput, Facts};
use lookout_agent::alerting::spool::Spool;
use lookout_agent::config::AlertsConfig;
use lookout_agent::series::{SeriesKey, SeriesStore};
use std::time::SystemTime;

const HISTORY: usize = 600;

fn busy_store() -> (std::sync::Arc<SeriesStore>, Facts) {
    let store = SeriesStore::new(HISTORY);
    let mut facts = Facts::default();
    for i in 0..200 {
        let svc = format!("svc-{i}");
        facts.cold_start_budget.insert(svc.clone(), 60.0);
        for t in 0..HISTORY {
            let s = [("service", svc.as_str())];
            store.record(
                &SeriesKey::new("process.thread.count", &s),
                300.0 + (t % 50) as f64,
            );
            store.record(
                &SeriesKey::new("lookout_service_initializing_seconds", &s),
                0.0,
            );
            store.record(
                &SeriesKey::new(
                    "lookout_timeout_suspects",
                    &[("service", svc.as_str()), ("kind", "missing_timeout")],
                ),
                0.0,
            );
        }
        store.record(
            &SeriesKey::new(
                "lookout_service_thread_limit",
                &[("service", svc.as_str()), ("kind", "expected")],
            ),
            500.0,
        );
        store.record(
            &SeriesKey::new(
                "lookout_service_thread_limit",
                &[("service", svc.as_str()), ("kind", "rlimit_nproc")],
            ),
            62_000.0,
        );
    }
    for i in 0..50 {
        let cache = format!("cache-{i}");
        facts.check_interval.insert(cache.clone(), 5.0);
        for t in 0..HISTORY {
            let c = [("cache", cache.as_str())];
            store.record(
                &SeriesKey::new("lookout_cache_staleness_seconds", &c),
                (t % 5) as f64,
            );
            store.record(&SeriesKey::new("lookout_cache_version_lag", &c), 0.0);
            store.record(&SeriesKey::new("lookout_cache_blob_up", &c), 1.0);
            store.record(
                &SeriesKey::new(
                    "lookout_cache_source_loads_total",
                    &[("cache", cache.as_str()), ("outcome", "ok")],
                ),
                (t / 300) as f64,
            );
            store.record(
                &SeriesKey::new(
                    "lookout_cache_errors_total",
                    &[("cache", cache.as_str()), ("kind", "corrupt")],
                ),
                0.0,
            );
        }
    }
    for i in 0..20 {
        let svc = format!("tracked-{i}");
        for _ in 0..HISTORY {
            let s = [("service", svc.as_str())];
            store.record(&SeriesKey::new("lookout_primary_up", &s), 1.0);
            store.record(&SeriesKey::new("lookout_primary_changes_total", &s), 1.0);
            store.record(&SeriesKey::new("lookout_tracker_throttled_total", &s), 0.0);
        }
    }
    (store, facts)
}

fn bench(c: &mut Criterion) {
    let (store, facts) = busy_store();
    let stamp = Stamp {
        host: "bench".into(),
        runbook_base: "http://127.0.0.1:9464/runbooks/".into(),
        generator_url: String::new(),
        resend_secs: 60.0,
    };
    let mut engine = Engine::new(configured_rules(&AlertsConfig::default()), stamp);
    println!("series in the store: {}", store.len());
    c.bench_function(
        "evaluate every rule (200 services, 50 caches, 20 trackers)",
        |b| {
            b.iter(|| {
                let input = EvalInput {
                    series: &store,
                    now: store.now() as f64,
                    history: HISTORY,
                    facts: &facts,
                    findings: &[],
                    settled: true,
                };
                engine.evaluate(&input, SystemTime::now())
            })
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1_000_000, &["http://am".to_string()]);
    let mut i = 0u64;
    c.bench_function("durable spool push (one notice)", |b| {
        b.iter(|| {
            i += 1;
            spool.push(Notice {
                labels: [("alertname".to_string(), format!("A{i}"))].into(),
                annotations: [("summary".to_string(), "x".repeat(200))].into(),
                starts_at: "2026-01-01T00:00:00Z".into(),
                ends_at: None,
                generator_url: String::new(),
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
