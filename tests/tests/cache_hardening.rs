//! The cache's hardening against real `lookout` processes: a SIGHUP keeps the memory tier
//! (and readiness), and a local snapshot that cannot be written shows in the metrics and in
//! readiness instead of only in a log line.

use lookout_e2e::Agent;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn cache_toml(work: &Path, blob: &Path) -> String {
    let script = format!(
        "if [ -e {w}/fail ]; then exit 1; fi; cat {w}/doc",
        w = work.display()
    );
    format!(
        "[[cache]]\nname = \"fleet\"\nsource = {{ command = [\"sh\", \"-c\", \"{script}\"] }}\nblob = \"file://{}\"\ncheck_interval = \"100ms\"\nrefresh_interval = \"500ms\"\nsource_timeout = \"2s\"\n",
        blob.display()
    )
}

fn served(agent: &Agent) -> Option<(u16, String)> {
    agent.get("/v1/cache/fleet")
}

fn wait_body(agent: &Agent, want: &str) {
    lookout_e2e::wait_for(
        &format!("the agent to serve {want:?}"),
        Duration::from_secs(30),
        || served(agent).filter(|(s, b)| *s == 200 && b.starts_with(want)),
    );
}

/// SIGHUP with the disk snapshot and the blob tier's objects gone and the source failing:
/// the new generation still serves what the old one served, and /readyz never leaves 200.
#[test]
fn a_reload_keeps_the_memory_tier_and_readiness() {
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("blob");
    std::fs::write(work.path().join("doc"), "generation 1\n").unwrap();
    let agent = Agent::start(&cache_toml(work.path(), &blob));
    agent.wait_ready(Duration::from_secs(30));
    wait_body(&agent, "generation 1");
    std::fs::write(work.path().join("fail"), "").unwrap();
    std::fs::remove_dir_all(&blob).unwrap();
    let snapshot = agent.dir.path().join("data/cache/fleet/snapshot");
    std::fs::remove_file(&snapshot).unwrap();

    // Poll /readyz as fast as it answers through the reload.
    let stop = Arc::new(AtomicU64::new(0));
    let not_ready = Arc::new(AtomicU64::new(0));
    let polls = Arc::new(AtomicU64::new(0));
    let url = agent.url("/readyz");
    let poller = {
        let (stop, not_ready, polls) = (stop.clone(), not_ready.clone(), polls.clone());
        std::thread::spawn(move || {
            while stop.load(Ordering::Relaxed) == 0 {
                match lookout_e2e::http_get(&url) {
                    Some((200, _)) => {}
                    _ => {
                        not_ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
                polls.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let reloads_before = agent.log().matches("config reloaded").count();
    agent.signal(libc::SIGHUP);
    lookout_e2e::wait_for("the reload", Duration::from_secs(20), || {
        (agent.log().matches("config reloaded").count() > reloads_before).then_some(())
    });
    // Long enough for the new generation to check the (empty) blob tier and fail a refresh.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(1, Ordering::Relaxed);
    poller.join().unwrap();
    let (status, body) = served(&agent).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "generation 1\n"),
        "after the reload"
    );
    let polls = polls.load(Ordering::Relaxed);
    assert!(polls >= 20, "only {polls} readiness polls");
    assert_eq!(
        not_ready.load(Ordering::Relaxed),
        0,
        "/readyz was not 200 during the reload ({polls} polls); log:\n{}",
        agent.log()
    );
}

/// The snapshot directory replaced by a file: every save fails. The error is counted
/// (`lookout_cache_errors_total{kind="disk"}`), /readyz says 503 and why, and both recover
/// once the disk does, without a new version.
#[test]
fn a_snapshot_that_cannot_be_saved_shows_in_metrics_and_readiness() {
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("blob");
    std::fs::write(work.path().join("doc"), "generation 1\n").unwrap();
    let agent = Agent::start(&cache_toml(work.path(), &blob));
    agent.wait_ready(Duration::from_secs(30));
    wait_body(&agent, "generation 1");
    let dir = agent.dir.path().join("data/cache/fleet");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    std::fs::write(work.path().join("doc"), "generation 2\n").unwrap();
    wait_body(&agent, "generation 2");
    let (status, why) = lookout_e2e::wait_for("/readyz 503", Duration::from_secs(10), || {
        agent.get("/readyz").filter(|(s, _)| *s == 503)
    });
    assert_eq!(status, 503);
    assert!(why.contains("local snapshot"), "{why}");
    let errors = lookout_e2e::wait_for("the disk error metric", Duration::from_secs(10), || {
        agent.metric(
            "lookout_cache_errors_total",
            &[("cache", "fleet"), ("kind", "disk")],
        )
    });
    assert!(errors >= 1.0);
    // Restarting now could not bring back generation 1: the old snapshot is gone.
    std::fs::remove_file(&dir).unwrap();
    let t0 = Instant::now();
    lookout_e2e::wait_for("/readyz 200 again", Duration::from_secs(10), || {
        agent.get("/readyz").filter(|(s, _)| *s == 200)
    });
    let snapshot = std::fs::read_to_string(dir.join("snapshot")).unwrap();
    assert!(snapshot.ends_with("generation 2\n"), "{snapshot}");
    println!("ready again {:?} after the disk came back", t0.elapsed());
}
