//! What one `GET /` costs the agent on a busy host: 1,000+ series with full 600-sample
//! histories (40 watched services, the host, 5 caches, 5 trackers, 600 anomaly-scored series),
//! measured as the handler does it — encode `/metrics`, parse it back, render the HTML with
//! its charts — and the rendering alone. Target: under 100 ms per page.
//! Run: `cargo bench -p lookout-agent --bench page`.

use criterion::{Criterion, criterion_group, criterion_main};
use lookout_agent::http::page::{CacheView, Exposition, History, PageInput, TrackerView, render};
use lookout_agent::series::SeriesStore;
use lookout_agent::telemetry::Telemetry;
use opentelemetry::KeyValue;
use std::time::Instant;

const HISTORY: usize = 600;
const SERVICES: usize = 40;
const SCORED: usize = 600;

struct Host {
    telemetry: Telemetry,
    store: std::sync::Arc<SeriesStore>,
    /// Six hours of minute means behind the store's samples, as a long-running agent has.
    long: History,
}

fn busy_host() -> Host {
    let telemetry = Telemetry::new("bench-host", None).expect("telemetry");
    let meter = telemetry.meter();
    let store = SeriesStore::new(HISTORY);
    let g = |name: &'static str| store.gauge(&meter, name, "bench", "");
    let threads = g("process.thread.count");
    let limit = g("lookout_service_thread_limit");
    let cpu = g("process_cpu_utilization_ratio");
    let rss = g("process_resident_memory_bytes");
    let fds = g("process_open_fds");
    let up = g("lookout_service_up");
    let start = g("process_start_time_seconds");
    let last_cold = g("lookout_service_last_cold_start_seconds");
    let score = g("lookout_anomaly_score");
    let cold = meter
        .f64_histogram("lookout_service_cold_start_seconds")
        .with_boundaries(lookout_agent::telemetry::STARTUP_BUCKETS.to_vec())
        .build();
    let restarts = meter.u64_counter("lookout_service_restarts").build();
    let services: Vec<String> = (0..SERVICES).map(|i| format!("svc-{i}")).collect();
    for t in 0..HISTORY {
        let x = t as f64;
        for (i, s) in services.iter().enumerate() {
            let l = [("service", s.as_str())];
            threads.set(&l, 200.0 + (x / 7.0).sin() * 20.0 + i as f64);
            cpu.set(&l, 0.2 + (x / 13.0).cos() * 0.1);
            rss.set(&l, 3.0e8 + x * 1e4);
            fds.set(&l, 120.0 + (t % 9) as f64);
            up.set(&l, 1.0);
            if t == 0 {
                limit.set(&[("service", s.as_str()), ("kind", "expected")], 500.0);
                limit.set(
                    &[("service", s.as_str()), ("kind", "rlimit_nproc")],
                    127_000.0,
                );
                start.set(&l, 1.7e9);
                last_cold.set(&l, 2.5);
                for k in 0..5 {
                    cold.record(1.0 + k as f64, &[KeyValue::new("service", s.clone())]);
                }
                restarts.add(2, &[KeyValue::new("service", s.clone())]);
            }
        }
        for h in [
            "system_thread_count",
            "system_cpu_utilization_ratio",
            "system_memory_used_bytes",
            "system_memory_utilization_ratio",
            "lookout_host_anomaly_rate",
        ] {
            g(h).set(&[], 0.3 + (x / 30.0).sin() * 0.1);
        }
        for c in 0..5 {
            let name = format!("cache-{c}");
            let l = [("cache", name.as_str())];
            g("lookout_cache_version").set(&l, 12.0);
            g("lookout_cache_blob_version").set(&l, 12.0);
            g("lookout_cache_version_lag").set(&l, 0.0);
            g("lookout_cache_staleness_seconds").set(&l, (t % 5) as f64);
            g("lookout_cache_blob_up").set(&l, 1.0);
        }
        for k in 0..5 {
            let name = format!("tracker-{k}");
            let l = [("service", name.as_str())];
            g("lookout_primary_generation").set(&l, 3.0);
            g("lookout_primary_up").set(&l, 1.0);
            g("lookout_tracker_in_flight").set(&l, (t % 17) as f64);
        }
        for m in 0..SCORED {
            let metric = format!("process_cpu_utilization_ratio{{service=\"scored-{m}\"}}");
            score.set(
                &[("metric", metric.as_str())],
                ((m * 7 + t) % 100) as f64 / 100.0,
            );
        }
    }
    for kind in ["threads_max", "pid_max"] {
        g("system_thread_limit").set(&[("kind", kind)], 4_194_304.0);
    }
    // The minute history a long-running agent has: six hours of roll-ups.
    let long = History::default();
    for _ in 0..lookout_agent::http::page::history::MINUTES {
        for (i, s) in services.iter().enumerate() {
            threads.set(&[("service", s.as_str())], 200.0 + i as f64);
        }
        g("system_thread_count").set(&[], 400.0);
        std::thread::sleep(std::time::Duration::from_micros(20));
        long.roll(&store);
    }
    Host {
        telemetry,
        store,
        long,
    }
}

fn page(host: &Host, metrics: &Exposition) -> String {
    let trackers: Vec<TrackerView> = (0..5)
        .map(|k| TrackerView {
            service: format!("tracker-{k}"),
            primary: Some(format!("http://10.0.0.{k}:7001")),
            since_secs: 120.0,
        })
        .collect();
    let caches: Vec<CacheView> = (0..5)
        .map(|c| CacheView {
            name: format!("cache-{c}"),
            last_phases: vec![("check".into(), 0.002), ("fetch".into(), 0.02)],
        })
        .collect();
    render(&PageInput {
        host: "bench-host",
        now_unix: 1.7e9,
        metrics,
        series: &host.store,
        alerts: &[],
        findings: &[],
        trackers: &trackers,
        caches: &caches,
        long: Some(&host.long),
    })
}

fn bench(c: &mut Criterion) {
    let host = busy_host();
    let text = host.telemetry.encode_prometheus();
    let metrics = Exposition::parse(&String::from_utf8_lossy(&text));
    let html = page(&host, &metrics);
    let t = Instant::now();
    let n = 20;
    for _ in 0..n {
        let text = host.telemetry.encode_prometheus();
        let m = Exposition::parse(&String::from_utf8_lossy(&text));
        std::hint::black_box(page(&host, &m));
    }
    println!(
        "page: {} series in the store, /metrics {} KiB, HTML {} KiB, {:.1} ms per GET / (encode + parse + render, mean of {n})",
        host.store.len(),
        text.len() / 1024,
        html.len() / 1024,
        t.elapsed().as_secs_f64() * 1e3 / f64::from(n)
    );

    let mut g = c.benchmark_group("page");
    g.sample_size(20);
    g.bench_function("get_1000_series", |b| {
        b.iter(|| {
            let text = host.telemetry.encode_prometheus();
            let m = Exposition::parse(&String::from_utf8_lossy(&text));
            page(&host, &m)
        })
    });
    g.bench_function("render_only_1000_series", |b| {
        b.iter(|| page(&host, &metrics))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
