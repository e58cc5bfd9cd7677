//! The consistency checker against real `lookout` processes: three agents share one blob tier
//! (the `file://` backend, then a private Azurite), their source is a command reading a file a
//! writer keeps changing, and faults are injected — source errors, agents killed with SIGKILL
//! and restarted on their data dirs, and the agent holding the refresh claim killed in the
//! middle of its source load. Every HTTP read (eventual and `?consistency=strong`) is recorded
//! with start and end on the test's monotonic clock and checked like the in-process fleet.

mod cache_common;

use cache_common::{Azurite, Exempt, Read};
use lookout_cache::blob::{self, BlobStore, Fetched};
use lookout_cache::manifest::Manifest;
use lookout_e2e::Agent;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AGENTS: usize = 3;
const CHECK: Duration = Duration::from_millis(200);
const REFRESH: Duration = Duration::from_secs(1);
const RUN: Duration = Duration::from_secs(16);

fn write_doc(work: &Path, generation: u64) {
    let tmp = work.join("doc.tmp");
    let mut body = format!("generation {generation}\n").into_bytes();
    body.resize(2048, b'.');
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(tmp, work.join("doc")).unwrap();
}

async fn read_once(client: &reqwest::Client, port: u16, strong: bool) -> Option<u64> {
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
    let etag = r.headers().get("etag")?.to_str().ok()?.to_string();
    let body = r.bytes().await.ok()?;
    // The body is the document of that version: it names a generation, and the ETag agrees.
    assert!(
        body.starts_with(b"generation "),
        "served bytes are not a document"
    );
    // ETag = the content hash (a strong validator of exactly these bytes).
    let sha: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(etag, format!("\"{sha}\""));
    Some(v)
}

async fn run_agents(blob_url: String, options: String, watch: Arc<dyn BlobStore>) {
    let work = tempfile::tempdir().unwrap();
    write_doc(work.path(), 1);
    let mut agents: Vec<Agent> = (0..AGENTS)
        .map(|_| {
            Agent::start(&cache_common::agents_cache_toml(
                work.path(),
                &blob_url,
                &options,
            ))
        })
        .collect();
    for a in &agents {
        cache_common::wait_ready(a.port).await;
    }
    let ports: Vec<u16> = agents.iter().map(|a| a.port).collect();
    let reads = Arc::new(Mutex::new(Vec::<Read>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let t_start = Instant::now();
    let loads_before = cache_common::source_loads(work.path());

    let mut tasks = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let reads = reads.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = lookout_e2e::client();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let strong = n.is_multiple_of(4);
                let start = Instant::now();
                let v = read_once(&client, port, strong).await;
                let end = Instant::now();
                if let Some(version) = v {
                    reads.lock().unwrap().push(Read {
                        server: i,
                        start,
                        end,
                        version,
                        strong,
                    });
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }));
    }
    // Publication times: the test watches the manifest every 20 ms.
    let publications = Arc::new(Mutex::new(BTreeMap::<u64, Instant>::new()));
    let claims = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let publications = publications.clone();
        let claims = claims.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(Fetched::Found { bytes, .. }) =
                    watch.get("fleet/manifest.json", None, 65536).await
                    && let Ok(m) = Manifest::parse(&bytes)
                {
                    publications
                        .lock()
                        .unwrap()
                        .entry(m.version)
                        .or_insert_with(Instant::now);
                    if let Some(c) = m.claim {
                        claims.lock().unwrap().push(c.owner);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let mut exempt = Vec::new();
    let mut generation = 1;
    let mut killed_claimer = false;
    let mut restarts = 0;
    let mut step = 0;
    while t_start.elapsed() < RUN {
        step += 1;
        generation += 1;
        write_doc(work.path(), generation);
        match step % 4 {
            // Source down for ~1 s.
            1 => {
                std::fs::write(work.path().join("fail"), b"").unwrap();
                tokio::time::sleep(Duration::from_millis(1000)).await;
                let _ = std::fs::remove_file(work.path().join("fail"));
            }
            // SIGKILL a random agent and restart it on its data dir.
            2 => {
                let i = rand::random_range(0..AGENTS);
                let from = Instant::now();
                cache_common::restart(&mut agents[i], "info,lookout_agent=debug");
                restarts += 1;
                tokio::time::sleep(Duration::from_millis(1000)).await;
                exempt.push(Exempt {
                    server: i,
                    from,
                    to: Instant::now() + Duration::from_secs(1),
                });
            }
            // Kill the agent that holds the refresh claim, mid-load.
            3 if !killed_claimer => {
                claims.lock().unwrap().clear();
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline && !killed_claimer {
                    let owner = claims.lock().unwrap().last().cloned();
                    if let Some(owner) = owner {
                        let pid: u32 = owner
                            .split('/')
                            .nth(1)
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                        if let Some(i) = agents.iter().position(|a| a.child.id() == pid) {
                            let from = Instant::now();
                            cache_common::restart(&mut agents[i], "info,lookout_agent=debug");
                            killed_claimer = true;
                            exempt.push(Exempt {
                                server: i,
                                from,
                                to: Instant::now() + Duration::from_secs(2),
                            });
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            _ => tokio::time::sleep(Duration::from_millis(1000)).await,
        }
    }
    let run_end = Instant::now();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let loads = cache_common::source_loads(work.path()) - loads_before;
    let reads = reads.lock().unwrap().clone();
    let publications = publications.lock().unwrap().clone();
    let verdict = cache_common::check(
        &reads,
        &publications,
        AGENTS,
        &exempt,
        // One check interval, plus the fetch, plus the 20 ms manifest-watch granularity and
        // scheduling on a busy machine.
        CHECK + Duration::from_millis(600),
        run_end,
    );
    let intervals = run_end.duration_since(t_start).as_secs_f64() / REFRESH.as_secs_f64();
    println!(
        "{}: reads {} (strong {}), versions seen {}, freshness checks {}, restarts {restarts}, claimer killed {killed_claimer}, source loads {loads} over {intervals:.1} intervals = {:.2}/interval",
        blob_url,
        verdict.reads,
        verdict.strong_reads,
        publications.len(),
        verdict.freshness_checked,
        loads as f64 / intervals
    );
    for (i, a) in agents.iter().enumerate() {
        assert!(
            !a.log().contains("panicked"),
            "agent {i} panicked:\n{}",
            a.log()
        );
    }
    verdict.assert_ok();
    assert!(killed_claimer, "the claimer-kill fault must have happened");
    assert!(verdict.freshness_checked >= 10 && verdict.strong_reads >= 50);
    assert!(
        loads as f64 / intervals <= 1.2,
        "source loads per refresh interval: {loads} / {intervals:.1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_on_a_file_blob() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let watch = blob::open(&url, &BTreeMap::new()).unwrap();
    run_agents(url, "{}".into(), watch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_on_azurite() {
    let az = Azurite::start();
    az.create_container("agents").await;
    let url = "az://agents/fleet-test".to_string();
    let watch = blob::open(&url, &az.options()).unwrap();
    run_agents(url, az.options_toml(), watch).await;
}
