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

/// The bug of issue 15: after a manifest wipe, a lagging agent republished `its version + 1`,
/// a number another agent already served with other bytes; the two disagreed for good and the
/// other agent reloaded the source at every check. A repair must publish above the highest
/// version anyone ever published (the write-once `versions/<v>` markers).
#[tokio::test(start_paused = true)]
async fn a_wipe_repaired_by_a_lagging_agent_never_reuses_a_served_version() {
    let blob = memory();
    let meter = opentelemetry::global::meter("test");
    let (loads, generation, fail): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) =
        Default::default();
    let cache = |owner: &str| {
        Cache::new(
            opts(owner),
            source(loads.clone(), generation.clone(), fail.clone()),
            blob.clone(),
            &meter,
        )
    };
    let (a, b) = (cache("a"), cache("b"));
    let (ta, tb) = (CancellationToken::new(), CancellationToken::new());
    tokio::spawn(a.clone().run(ta.clone(), || {}));
    tokio::spawn(b.clone().run(tb.clone(), || {}));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.get().unwrap().version, 1);
    // b stops (paused, partitioned); the source changes and a publishes version 2.
    tb.cancel();
    generation.store(1, ORDER);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let a2 = a.get().unwrap();
    assert_eq!((a2.version, &a2.bytes[..]), (2, &b"generation 1"[..]));
    // a stops too; the manifest is wiped and the source changes again; b comes back alone.
    ta.cancel();
    blob.delete("c/manifest.json").await.unwrap();
    generation.store(2, ORDER);
    let tb = CancellationToken::new();
    tokio::spawn(b.clone().run(tb.clone(), || {}));
    // Its repair takes a start-up check, a claim and a source load; the snapshot writes run on
    // the blocking pool, in real time, while the paused clock may jump: wait for the outcome
    // (bounded, 10 s of the test's clock) rather than for a fixed 2 s.
    for _ in 0..100 {
        if b.get().is_some_and(|s| &s.bytes[..] == b"generation 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b_now = b.get().unwrap();
    assert_eq!(&b_now.bytes[..], b"generation 2");
    assert!(
        b_now.version > 2,
        "version {} republished with other bytes than the version 2 a served",
        b_now.version
    );
    // a comes back: it converges on b's version and the source is not reloaded at every check.
    let ta = CancellationToken::new();
    tokio::spawn(a.clone().run(ta.clone(), || {}));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = loads.load(ORDER);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (sa, sb) = (a.get().unwrap(), b.get().unwrap());
    assert_eq!((sa.version, &sa.sha256), (sb.version, &sb.sha256));
    assert!(
        loads.load(ORDER) - before <= 1,
        "{} source loads in 8 s with a 10 s refresh interval",
        loads.load(ORDER) - before
    );
    ta.cancel();
    tb.cancel();
}

/// Fails every manifest write that names `version` while `armed`: a publish that never lands.
struct FailPublish {
    inner: Arc<dyn BlobStore>,
    armed: std::sync::atomic::AtomicBool,
    version: u64,
}

impl BlobStore for FailPublish {
    fn get<'a>(
        &'a self,
        key: &'a str,
        t: Option<&'a blob::Tag>,
        max: u64,
    ) -> blob::BlobFuture<'a, Fetched> {
        self.inner.get(key, t, max)
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Bytes,
        cond: PutCondition,
    ) -> blob::BlobFuture<'a, blob::PutOutcome> {
        let names = Manifest::parse(&bytes).is_ok_and(|m| m.version == self.version);
        if key.ends_with("manifest.json") && names && self.armed.load(ORDER) {
            return Box::pin(async { Err(blob::BlobError::Unavailable("injected".into())) });
        }
        self.inner.put(key, bytes, cond)
    }
    fn delete<'a>(&'a self, key: &'a str) -> blob::BlobFuture<'a, ()> {
        self.inner.delete(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> blob::BlobFuture<'a, Vec<String>> {
        self.inner.list(prefix)
    }
    fn describe(&self) -> String {
        "fail-publish".into()
    }
}

/// Old data is deleted only after the new version is published: a claimer whose publish
/// fails leaves every object the fleet may still read.
#[tokio::test(start_paused = true)]
async fn garbage_is_collected_only_after_a_successful_publish() {
    let inner = memory();
    let blob = Arc::new(FailPublish {
        inner: inner.clone(),
        armed: false.into(),
        version: 4,
    });
    let f = fleet(1, blob.clone());
    for g in 0..3 {
        f.generation.store(g, ORDER);
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    assert_eq!(f.caches[0].get().unwrap().version, 3);
    let data_before = inner.list("c/data").await.unwrap();
    assert_eq!(data_before.len(), 2, "new + previous kept: {data_before:?}");
    blob.armed.store(true, ORDER);
    f.generation.store(3, ORDER);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        f.caches[0].get().unwrap().version,
        3,
        "version 4 never published"
    );
    let data_after = inner.list("c/data").await.unwrap();
    for key in &data_before {
        assert!(
            data_after.contains(key),
            "{key} deleted by a claimer whose publish failed: {data_after:?}"
        );
    }
    // Once the publish goes through, the garbage goes.
    blob.armed.store(false, ORDER);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(f.caches[0].get().unwrap().version, 4);
    assert_eq!(inner.list("c/data").await.unwrap().len(), 2);
    f.token.cancel();
}

