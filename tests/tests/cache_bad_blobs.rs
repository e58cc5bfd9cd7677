//! Bad blobs against a real agent on a `file://` blob tier: a data object with the wrong hash,
//! a truncated one, one larger than `max_size`, a manifest naming missing data, a garbage
//! manifest and one of an unknown format. Each time the last good version stays served (same
//! bytes), the error is counted under its kind, strong reads answer 503, and nothing panics;
//! once the source is back the agent repairs the blob tier and serves a newer version.

use lookout_cache::blob::{self, PutCondition};
use lookout_e2e::Agent;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replace an object through the `file://` backend itself (under its lock, so the write
/// cannot slip into the middle of the agent's compare-and-swap).
fn put(path: &Path, bytes: &[u8]) {
    let dir = path.parent().unwrap().parent().unwrap();
    let root = if dir.ends_with("fleet") {
        dir.parent().unwrap()
    } else {
        dir
    };
    let key = path
        .strip_prefix(root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let store = blob::open(&format!("file://{}", root.display()), &Default::default()).unwrap();
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    lookout_e2e::block_on(async move {
        store
            .put(&key, bytes, PutCondition::Overwrite)
            .await
            .unwrap();
    });
}

fn manifest(version: u64, sha: &str, size: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "format": 1, "version": version, "data": {"sha256": sha, "size": size},
        "epoch": 1000 + version, "failures": 0, "claim": null, "writer": "test"
    }))
    .unwrap()
}

fn served(agent: &Agent) -> Option<(String, String)> {
    lookout_e2e::block_on(async {
        let r = lookout_e2e::client()
            .get(agent.url("/v1/cache/fleet"))
            .send()
            .await
            .ok()?;
        let v = r
            .headers()
            .get("x-lookout-version")?
            .to_str()
            .ok()?
            .to_string();
        Some((v, r.text().await.ok()?))
    })
}

fn errors(agent: &Agent, kind: &str) -> f64 {
    agent
        .metric(
            "lookout_cache_errors_total",
            &[("cache", "fleet"), ("kind", kind)],
        )
        .unwrap_or(0.0)
}

#[test]
fn bad_blobs_keep_the_last_good_version() {
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("blob");
    let doc = work.path().join("doc.json");
    std::fs::write(&doc, b"{\"good\": 1}").unwrap();
    let agent = Agent::start(&format!(
        "[[cache]]\nname = \"fleet\"\nsource = {{ file = \"{}\" }}\nblob = \"file://{}\"\ncheck_interval = \"100ms\"\nrefresh_interval = \"1h\"\nclaim_ttl = \"1s\"\nmax_size = 1000\n",
        doc.display(),
        blob.display()
    ));
    agent.wait_ready(Duration::from_secs(30));
    let good = lookout_e2e::wait_for("version 1", Duration::from_secs(10), || {
        served(&agent).filter(|(v, _)| v == "1")
    });
    assert_eq!(good.1, "{\"good\": 1}");
    // The HTTP contract: ETag = version, If-None-Match answers 304, staleness header present.
    let (status, headers) = lookout_e2e::block_on(async {
        let r = lookout_e2e::client()
            .get(agent.url("/v1/cache/fleet"))
            .header("if-none-match", "\"1\"")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.headers().clone())
    });
    assert_eq!(status, 304);
    assert_eq!(headers.get("etag").unwrap(), "\"1\"");
    assert!(headers.get("x-lookout-staleness-seconds").is_some());
    assert_eq!(agent.get("/v1/cache/nope").unwrap().0, 404);
    // The source goes away, so the agent cannot repair what we break.
    std::fs::remove_file(&doc).unwrap();

    let manifest_path = blob.join("fleet/manifest.json");
    let next = b"{\"good\": 2}".to_vec();
    let next_sha = hex(&Sha256::digest(&next));
    let data_path = blob.join("fleet/data").join(&next_sha);
    let mut version = 1;
    type BreakIt<'a> = Box<dyn Fn(u64) + 'a>;
    let cases: Vec<(&str, &str, BreakIt)> = vec![
        (
            "wrong hash",
            "corrupt",
            Box::new(|v| {
                put(&data_path, b"{\"evil\": 2}");
                put(&manifest_path, &manifest(v, &next_sha, next.len() as u64));
            }),
        ),
        (
            "truncated",
            "corrupt",
            Box::new(|v| {
                put(&data_path, &next[..next.len() - 3]);
                put(&manifest_path, &manifest(v, &next_sha, next.len() as u64));
            }),
        ),
        (
            "oversized",
            "too_large",
            Box::new(|v| {
                let big = vec![b'x'; 5000];
                let sha = hex(&Sha256::digest(&big));
                put(&blob.join("fleet/data").join(&sha), &big);
                put(&manifest_path, &manifest(v, &sha, big.len() as u64));
            }),
        ),
        (
            "missing data",
            "missing_data",
            Box::new(|v| {
                put(&manifest_path, &manifest(v, &"0".repeat(64), 10));
            }),
        ),
        (
            "garbage manifest",
            "corrupt",
            Box::new(|_| {
                put(&manifest_path, b"\x00\x01 not json at all");
            }),
        ),
        (
            "unknown format",
            "format",
            Box::new(|v| {
                put(
                    &manifest_path,
                    format!("{{\"format\": 99, \"version\": {v}}}").as_bytes(),
                );
            }),
        ),
    ];
    for (what, kind, break_it) in &cases {
        version += 1;
        let before = errors(&agent, kind);
        break_it(version);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while errors(&agent, kind) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: no {kind} error counted; agent log:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let now = served(&agent).expect("still serving");
        assert_eq!(now, good, "{what}: the last good version and bytes stay");
        let strong = agent.get("/v1/cache/fleet?consistency=strong").unwrap();
        if *what == "garbage manifest" {
            // The agent may already have replaced the garbage with a manifest of what it
            // serves (no source load needed); then a strong read confirms the good version.
            assert!(
                strong.0 == 503 || (strong.0 == 200 && strong.1 == good.1),
                "{what}: strong read {strong:?}"
            );
        } else {
            assert_eq!(strong.0, 503, "{what}: a strong read cannot be confirmed");
        }
    }
    let findings = agent.get("/api/v1/findings").unwrap().1;
    for kind in ["corrupt", "too_large", "missing_data", "format"] {
        assert!(
            findings.contains(&format!("\"kind\":\"{kind}\"")),
            "a {kind} finding is reported: {findings}"
        );
    }

    // Source back and a readable manifest naming missing data: the agent repairs the tier.
    std::fs::write(&doc, b"{\"good\": 3}").unwrap();
    put(&manifest_path, &manifest(version, &"0".repeat(64), 10));
    let repaired = lookout_e2e::wait_for("the repaired version", Duration::from_secs(15), || {
        served(&agent).filter(|(_, body)| body == "{\"good\": 3}")
    });
    assert!(
        repaired.0.parse::<u64>().unwrap() > version,
        "republished above the bad version"
    );
    assert_eq!(
        agent.get("/v1/cache/fleet?consistency=strong").unwrap().0,
        200
    );
    assert!(!agent.log().contains("panicked"));
}
