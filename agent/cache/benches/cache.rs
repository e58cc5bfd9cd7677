//! Cache benchmarks: `cargo bench -p lookout-cache --bench cache`. Prints
//! 1. `get` (and `peek`) ns/op through criterion, and reads/s on 2 threads together;
//! 2. `get_strong` on the 304 path against a private Azurite (when azurite-blob is installed), p50;
//! 3. refresh latency by phase (check, source, publish, fetch) for 1 KiB, 1 MiB and 64 MiB on
//!    the `file://` backend and in memory;
//! 4. a fleet of 1,000 instances on one in-memory store over 30 refresh intervals (tokio's
//!    paused clock, so it runs in seconds): blob requests per second, source loads per refresh
//!    interval, and bytes moved compared with a one-tier design in which every server reads
//!    the whole document at every check.
//!
//! `LOOKOUT_BENCH_QUICK=1` skips criterion's sampling (for a smoke run).

use base64::Engine;
use bytes::Bytes;
use criterion::Criterion;
use lookout_cache::blob::{self, BlobStore};
use lookout_cache::chaos::ChaosBlob;
use lookout_cache::source::{self, Source};
use lookout_cache::{Cache, CacheOptions, new_owner_id};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn options(name: &str, local: Option<std::path::PathBuf>) -> CacheOptions {
    CacheOptions {
        name: name.into(),
        check_interval: Duration::from_millis(100),
        refresh_interval: Duration::from_secs(3600),
        claim_ttl: Duration::from_secs(10),
        max_size: 256 << 20,
        source_timeout: Duration::from_secs(60),
        local_dir: local,
        owner: new_owner_id("bench"),
    }
}

fn fixed_source(body: Bytes) -> Arc<dyn Source> {
    source::from_fn(move || {
        let b = body.clone();
        Box::pin(async move { Ok(b) })
    })
}

/// Counters and histograms go nowhere: the benches measure the cache, not an exporter.
fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::global::meter("bench")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A cache that serves one version, stopped (reads only).
fn served_cache(rt: &tokio::runtime::Runtime, size: usize) -> Arc<Cache> {
    let store = blob::open(
        &format!("memory://bench-get-{}", rand::random::<u32>()),
        &BTreeMap::new(),
    )
    .unwrap();
    let cache = Cache::new(
        options("get", None),
        fixed_source(Bytes::from(vec![7u8; size])),
        store,
        &meter(),
    );
    rt.block_on(async {
        let token = CancellationToken::new();
        let task = tokio::spawn(cache.clone().run(token.clone(), || {}));
        while cache.get().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        token.cancel();
        let _ = task.await;
    });
    cache
}

fn bench_get(c: &mut Criterion, cache: &Arc<Cache>) {
    c.bench_function("cache get (Arc clone)", |b| {
        b.iter(|| black_box(cache.get()).map(|s| s.version))
    });
    c.bench_function("cache peek (guard)", |b| {
        b.iter(|| black_box(cache.peek().as_ref().map(|s| s.version)))
    });
}

