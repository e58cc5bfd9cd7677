//! The cache's Azure protocol against a private Azurite: compare-and-swap conflicts between
//! concurrent publishers, the If-None-Match (304) path, and a corrupt data object that must be
//! rejected by hash while the last good version keeps being served.

mod cache_common;

use bytes::Bytes;
use cache_common::Azurite;
use lookout_cache::blob::{self, Fetched, PutCondition, PutOutcome};
use lookout_cache::chaos::ChaosBlob;
use lookout_cache::source::{self, Source};
use lookout_cache::{Cache, CacheOptions, new_owner_id};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn opts(name: &str, dir: &std::path::Path) -> CacheOptions {
    CacheOptions {
        name: name.into(),
        check_interval: Duration::from_millis(100),
        refresh_interval: Duration::from_secs(30),
        claim_ttl: Duration::from_secs(2),
        max_size: 1 << 20,
        source_timeout: Duration::from_secs(5),
        local_dir: Some(dir.to_path_buf()),
        owner: new_owner_id("test"),
    }
}

fn counting_source(loads: Arc<AtomicU64>, body: &'static [u8]) -> Arc<dyn Source> {
    source::from_fn(move || {
        loads.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Bytes::from_static(body))
        })
    })
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_protocol_conflicts_304_and_corrupt_data() {
    let az = Azurite::start();
    az.create_container("lookout").await;
    let store = blob::open("az://lookout/proto", &az.options()).expect("open az store");

    // Raw protocol: create-only and compare-and-swap with one winner among 16 writers.
    let key = "raw/manifest.json";
    let PutOutcome::Written(t0) = store
        .put(key, Bytes::from_static(b"zero"), PutCondition::Create)
        .await
        .unwrap()
    else {
        panic!("first create must win")
    };
    assert!(matches!(
        store
            .put(key, Bytes::from_static(b"again"), PutCondition::Create)
            .await
            .unwrap(),
        PutOutcome::Conflict
    ));
    let mut writers = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let t0 = t0.clone();
        writers.push(tokio::spawn(async move {
            store
                .put(
                    key,
                    Bytes::from(format!("writer {i}")),
                    PutCondition::Match(t0),
                )
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for w in writers {
        if matches!(w.await.unwrap(), PutOutcome::Written(_)) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent compare-and-swap wins");
    let Fetched::Found { tag, .. } = store.get(key, None, 1024).await.unwrap() else {
        panic!("manifest must exist")
    };
    assert!(matches!(
        store.get(key, Some(&tag), 1024).await.unwrap(),
        Fetched::NotModified
    ));

    // Eight caches racing to publish the first version: one source load, everyone serves it.
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let loads = Arc::new(AtomicU64::new(0));
    let chaos = ChaosBlob::new(store.clone());
    let token = tokio_util::sync::CancellationToken::new();
    let mut caches = Vec::new();
    let meter = opentelemetry::global::meter("test");
    for d in &dirs {
        let c = Cache::new(
            opts("doc", &d.path().join("cache")),
            counting_source(loads.clone(), b"version one"),
            chaos.clone(),
            &meter,
        );
        tokio::spawn(c.clone().run(token.clone(), || {}));
        caches.push(c);
    }
    wait_until("every cache serves v1", || {
        caches
            .iter()
            .all(|c| c.get().is_some_and(|s| s.version == 1))
    })
    .await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one source load for the fleet"
    );
    let before = chaos.stats();
    assert!(
        before.conflicts >= 1,
        "the other publishers must have lost a compare-and-swap: {before:?}"
    );

    // Strong reads on the 304 path: no data moves.
    let c0 = &caches[0];
    let mut lat = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let s = c0.get_strong().await.expect("strong read");
        lat.push(t.elapsed());
        assert_eq!(s.version, 1);
    }
    lat.sort();
    println!(
        "get_strong on the 304 path against Azurite: p50 {:?}, p90 {:?}",
        lat[25], lat[45]
    );

    // A corrupt data object under a new manifest: rejected by hash, v1 stays, errors count.
    token.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let good = b"version two".to_vec();
    let sha = {
        use sha2::Digest;
        hex_lower(&sha2::Sha256::digest(&good))
    };
    store
        .put(
            &format!("doc/data/{sha}"),
            Bytes::from_static(b"version twX"),
            PutCondition::Overwrite,
        )
        .await
        .unwrap();
    let Fetched::Found { bytes, tag } = store.get("doc/manifest.json", None, 65536).await.unwrap()
    else {
        panic!()
    };
    let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    m["version"] = 2.into();
    m["data"] = serde_json::json!({"sha256": sha, "size": good.len()});
    assert!(matches!(
        store
            .put(
                "doc/manifest.json",
                Bytes::from(serde_json::to_vec(&m).unwrap()),
                PutCondition::Match(tag)
            )
            .await
            .unwrap(),
        PutOutcome::Written(_)
    ));
    // A cache whose source is down (so it cannot repair), restarted on its local snapshot.
    let failing = source::from_fn(|| Box::pin(async { Err("source down".to_string()) }));
    let c = Cache::new(
        opts("doc", &dirs[0].path().join("cache")),
        failing,
        store.clone(),
        &meter,
    );
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(c.clone().run(token.clone(), || {}));
    wait_until("a corrupt error to be counted", || {
        c.status().errors.get("corrupt").copied().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(c.get().unwrap().version, 1, "the last good version stays");
    assert_eq!(&c.get().unwrap().bytes[..], b"version one");
    let strong = c.get_strong().await;
    assert!(
        strong.is_err(),
        "a strong read must fail rather than return less than the blob's version: {strong:?}"
    );
    token.cancel();

    // Blob tier down at start: an agent restarting on its local snapshot serves it at once
    // (stale), strong reads fail, and blob_up says so.
    drop(az);
    let failing = source::from_fn(|| Box::pin(async { Err("source down".to_string()) }));
    let c = Cache::new(
        opts("doc", &dirs[1].path().join("cache")),
        failing,
        store.clone(),
        &meter,
    );
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(c.clone().run(token.clone(), || {}));
    wait_until("the local snapshot served", || c.get().is_some()).await;
    assert_eq!(&c.get().unwrap().bytes[..], b"version one");
    wait_until("blob_up = 0", || c.status().blob_up == Some(false)).await;
    assert!(
        c.get_strong().await.is_err(),
        "no strong read without the blob tier"
    );
    let stale = c.staleness();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.staleness() > stale,
        "staleness grows while the blob tier is down"
    );
    token.cancel();
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
