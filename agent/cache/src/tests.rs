//! Protocol unit tests on an in-memory blob tier under tokio's paused clock (minutes of
//! protocol time in milliseconds): one loader per interval, claim expiry by the observer's own
//! clock, a blob that went backwards, and the fleet-wide backoff of a failing source.

use super::blob::{self, BlobStore, Fetched, PutCondition};
use super::chaos::ChaosBlob;
use super::manifest::{Claim, Manifest};
use super::source::{self, Source};
use super::*;
use std::sync::atomic::AtomicU64;

fn memory() -> Arc<dyn BlobStore> {
    blob::open(
        &format!("memory://unit-{}", rand::random::<u64>()),
        &Default::default(),
    )
    .unwrap()
}

fn opts(owner: &str) -> CacheOptions {
    CacheOptions {
        name: "c".into(),
        check_interval: Duration::from_secs(1),
        refresh_interval: Duration::from_secs(10),
        claim_ttl: Duration::from_secs(5),
        max_size: 1 << 20,
        source_timeout: Duration::from_secs(3),
        local_dir: None,
        owner: owner.into(),
    }
}

/// A source that counts its loads and returns `generation` (or fails while `fail` is set).
fn source(
    loads: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    fail: Arc<AtomicU64>,
) -> Arc<dyn Source> {
    source::from_fn(move || {
        loads.fetch_add(1, ORDER);
        let g = generation.load(ORDER);
        let f = fail.load(ORDER);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if f > 0 {
                Err("down".to_string())
            } else {
                Ok(Bytes::from(format!("generation {g}")))
            }
        })
    })
}

struct Fleet {
    caches: Vec<Arc<Cache>>,
    loads: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    fail: Arc<AtomicU64>,
    token: CancellationToken,
    _dir: tempfile::TempDir,
}

fn fleet(n: usize, blob: Arc<dyn BlobStore>) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let meter = opentelemetry::global::meter("test");
    let (loads, generation, fail) = Default::default();
    let token = CancellationToken::new();
    let caches = (0..n)
        .map(|i| {
            let c = Cache::new(
                opts(&format!("s{i}")),
                source(
                    Arc::clone(&loads),
                    Arc::clone(&generation),
                    Arc::clone(&fail),
                ),
                blob.clone(),
                &meter,
            );
            tokio::spawn(c.clone().run(token.clone(), || {}));
            c
        })
        .collect();
    Fleet {
        caches,
        loads,
        generation,
        fail,
        token,
        _dir: dir,
    }
}

#[tokio::test(start_paused = true)]
async fn one_load_per_interval_and_changes_propagate() {
    let f = fleet(8, memory());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        f.caches
            .iter()
            .all(|c| c.get().is_some_and(|s| s.version == 1))
    );
    let before = f.loads.load(ORDER);
    tokio::time::sleep(Duration::from_secs(100)).await;
    let loads = f.loads.load(ORDER) - before;
    assert!((8..=11).contains(&loads), "{loads} loads in 10 intervals");
    // Unchanged content keeps its version.
    assert!(f.caches.iter().all(|c| c.get().unwrap().version == 1));
    f.generation.store(1, ORDER);
    tokio::time::sleep(Duration::from_secs(13)).await;
    for c in &f.caches {
        let s = c.get().unwrap();
        assert_eq!((s.version, &s.bytes[..]), (2, &b"generation 1"[..]));
    }
    f.token.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_dead_claimers_claim_expires_by_the_observers_clock() {
    let blob = memory();
    let mut m = Manifest::empty("dead");
    m.claim = Some(Claim {
        owner: "dead".into(),
        nonce: "n1".into(),
    });
    blob.put("c/manifest.json", m.to_bytes(), PutCondition::Create)
        .await
        .unwrap();
    let f = fleet(3, blob);
    // Honoured for claim_ttl (5 s) after it was first seen.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(f.loads.load(ORDER), 0);
    assert!(f.caches.iter().all(|c| c.get().is_none()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(f.loads.load(ORDER), 1, "exactly one agent took over");
    assert!(
        f.caches
            .iter()
            .all(|c| c.get().is_some_and(|s| s.version == 1))
    );
    f.token.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_blob_gone_backwards_is_republished_above() {
    let blob = memory();
    let f = fleet(2, blob.clone());
    f.generation.store(1, ORDER);
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.generation.store(2, ORDER);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(f.caches.iter().all(|c| c.get().unwrap().version == 2));
    // Somebody restores an old, empty manifest.
    blob.put(
        "c/manifest.json",
        Manifest::empty("restore").to_bytes(),
        PutCondition::Overwrite,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(f.caches.iter().all(|c| c.get().unwrap().version >= 2));
    let Ok(Fetched::Found { bytes, .. }) = blob.get("c/manifest.json", None, 65536).await else {
        panic!()
    };
    let m = Manifest::parse(&bytes).unwrap();
    assert!(
        m.version >= 2,
        "republished at or above what was served: {m:?}"
    );
    f.token.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_failing_source_is_retried_with_fleet_wide_backoff() {
    let chaos = ChaosBlob::new(memory());
    let f = fleet(10, chaos.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.fail.store(1, ORDER);
    let before = f.loads.load(ORDER);
    tokio::time::sleep(Duration::from_secs(100)).await;
    let loads = f.loads.load(ORDER) - before;
    // Retries at 2.5 s, 5 s, then every 10 s: about 12 in 100 s for the whole fleet of 10.
    assert!(
        loads <= 14,
        "{loads} loads of a failing source in 10 intervals"
    );
    assert!(f.caches.iter().all(|c| c.get().unwrap().version == 1));
    f.fail.store(0, ORDER);
    f.generation.store(5, ORDER);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(f.caches.iter().all(|c| c.get().unwrap().version == 2));
    f.token.cancel();
}