fn reads_per_second(cache: &Arc<Cache>, threads: usize, peek: bool) -> f64 {
    let run = Duration::from_secs(1);
    let total = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let cache = cache.clone();
            let total = total.clone();
            s.spawn(move || {
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < run {
                    for _ in 0..4096 {
                        if peek {
                            black_box(cache.peek().as_ref().map(|s| s.version));
                        } else {
                            black_box(cache.get().map(|s| s.version));
                        }
                    }
                    n += 4096;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / run.as_secs_f64()
}

// ---- Azurite -------------------------------------------------------------------------------

const AZ_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's documented public development key (not a secret).
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Azurite(
    std::process::Child,
    u16,
    #[allow(dead_code)] tempfile::TempDir,
);
impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_azurite() -> Option<Azurite> {
    let bin = std::path::Path::new("/opt/azurite/node_modules/.bin/azurite-blob");
    if !bin.exists() {
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new(bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
        ])
        .arg(dir.path())
        .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let az = Azurite(child, port, dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(az)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // RFC 2104 over sha2: ten lines, no MAC crate needed for a bench.
    let mut k = [0u8; 64];
    k[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

async fn create_container(port: u16, name: &str) {
    let date = httpdate();
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-08-06\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{name}\nrestype:container"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = b64.encode(hmac_sha256(
        &b64.decode(AZ_KEY).unwrap(),
        to_sign.as_bytes(),
    ));
    lookout_common::install_tls_provider();
    let _ = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(format!(
            "http://127.0.0.1:{port}/{AZ_ACCOUNT}/{name}?restype=container"
        ))
        .header("x-ms-date", date)
        .header("x-ms-version", "2021-08-06")
        .header("content-length", "0")
        .header("authorization", format!("SharedKey {AZ_ACCOUNT}:{sig}"))
        .send()
        .await;
}

fn httpdate() -> String {
    // The Azure date header needs RFC 1123; `date` is everywhere, and this is a bench.
    let out = std::process::Command::new("date")
        .args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn bench_strong_azurite(rt: &tokio::runtime::Runtime) {
    let Some(az) = start_azurite() else {
        println!(
            "get_strong/azurite: skipped (azurite-blob not installed; run tests/setup/servers.sh)"
        );
        return;
    };
    rt.block_on(async {
        create_container(az.1, "bench").await;
        let opts: BTreeMap<String, String> = [
            ("account_name", AZ_ACCOUNT.to_string()),
            ("access_key", AZ_KEY.to_string()),
            ("endpoint", format!("http://127.0.0.1:{}/{AZ_ACCOUNT}", az.1)),
            ("allow_http", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let store = blob::open("az://bench/strong", &opts).unwrap();
        let cache = Cache::new(options("strong", None), fixed_source(Bytes::from(vec![1u8; 256 << 10])), store, &meter());
        let token = CancellationToken::new();
        let task = tokio::spawn(cache.clone().run(token.clone(), || {}));
        while cache.get().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        token.cancel();
        let _ = task.await;
        let mut lat = Vec::new();
        for _ in 0..20 {
            let _ = cache.get_strong().await;
        }
        for _ in 0..500 {
            let t = Instant::now();
            cache.get_strong().await.expect("strong read");
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "get_strong/azurite 304 path (256 KiB doc): p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms over {} reads",
            lat[lat.len() / 2].as_secs_f64() * 1e3,
            lat[lat.len() * 9 / 10].as_secs_f64() * 1e3,
            lat[lat.len() * 99 / 100].as_secs_f64() * 1e3,
            lat.len()
        );
    });
}

// ---- Refresh phases ------------------------------------------------------------------------

fn bench_phases(rt: &tokio::runtime::Runtime) {
    println!(
        "refresh latency by phase (ms): blob, size, check, source, publish (upload + CAS + local snapshot), fetch (download + verify on another instance)"
    );
    for (blob_kind, sizes) in [
        ("file", [1usize << 10, 1 << 20, 64 << 20]),
        ("memory", [1 << 10, 1 << 20, 64 << 20]),
    ] {
        for size in sizes {
            let dir = tempfile::tempdir().unwrap();
            let url = match blob_kind {
                "file" => format!("file://{}", dir.path().join("blob").display()),
                _ => format!("memory://bench-phase-{}", rand::random::<u32>()),
            };
            let store = blob::open(&url, &BTreeMap::new()).unwrap();
            let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let body = Bytes::from(body);
            let (a, b) = rt.block_on(async {
                let run = |name: &str, local: std::path::PathBuf, store: Arc<dyn BlobStore>| {
                    let cache = Cache::new(
                        options("phases", Some(local)),
                        fixed_source(body.clone()),
                        store,
                        &meter(),
                    );
                    let _ = name;
                    cache
                };
                let a = run("a", dir.path().join("a"), store.clone());
                let token = CancellationToken::new();
                let ta = tokio::spawn(a.clone().run(token.clone(), || {}));
                while a.get().is_none() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                token.cancel();
                let _ = ta.await;
                let b = run("b", dir.path().join("b"), store.clone());
                let token = CancellationToken::new();
                let tb = tokio::spawn(b.clone().run(token.clone(), || {}));
                while b.get().is_none() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                token.cancel();
                let _ = tb.await;
                (a, b)
            });
            let pa = a.last_phase_durations();
            let pb = b.last_phase_durations();
            let ms = |d: Option<&Duration>| {
                d.map(|d| format!("{:.3}", d.as_secs_f64() * 1e3))
                    .unwrap_or("-".into())
            };
            println!(
                "  {blob_kind:6} {:>7}: check {} source {} publish {} fetch {}",
                human(size as u64),
                ms(pb.get("check")),
                ms(pa.get("source")),
                ms(pa.get("publish")),
                ms(pb.get("fetch")),
            );
        }
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

// ---- Fleet simulation ----------------------------------------------------------------------

fn fleet_sim() {
    const N: usize = 1000;
    const INTERVALS: u32 = 30;
    let refresh = Duration::from_secs(60);
    let check = Duration::from_secs(5);
    let doc_size = 256 << 10;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let inner = blob::open(&format!("memory://fleet-{}", rand::random::<u32>()), &BTreeMap::new()).unwrap();
        let chaos = ChaosBlob::new(inner);
        let loads = Arc::new(AtomicU64::new(0));
        let generation = Arc::new(AtomicU64::new(0));
        let token = CancellationToken::new();
        let mut caches = Vec::new();
        for i in 0..N {
            let loads = loads.clone();
            let generation = generation.clone();
            let source = source::from_fn(move || {
                loads.fetch_add(1, Ordering::Relaxed);
                let g = generation.load(Ordering::Relaxed);
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let mut body = format!("generation {g}\n").into_bytes();
                    body.resize(doc_size, b'.');
                    Ok(Bytes::from(body))
                })
            });
            let opts = CacheOptions {
                name: "fleet".into(),
                check_interval: check,
                refresh_interval: refresh,
                claim_ttl: Duration::from_secs(90),
                max_size: 256 << 20,
                source_timeout: Duration::from_secs(30),
                local_dir: None,
                owner: format!("server-{i}"),
            };
            let cache = Cache::new(opts, source, chaos.clone(), &meter());
            // Servers start spread over one check interval, as a real fleet would.
            let token = token.clone();
            let c = cache.clone();
            let delay = check.mul_f64(i as f64 / N as f64);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                c.run(token, || {}).await;
            });
            caches.push(cache);
        }
        // Warm up one interval, then measure 30 with the content changing every 3rd refresh.
        tokio::time::sleep(refresh).await;
        let s0 = chaos.stats();
        let l0 = loads.load(Ordering::Relaxed);
        let t0 = tokio::time::Instant::now();
        let wall = Instant::now();
        for i in 0..INTERVALS {
            if i % 3 == 0 {
                generation.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(refresh).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let s = chaos.stats();
        let requests = s.requests() - s0.requests();
        let source_loads = loads.load(Ordering::Relaxed) - l0;
        let moved = (s.bytes_read - s0.bytes_read) + (s.bytes_written - s0.bytes_written);
        let checks = N as f64 * secs / check.as_secs_f64();
        let one_tier = checks * doc_size as f64;
        let versions: Vec<u64> = caches.iter().map(|c| c.get().map(|s| s.version).unwrap_or(0)).collect();
        token.cancel();
        println!(
            "fleet sim: {N} instances, check {check:?}, refresh {refresh:?}, {} KiB doc, {INTERVALS} intervals ({secs:.0} s simulated in {:.1} s)",
            doc_size >> 10,
            wall.elapsed().as_secs_f64()
        );
        println!(
            "  blob requests {requests} = {:.1} req/s ({:.1} per instance per minute; {} not modified, {} conflicts)",
            requests as f64 / secs,
            requests as f64 / secs * 60.0 / N as f64,
            s.not_modified - s0.not_modified,
            s.conflicts - s0.conflicts
        );
        println!(
            "  source loads {source_loads} = {:.3} per refresh interval",
            source_loads as f64 / INTERVALS as f64
        );
        println!(
            "  bytes moved {} vs one-tier {} ({:.0}x less); versions served now: min {} max {}",
            human(moved),
            human(one_tier as u64),
            one_tier / moved.max(1) as f64,
            versions.iter().min().unwrap(),
            versions.iter().max().unwrap()
        );
    });
}

fn main() {
    let rt = runtime();
    let cache = served_cache(&rt, 64 << 10);
    if std::env::var_os("LOOKOUT_BENCH_QUICK").is_none() {
        let mut c = Criterion::default()
            .configure_from_args()
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        bench_get(&mut c, &cache);
        c.final_summary();
    }
    for (label, peek) in [("get", false), ("peek", true)] {
        let one = reads_per_second(&cache, 1, peek);
        let two = reads_per_second(&cache, 2, peek);
        println!(
            "{label}: {:.1} M reads/s on 1 thread ({:.1} ns/op), {:.1} M reads/s on 2 threads together",
            one / 1e6,
            1e9 / one,
            two / 1e6
        );
    }
    bench_strong_azurite(&rt);
    bench_phases(&rt);
    fleet_sim();
}
