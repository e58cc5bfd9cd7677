//! The consistency checker, in process: 24 cache instances sharing one blob tier (in memory,
//! and the `file://` backend), a writer changing the source, and random faults — blob errors
//! and latency per instance, source errors, a claimer killed in the middle of its refresh, and
//! instance restarts on their local snapshots. Every read is recorded with its start and end on
//! one monotonic clock and checked for the properties of the issue (see `cache_common::check`).

mod cache_common;

use bytes::Bytes;
use cache_common::{Exempt, Read};
use lookout_cache::blob::{self, BlobStore};
use lookout_cache::chaos::ChaosBlob;
use lookout_cache::source::{self, Source};
use lookout_cache::{Cache, CacheOptions, new_owner_id};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SERVERS: usize = 24;
const CHECK: Duration = Duration::from_millis(100);
const REFRESH: Duration = Duration::from_secs(1);
const RUN: Duration = Duration::from_secs(20);
const NOBODY: usize = usize::MAX;

/// The slow source: a generation number the writer bumps, errors on demand, a load counter,
/// and a "hang the next load" switch used to kill a claimer mid-refresh.
struct World {
    generation: AtomicU64,
    loads: AtomicU64,
    error_rate_ppm: AtomicU64,
    hang_next: AtomicBool,
    /// The server whose load is hanging.
    hanging: AtomicUsize,
}

