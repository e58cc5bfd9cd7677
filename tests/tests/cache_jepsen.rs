//! A Jepsen-style history check over three real `lookout` agents sharing one blob tier (the
//! `file://` backend, then a private Azurite), with a nemesis: the agent holding the refresh
//! claim stopped (SIGSTOP) past its claim TTL and resumed, the manifest wiped and later
//! restored from a backup (a rollback), a lagging agent left alone to repair a wiped manifest
//! (the others paused), a blob outage (the `file://` root made unusable /
//! Azurite stopped), and SIGKILL restarts on the agents' data dirs. The source document
//! changes all the time.
//!
//! Every HTTP read (eventual and `?consistency=strong`) records (agent, start, end, version,
//! content hash). Checked: same version ⇒ same hash, on every agent, for the whole run;
//! versions monotonic per agent across its restarts; a strong read returns at least the
//! version of any read that completed before it started. Also: the agents converge once the
//! nemesis stops, and the source is loaded ≤ 1.05 times per refresh interval over the run.

mod cache_common;

use cache_common::{Azurite, Read};
use lookout_cache::blob::{self, BlobStore, Fetched, PutCondition};
use lookout_cache::manifest::Manifest;
use lookout_e2e::Agent;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AGENTS: usize = 3;
const REFRESH: Duration = Duration::from_secs(1);
const CLAIM_TTL: Duration = Duration::from_secs(1);
/// How long the nemesis runs (each backend).
const RUN: Duration = Duration::from_secs(45);