/// A snapshot that cannot be written is an error of kind `disk` and shows in the status until
/// a later save succeeds; the version is still served because no older snapshot is left.
#[tokio::test]
async fn a_failed_snapshot_save_is_counted_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the snapshot directory's parent should be: every save fails.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let meter = opentelemetry::global::meter("test");
    let (loads, generation, fail) = Default::default();
    let mut o = opts("disk");
    o.check_interval = Duration::from_millis(20);
    o.local_dir = Some(blocker.join("c"));
    let c = Cache::new(o, source(loads, generation, fail), memory(), &meter);
    let token = CancellationToken::new();
    tokio::spawn(c.clone().run(token.clone(), || {}));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.get().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = c.status();
    assert_eq!(st.version, Some(1));
    assert_eq!(st.local_save_ok, Some(false));
    assert!(st.errors.get("disk").is_some_and(|&n| n >= 1), "{st:?}");
    std::fs::remove_file(&blocker).unwrap();
    while c.status().local_save_ok != Some(true) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.status().local_save_ok, Some(true));
    assert_eq!(disk::load(&blocker.join("c")).unwrap().unwrap().version, 1);
    token.cancel();
}

/// A reload hands the memory tier over: the new instance serves at once, from memory, even
/// when the disk snapshot is gone and the blob tier is unreachable.
#[tokio::test(start_paused = true)]
async fn adopt_keeps_the_memory_tier() {
    let f = fleet(1, memory());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old = &f.caches[0];
    let meter = opentelemetry::global::meter("test");
    let down = ChaosBlob::new(memory());
    down.set_error_rate(1.0);
    let new = Cache::new(
        opts("s0"),
        source(f.loads.clone(), f.generation.clone(), f.fail.clone()),
        down,
        &meter,
    );
    new.adopt(old);
    assert_eq!(new.get().unwrap().sha256, old.get().unwrap().sha256);
    let token = CancellationToken::new();
    tokio::spawn(new.clone().run(token.clone(), || {}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(new.get().unwrap().version, 1);
    token.cancel();
    f.token.cancel();
}

/// A strong read with no manifest in the blob tier fails instead of answering from local
/// state: nothing confirms that the local version is the newest.
#[tokio::test]
async fn a_strong_read_without_a_manifest_fails() {
    let dir = tempfile::tempdir().unwrap();
    disk::save(dir.path(), &Snapshot::new(7, Bytes::from_static(b"local"))).unwrap();
    let meter = opentelemetry::global::meter("test");
    let (loads, generation, fail) = Default::default();
    let mut o = opts("strong");
    o.local_dir = Some(dir.path().to_path_buf());
    let c = Cache::new(o, source(loads, generation, fail), memory(), &meter);
    c.load_local().await;
    assert_eq!(c.get().unwrap().version, 7, "eventual reads serve the disk");
    assert!(matches!(c.get_strong().await, Err(CacheError::NoManifest)));
}

/// A manifest rolled back to an older copy (a backup restored): strong reads still return
/// the highest version published, found through the version markers.
#[tokio::test(start_paused = true)]
async fn a_strong_read_sees_through_a_rolled_back_manifest() {
    let blob = memory();
    let f = fleet(1, blob.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Ok(Fetched::Found { bytes: old, .. }) = blob.get("c/manifest.json", None, 65536).await
    else {
        panic!()
    };
    f.generation.store(1, ORDER);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(f.caches[0].get().unwrap().version, 2);
    f.token.cancel();
    blob.put("c/manifest.json", old, PutCondition::Overwrite)
        .await
        .unwrap();
    // A fresh agent that only ever saw version 1's manifest.
    let meter = opentelemetry::global::meter("test");
    let fresh = Cache::new(
        opts("fresh"),
        source(f.loads.clone(), f.generation.clone(), f.fail.clone()),
        blob.clone(),
        &meter,
    );
    let s = fresh.get_strong().await.unwrap();
    assert_eq!((s.version, &s.bytes[..]), (2, &b"generation 1"[..]));
    // Wiped: the markers still answer.
    blob.delete("c/manifest.json").await.unwrap();
    assert_eq!(fresh.get_strong().await.unwrap().version, 2);
}
