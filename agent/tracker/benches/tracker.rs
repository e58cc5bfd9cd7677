//! Benchmarks of the primary tracker (`cargo bench -p lookout-tracker --bench tracker`):
//!
//! 1. in-process lookup of the primary, ns/op (criterion);
//! 2. requests/s and latency p50/p99 through the tracker against calling the primary directly
//!    with the same kind of client, loopback, 64 concurrent tasks (printed);
//! 3. discovery calls per failover with 256 tasks in flight: the tracker's generation design
//!    against a naive one where every failing request re-discovers by itself (printed; the
//!    naive one lives here only).
//!
//! The replicas are in-process hyper servers on loopback sharing one "who is primary" cell, so
//! a failover is one atomic switch and every replica agrees at once. Env `BENCH_REQUESTS`
//! (default 40000) sizes part 2; `BENCH_ONLY=lookup|throughput|herd` runs one part.

use arc_swap::ArcSwap;
use bytes::Bytes;
use criterion::Criterion;
use http_body_util::Full;
use lookout_tracker::{Discovery, Settings, Tracker};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The replicated service: every replica reads the same primary cell.
struct Cluster {
    primary: ArcSwap<String>,
    discovery_calls: AtomicU64,
    urls: Vec<String>,
}

/// One replica's answer: `/primary` names the primary (and counts as a discovery call);
/// anything else is served by the primary and refused with 421 by the others.
fn answer(me: &str, cluster: &Cluster, path: &str) -> http::Response<Full<Bytes>> {
    let primary = cluster.primary.load();
    let (status, body) = if path == "/primary" {
        cluster.discovery_calls.fetch_add(1, Ordering::Relaxed);
        (
            200,
            serde_json::json!({"primary": **primary, "term": 1}).to_string(),
        )
    } else if **primary == me {
        (200, "ok".to_string())
    } else {
        (421, "not the primary".to_string())
    };
    http::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn start_cluster(n: usize) -> Arc<Cluster> {
    let mut listeners = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", l.local_addr().unwrap()));
        listeners.push(l);
    }
    let cluster = Arc::new(Cluster {
        primary: ArcSwap::from_pointee(urls[0].clone()),
        discovery_calls: AtomicU64::new(0),
        urls: urls.clone(),
    });
    for (l, me) in listeners.into_iter().zip(urls) {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (me, cluster) = (me.clone(), cluster.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: http::Request<_>| {
                        let resp = answer(&me, &cluster, req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    cluster
}

fn tracker_for(cluster: &Cluster, max_in_flight: usize) -> Arc<Tracker> {
    let discovery = Discovery::Http(cluster.urls.clone());
    let settings = Settings {
        max_in_flight,
        request_timeout: Duration::from_secs(2),
        discovery_timeout: Duration::from_secs(1),
        queue_timeout: Duration::from_secs(10),
        max_attempts: 6,
        failover_statuses: vec![421, 503],
    };
    let meter = opentelemetry::global::meter("bench");
    let t = Tracker::new("bench", &discovery, settings, &meter).unwrap();
    tokio::spawn(t.clone().run(tokio_util::sync::CancellationToken::new()));
    t
}

async fn wait_primary(t: &Tracker) {
    while t.primary().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Run `total` requests from `tasks` tasks; per-request latencies and the wall time.
async fn load<F, Fut>(tasks: usize, total: usize, one: F) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let one = one.clone();
            let n = total / tasks;
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let t0 = Instant::now();
                    assert!(one().await, "request failed during the bench");
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall)
}

fn report(name: &str, lat: &[Duration], wall: Duration) -> (f64, Duration, Duration) {
    let rps = lat.len() as f64 / wall.as_secs_f64();
    let (p50, p99) = (percentile(lat, 0.5), percentile(lat, 0.99));
    println!("{name:<10} {rps:>10.0} req/s   p50 {p50:>10.1?}   p99 {p99:>10.1?}");
    (rps, p50, p99)
}

fn throughput(rt: &tokio::runtime::Runtime) {
    let total: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    let tasks = 64;
    rt.block_on(async {
        let cluster = start_cluster(1).await;
        let tracker = tracker_for(&cluster, 64);
        wait_primary(&tracker).await;
        let url = format!("{}/item", cluster.urls[0]);
        lookout_common::install_tls_provider();
        let direct_client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let direct = {
            let (c, url) = (direct_client.clone(), url.clone());
            move || {
                let (c, url) = (c.clone(), url.clone());
                async move {
                    match c.get(&url).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    }
                }
            }
        };
        let through = {
            let t = tracker.clone();
            move || {
                let t = t.clone();
                async move { t.get_bytes("/item").await.is_ok() }
            }
        };
        // Warm both pools, then alternate to share the machine's noise fairly.
        load(tasks, 4 * tasks, direct.clone()).await;
        load(tasks, 4 * tasks, through.clone()).await;
        println!("\n== requests through the tracker vs direct: loopback, {tasks} tasks, {total} requests ==");
        let mut d_runs = Vec::new();
        let mut t_runs = Vec::new();
        for _ in 0..5 {
            let (lat, wall) = load(tasks, total / 5, direct.clone()).await;
            d_runs.push(report("direct", &lat, wall));
            let (lat, wall) = load(tasks, total / 5, through.clone()).await;
            t_runs.push(report("tracker", &lat, wall));
        }
        let best = |runs: &Vec<(f64, Duration, Duration)>| {
            runs.iter()
                .cloned()
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap()
        };
        let (d, t) = (best(&d_runs), best(&t_runs));
        let median = |runs: &Vec<(f64, Duration, Duration)>, f: fn(&(f64, Duration, Duration)) -> Duration| {
            let mut v: Vec<Duration> = runs.iter().map(f).collect();
            v.sort();
            v[v.len() / 2]
        };
        let added_p50 = median(&t_runs, |r| r.1).saturating_sub(median(&d_runs, |r| r.1));
        let added_p99 = median(&t_runs, |r| r.2).saturating_sub(median(&d_runs, |r| r.2));
        let mut d_rps: Vec<f64> = d_runs.iter().map(|r| r.0).collect();
        let mut t_rps: Vec<f64> = t_runs.iter().map(|r| r.0).collect();
        d_rps.sort_by(f64::total_cmp);
        t_rps.sort_by(f64::total_cmp);
        println!(
            "tracker/direct throughput: best runs {:.1} %, median runs {:.1} %   added latency (median of runs) p50 {added_p50:?}  p99 {added_p99:?}",
            100.0 * t.0 / d.0,
            100.0 * t_rps[2] / d_rps[2]
        );
    });
}

/// The naive design: every request that meets a failure asks a replica itself.
struct Naive {
    primary: ArcSwap<String>,
    replicas: Vec<String>,
    client: reqwest::Client,
}

impl Naive {
    async fn get(&self, path: &str) -> bool {
        for attempt in 0..6 {
            let base = self.primary.load_full();
            let ok = match self.client.get(format!("{base}{path}")).send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            if ok {
                return true;
            }
            let replica = &self.replicas[attempt % self.replicas.len()];
            if let Ok(r) = self.client.get(format!("{replica}/primary")).send().await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && let Some(p) = v["primary"].as_str()
            {
                self.primary.store(Arc::new(p.to_string()));
            }
        }
        false
    }
}

/// Drive `failovers` failovers while 256 tasks send requests with `one`; discovery calls per
/// failover, counted at the replicas.
async fn failovers<F, Fut>(
    cluster: &Arc<Cluster>,
    failovers: u64,
    one: F,
    follows: impl Fn(&str) -> bool,
) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..256u64)
        .map(|i| {
            let (one, stop, failed) = (one.clone(), stop.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if !one(i).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cluster.discovery_calls.load(Ordering::Relaxed);
    for k in 1..=failovers {
        let next = cluster.urls[(k as usize) % cluster.urls.len()].clone();
        cluster.primary.store(Arc::new(next.clone()));
        while !follows(&next) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = cluster.discovery_calls.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (
        calls as f64 / failovers as f64,
        failed.load(Ordering::Relaxed),
    )
}

fn herd(rt: &tokio::runtime::Runtime) {
    const FAILOVERS: u64 = 20;
    rt.block_on(async {
        println!("\n== discovery calls per failover, 256 tasks in flight, {FAILOVERS} failovers ==");
        let cluster = start_cluster(3).await;
        let tracker = tracker_for(&cluster, 256);
        wait_primary(&tracker).await;
        let t = tracker.clone();
        let t2 = tracker.clone();
        let (per, failed) = failovers(
            &cluster,
            FAILOVERS,
            move |i| {
                let t = t.clone();
                async move { t.get_bytes(&format!("/item/{i}")).await.is_ok() }
            },
            move |url| t2.primary().is_some_and(|p| &*p.base == url),
        )
        .await;
        println!("generation design  {per:>7.2} discovery calls per failover   ({failed} requests failed)");

        let cluster = start_cluster(3).await;
        lookout_common::install_tls_provider();
        let naive = Arc::new(Naive {
            primary: ArcSwap::from_pointee(cluster.urls[0].clone()),
            replicas: cluster.urls.clone(),
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap(),
        });
        let n = naive.clone();
        let n2 = naive.clone();
        let (per, failed) = failovers(
            &cluster,
            FAILOVERS,
            move |i| {
                let n = n.clone();
                async move { n.get(&format!("/item/{i}")).await }
            },
            move |url| **n2.primary.load() == url,
        )
        .await;
        println!("naive design       {per:>7.2} discovery calls per failover   ({failed} requests failed)");
    });
}

fn lookup(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let tracker = rt.block_on(async {
        let cluster = start_cluster(1).await;
        let t = tracker_for(&cluster, 64);
        wait_primary(&t).await;
        // Keep the cluster's servers alive for the process.
        std::mem::forget(cluster);
        t
    });
    c.bench_function("tracker primary lookup", |b| {
        b.iter(|| black_box(tracker.primary()))
    });
    c.bench_function("tracker generation lookup", |b| {
        b.iter(|| black_box(tracker.generation()))
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    // BENCH_ONLY=lookup|throughput|herd runs one part.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "lookup" {
        lookup(&mut c, &rt);
        c.final_summary();
    }
    if only.is_empty() || only == "throughput" {
        throughput(&rt);
    }
    if only.is_empty() || only == "herd" {
        herd(&rt);
    }
}