fn write_doc(work: &Path, generation: u64) {
    let tmp = work.join("doc.tmp");
    std::fs::write(&tmp, format!("generation {generation}\n")).unwrap();
    std::fs::rename(tmp, work.join("doc")).unwrap();
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child process of this test.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// One read: version and content hash, or `None` when the agent did not answer 200.
async fn read_once(client: &reqwest::Client, port: u16, strong: bool) -> Option<(u64, String)> {
    let q = if strong { "?consistency=strong" } else { "" };
    let r = client
        .get(format!("http://127.0.0.1:{port}/v1/cache/fleet{q}"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let v = r
        .headers()
        .get("x-lookout-version")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let body = r.bytes().await.ok()?;
    let sha: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some((v, sha))
}

async fn manifest(watch: &Arc<dyn BlobStore>) -> Option<(bytes::Bytes, Manifest)> {
    match watch.get("fleet/manifest.json", None, 65536).await {
        Ok(Fetched::Found { bytes, .. }) => {
            let m = Manifest::parse(&bytes).ok()?;
            Some((bytes, m))
        }
        _ => None,
    }
}

/// How the nemesis makes the blob tier unavailable, and brings it back.
enum Outage {
    /// The `file://` root replaced by a regular file (every operation fails: ENOTDIR).
    FileRoot(PathBuf),
    /// The Azurite process stopped (requests hang until the agents' timeouts).
    Process(u32),
}

impl Outage {
    fn start(&self) {
        match self {
            Outage::FileRoot(root) => {
                std::fs::rename(root, root.with_extension("away")).unwrap();
                std::fs::write(root, "outage").unwrap();
            }
            Outage::Process(pid) => signal(*pid, libc::SIGSTOP),
        }
    }

    fn end(&self) {
        match self {
            Outage::FileRoot(root) => {
                std::fs::remove_file(root).unwrap();
                std::fs::rename(root.with_extension("away"), root).unwrap();
            }
            Outage::Process(pid) => signal(*pid, libc::SIGCONT),
        }
    }
}

#[derive(Default, Debug)]
struct Faults {
    paused_claimer: usize,
    lagging_repairs: usize,
    wipes: usize,
    rollbacks: usize,
    outages: usize,
    kills: usize,
}

async fn run(blob_url: String, options: String, watch: Arc<dyn BlobStore>, outage: Outage) {
    let work = tempfile::tempdir().unwrap();
    let mut generation = 1;
    write_doc(work.path(), generation);
    let mut agents: Vec<Agent> = (0..AGENTS)
        .map(|_| {
            Agent::start_with(
                &cache_common::agents_cache_toml(work.path(), &blob_url, &options),
                "1s",
                &[(
                    "LOOKOUT_LOG",
                    "info,lookout_agent=debug,lookout_cache=debug",
                )],
            )
        })
        .collect();
    for a in &agents {
        cache_common::wait_ready(a.port).await;
    }
    let ports: Vec<u16> = agents.iter().map(|a| a.port).collect();
    type History = Vec<(Read, String)>;
    let history = Arc::new(Mutex::new(History::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let t_start = Instant::now();
    println!(
        "run starts at {:?} (unix)",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    );
    let loads_before = cache_common::source_loads(work.path());

    let mut readers = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let (history, stop) = (history.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            // Short timeout: reads of a stopped agent give up and come back.
            lookout_common::install_tls_provider();
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let strong = n.is_multiple_of(3);
                let start = Instant::now();
                if let Some((version, sha)) = read_once(&client, port, strong).await {
                    let read = Read {
                        server: i,
                        start,
                        end: Instant::now(),
                        version,
                        strong,
                    };
                    history.lock().unwrap().push((read, sha));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let mut faults = Faults::default();
    let mut step = 0;
    while t_start.elapsed() < RUN {
        step += 1;
        generation += 1;
        write_doc(work.path(), generation);
        match step % 5 {
            // The bug of issue 15: an agent paused while the others move on, then left alone
            // (the others paused) with the manifest wiped: it repairs, and must publish above
            // the highest version the others served, not `its version + 1`.
            0 => {
                let lag = rand::random_range(0..AGENTS);
                signal(agents[lag].child.id(), libc::SIGSTOP);
                let before = manifest(&watch).await.map(|(_, m)| m.version).unwrap_or(0);
                // Long enough for the others to publish a new version.
                let deadline = Instant::now() + Duration::from_secs(4);
                while manifest(&watch).await.map(|(_, m)| m.version).unwrap_or(0) <= before
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let others: Vec<u32> = (0..AGENTS)
                    .filter(|&i| i != lag)
                    .map(|i| agents[i].child.id())
                    .collect();
                for &p in &others {
                    signal(p, libc::SIGSTOP);
                }
                watch.delete("fleet/manifest.json").await.unwrap();
                generation += 1;
                write_doc(work.path(), generation);
                signal(agents[lag].child.id(), libc::SIGCONT);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                for &p in &others {
                    signal(p, libc::SIGCONT);
                }
                faults.lagging_repairs += 1;
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            // Stop the claimer while it holds the claim, past its TTL, then resume it.
            1 => {
                let deadline = Instant::now() + Duration::from_secs(4);
                while Instant::now() < deadline {
                    let owner = manifest(&watch)
                        .await
                        .and_then(|(_, m)| m.claim)
                        .map(|c| c.owner);
                    let pid: Option<u32> = owner.and_then(|o| o.split('/').nth(1)?.parse().ok());
                    if let Some(a) = pid.and_then(|p| agents.iter().find(|a| a.child.id() == p)) {
                        signal(a.child.id(), libc::SIGSTOP);
                        // The source changes while it is stopped; the others take over.
                        tokio::time::sleep(CLAIM_TTL).await;
                        generation += 1;
                        write_doc(work.path(), generation);
                        tokio::time::sleep(CLAIM_TTL * 2).await;
                        signal(a.child.id(), libc::SIGCONT);
                        faults.paused_claimer += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            // Wipe the manifest; later restore the backup taken before (a rollback).
            2 => {
                let backup = manifest(&watch).await;
                watch.delete("fleet/manifest.json").await.unwrap();
                faults.wipes += 1;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                generation += 1;
                write_doc(work.path(), generation);
                tokio::time::sleep(Duration::from_millis(1000)).await;
                if let Some((bytes, _)) = backup {
                    watch
                        .put("fleet/manifest.json", bytes, PutCondition::Overwrite)
                        .await
                        .unwrap();
                    faults.rollbacks += 1;
                }
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            // The blob tier unavailable for 2 s.
            3 => {
                outage.start();
                tokio::time::sleep(Duration::from_millis(1000)).await;
                generation += 1;
                write_doc(work.path(), generation);
                tokio::time::sleep(Duration::from_millis(1000)).await;
                outage.end();
                faults.outages += 1;
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            // SIGKILL an agent and restart it on its data dir.
            _ => {
                let i = rand::random_range(0..AGENTS);
                cache_common::restart(
                    &mut agents[i],
                    "info,lookout_agent=debug,lookout_cache=debug",
                );
                faults.kills += 1;
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        }
    }
    let nemesis_end = Instant::now();
    let loads_total = cache_common::source_loads(work.path()) - loads_before;
    let intervals = nemesis_end.duration_since(t_start).as_secs_f64() / REFRESH.as_secs_f64();

    // Quiet: every agent converges on the manifest's version and bytes.
    let client = lookout_e2e::client();
    let converged = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let m = manifest(&watch).await.map(|(_, m)| m);
            let mut served = Vec::new();
            for &p in &ports {
                served.push(read_once(&client, p, false).await);
            }
            let same = m.as_ref().is_some_and(|m| {
                served.iter().all(|s| {
                    s.as_ref().is_some_and(|(v, sha)| {
                        *v == m.version && m.data.as_ref().is_some_and(|d| &d.sha256 == sha)
                    })
                })
            });
            if same || Instant::now() > deadline {
                break (same, m.map(|m| m.version), served);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    stop.cancel();
    for r in readers {
        let _ = r.await;
    }
    let history = history.lock().unwrap().clone();
    let reads: Vec<Read> = history.iter().map(|(r, _)| r.clone()).collect();
    let hashes: Vec<(usize, u64, String)> = history
        .iter()
        .map(|(r, sha)| (r.server, r.version, sha.clone()))
        .collect();
    let mut verdict = cache_common::check(
        &reads,
        &BTreeMap::new(),
        AGENTS,
        &[],
        REFRESH,
        Instant::now(),
    );
    verdict
        .violations
        .extend(cache_common::same_version_same_bytes(&hashes));
    let versions: std::collections::BTreeSet<u64> = reads.iter().map(|r| r.version).collect();
    println!(
        "{blob_url}: reads {} (strong {}), versions served {}, faults {faults:?}, violations {}, source loads {loads_total} over {intervals:.1} intervals = {:.3}/interval, converged {} at version {:?}",
        verdict.reads,
        verdict.strong_reads,
        versions.len(),
        verdict.violations.len(),
        loads_total as f64 / intervals,
        converged.0,
        converged.1,
    );
    if !verdict.violations.is_empty() || std::env::var("JEPSEN_KEEP").is_ok() {
        for (i, a) in agents.iter().enumerate() {
            let keep = std::env::temp_dir().join(format!("jepsen-agent-{i}.log"));
            let _ = std::fs::copy(&a.log_path, &keep);
            println!(
                "agent {i} (pid {}) log kept at {}",
                a.child.id(),
                keep.display()
            );
        }
    }
    for (i, a) in agents.iter().enumerate() {
        assert!(
            !a.log().contains("panicked"),
            "agent {i} panicked:\n{}",
            a.log()
        );
    }
    verdict.assert_ok();
    assert!(
        converged.0,
        "agents did not converge on the manifest (version {:?}): {:?}",
        converged.1, converged.2
    );
    assert!(
        faults.paused_claimer >= 1
            && faults.lagging_repairs >= 1
            && faults.wipes >= 1
            && faults.rollbacks >= 1
            && faults.outages >= 1
            && faults.kills >= 1,
        "every fault must have happened: {faults:?}"
    );
    assert!(verdict.strong_reads >= 100 && versions.len() >= 10);
    assert!(
        loads_total as f64 / intervals <= 1.05,
        "source loads per refresh interval: {loads_total} / {intervals:.1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_on_a_file_blob() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blob");
    std::fs::create_dir(&root).unwrap();
    let url = format!("file://{}", root.display());
    let watch = blob::open(&url, &BTreeMap::new()).unwrap();
    run(url, "{}".into(), watch, Outage::FileRoot(root)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_on_azurite() {
    let az = Azurite::start();
    az.create_container("jepsen").await;
    let url = "az://jepsen/fleet-test".to_string();
    let watch = blob::open(&url, &az.options()).unwrap();
    let pid = az.pid();
    run(url, az.options_toml(), watch, Outage::Process(pid)).await;
    // Never leave Azurite stopped (its Drop kills it either way).
    signal(pid, libc::SIGCONT);
}