fn source_for(world: Arc<World>, server: usize) -> Arc<dyn Source> {
    source::from_fn(move || {
        let world = world.clone();
        Box::pin(async move {
            world.loads.fetch_add(1, Ordering::SeqCst);
            if world.hang_next.swap(false, Ordering::SeqCst) {
                world.hanging.store(server, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let ppm = world.error_rate_ppm.load(Ordering::SeqCst);
            if rand::rng().random_range(0..1_000_000) < ppm {
                return Err("injected source error".to_string());
            }
            let g = world.generation.load(Ordering::SeqCst);
            let mut body = format!("generation {g}\n").into_bytes();
            body.resize(4096 + (g as usize % 7) * 100, b'.');
            Ok(Bytes::from(body))
        })
    })
}

struct Server {
    cache: Arc<Cache>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start_server(
    i: usize,
    base: &tempfile::TempDir,
    blob: Arc<ChaosBlob>,
    world: &Arc<World>,
) -> Server {
    let dir = base.path().join(format!("server-{i}"));
    let opts = CacheOptions {
        name: "fleet".into(),
        check_interval: CHECK,
        refresh_interval: REFRESH,
        claim_ttl: Duration::from_millis(1000),
        max_size: 1 << 20,
        source_timeout: Duration::from_secs(3600),
        local_dir: Some(dir.join("cache")),
        owner: new_owner_id(&format!("server-{i}")),
    };
    let meter = opentelemetry::global::meter("test");
    let cache = Cache::new(opts, source_for(world.clone(), i), blob, &meter);
    let token = CancellationToken::new();
    let task = tokio::spawn(cache.clone().run(token.clone(), || {}));
    Server { cache, token, task }
}

async fn run_checker(inner: Arc<dyn BlobStore>) {
    let base = tempfile::tempdir().unwrap();
    let world = Arc::new(World {
        generation: AtomicU64::new(1),
        loads: AtomicU64::new(0),
        error_rate_ppm: AtomicU64::new(0),
        hang_next: AtomicBool::new(false),
        hanging: AtomicUsize::new(NOBODY),
    });
    let blobs: Vec<Arc<ChaosBlob>> = (0..SERVERS)
        .map(|_| ChaosBlob::new(inner.clone()))
        .collect();
    let servers: Vec<Arc<Mutex<Option<Server>>>> = (0..SERVERS)
        .map(|i| {
            Arc::new(Mutex::new(Some(start_server(
                i,
                &base,
                blobs[i].clone(),
                &world,
            ))))
        })
        .collect();
    let reads = Arc::new(Mutex::new(Vec::<Read>::new()));
    let exempt = Arc::new(Mutex::new(Vec::<Exempt>::new()));
    let stop = CancellationToken::new();
    let t_start = Instant::now();

    // Readers: one loop per server, every read timed on the one monotonic clock.
    let mut readers = Vec::new();
    for (i, slot) in servers.iter().enumerate() {
        let slot = slot.clone();
        let reads = reads.clone();
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let cache = slot.lock().unwrap().as_ref().map(|s| s.cache.clone());
                if let Some(cache) = cache {
                    let strong = n.is_multiple_of(5);
                    let start = Instant::now();
                    let version = if strong {
                        cache.get_strong().await.ok().map(|s| s.version)
                    } else {
                        cache.get().map(|s| s.version)
                    };
                    let end = Instant::now();
                    if let Some(version) = version {
                        reads.lock().unwrap().push(Read {
                            server: i,
                            start: start.into_std(),
                            end: end.into_std(),
                            version,
                            strong,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // The writer: a new source generation every 700 ms.
    let writer = {
        let world = world.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(700)).await;
                world.generation.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Faults, on a fixed schedule of random targets so every kind happens in every run.
    let mut rng = rand::rng();
    let mut killed_claimer = false;
    let mut restarts = 0;
    let mut blob_faults = 0;
    while t_start.elapsed() < RUN {
        let phase = t_start.elapsed().as_millis() / 1000;
        // Blob errors (30 %) and latency (≤ 80 ms) on 3 servers for 1 s, every other second.
        if phase % 2 == 1 {
            let victims: Vec<usize> = (0..3).map(|_| rng.random_range(0..SERVERS)).collect();
            let from = Instant::now();
            for &v in &victims {
                blobs[v].set_error_rate(0.3);
                blobs[v].set_latency(Duration::from_millis(80));
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
            for &v in &victims {
                blobs[v].set_error_rate(0.0);
                blobs[v].set_latency(Duration::ZERO);
                exempt.lock().unwrap().push(Exempt {
                    server: v,
                    from: from.into_std(),
                    // A fault can delay the server's next good check by one interval.
                    to: (Instant::now() + CHECK * 2).into_std(),
                });
            }
            blob_faults += 1;
            continue;
        }
        // Source errors: 5 % of loads during seconds 4..6.
        world.error_rate_ppm.store(
            if (4..6).contains(&phase) { 50_000 } else { 0 },
            Ordering::SeqCst,
        );
        // Kill whoever claims the refresh after second 8, mid-load, then restart it.
        if phase >= 8 && !killed_claimer {
            if world.hanging.load(Ordering::SeqCst) == NOBODY
                && !world.hang_next.load(Ordering::SeqCst)
            {
                world.hang_next.store(true, Ordering::SeqCst);
            }
            let victim = world.hanging.load(Ordering::SeqCst);
            if victim != NOBODY {
                let from = Instant::now();
                let old = servers[victim].lock().unwrap().take().unwrap();
                old.token.cancel();
                let _ = old.task.await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                *servers[victim].lock().unwrap() =
                    Some(start_server(victim, &base, blobs[victim].clone(), &world));
                exempt.lock().unwrap().push(Exempt {
                    server: victim,
                    from: from.into_std(),
                    to: (Instant::now() + CHECK * 2).into_std(),
                });
                killed_claimer = true;
            }
        }
        // Restart a random server every even second.
        let victim = rng.random_range(0..SERVERS);
        let from = Instant::now();
        if let Some(old) = servers[victim].lock().unwrap().take() {
            old.token.cancel();
            old.task.abort();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        *servers[victim].lock().unwrap() =
            Some(start_server(victim, &base, blobs[victim].clone(), &world));
        restarts += 1;
        exempt.lock().unwrap().push(Exempt {
            server: victim,
            from: from.into_std(),
            to: (Instant::now() + CHECK * 2).into_std(),
        });
        tokio::time::sleep(Duration::from_millis(850)).await;
    }
    let run_end = Instant::now();
    stop.cancel();
    for r in readers {
        let _ = r.await;
    }
    let _ = writer.await;
    for s in &servers {
        let taken = s.lock().unwrap().take();
        if let Some(s) = taken {
            s.token.cancel();
            let _ = s.task.await;
        }
    }

    // Publications: the earliest successful manifest write naming each version.
    let mut publications: BTreeMap<u64, std::time::Instant> = BTreeMap::new();
    for b in &blobs {
        for (v, at) in b.publications() {
            let at = at.into_std();
            publications
                .entry(v)
                .and_modify(|e| *e = (*e).min(at))
                .or_insert(at);
        }
    }
    let reads = reads.lock().unwrap().clone();
    let exempt = exempt.lock().unwrap().clone();
    // Freshness bound: one check interval plus the fetch and scheduling time on a busy
    // 2-core machine (generous on purpose; the figure itself is in the benchmark).
    let verdict = cache_common::check(
        &reads,
        &publications,
        SERVERS,
        &exempt,
        CHECK + Duration::from_millis(400),
        run_end.into_std(),
    );
    let elapsed = run_end.duration_since(t_start);
    let intervals = elapsed.as_secs_f64() / REFRESH.as_secs_f64();
    let loads = world.loads.load(Ordering::SeqCst);
    println!(
        "reads {} (strong {}), versions published {}, freshness checks {}, restarts {restarts}, blob fault windows {blob_faults}, claimer killed {killed_claimer}, source loads {loads} over {intervals:.1} intervals = {:.2}/interval",
        verdict.reads,
        verdict.strong_reads,
        publications.len(),
        verdict.freshness_checked,
        loads as f64 / intervals
    );
    verdict.assert_ok();
    assert!(killed_claimer, "the claimer-kill fault must have happened");
    assert!(
        publications.len() >= 8,
        "the writer's changes must be published: {publications:?}"
    );
    assert!(verdict.freshness_checked > 100 && verdict.strong_reads > 100);
    assert!(
        loads as f64 / intervals <= 1.2,
        "source loads per refresh interval: {loads} / {intervals:.1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_in_memory_blob() {
    let inner = blob::open(
        &format!("memory://consistency-{}", rand::random::<u32>()),
        &BTreeMap::new(),
    )
    .unwrap();
    run_checker(inner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_file_blob() {
    let dir = tempfile::tempdir().unwrap();
    let inner = blob::open(
        &format!("file://{}", dir.path().display()),
        &BTreeMap::new(),
    )
    .unwrap();
    run_checker(inner).await;
}
