//! The agent as operators run it (issue 17): its own thread count with every component on,
//! named threads, `lookout version` with the git commit, the systemd unit passing
//! `systemd-analyze verify`, and the sd_notify conversation (READY, STATUS, WATCHDOG,
//! RELOADING, STOPPING) over a real unix datagram socket.

#[path = "tracker_support/mod.rs"]
mod tracker_support;

use lookout_e2e::otlp::Receiver;
use lookout_e2e::{Agent, free_port, lookout_bin, repo_root, spawn_test_child, wait_for};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = env!("CARGO_BIN_EXE_lookout-test-child");

/// The names of the threads of `pid` (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn the_agents_own_threads_stay_below_ten_with_every_component_on() {
    let port = free_port();
    let _child = spawn_test_child(CHILD, 3, 0.0, port);
    let replicas = tracker_support::start_replicas(2, "421");
    let receiver = Receiver::grpc();
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.json");
    std::fs::write(&doc, r#"{"fleet": 1}"#).unwrap();
    let discovery = replicas
        .iter()
        .map(|r| format!("\"{}\"", r.url))
        .collect::<Vec<_>>()
        .join(", ");
    let extra = format!(
        r#"[export.otlp]
endpoint = "http://127.0.0.1:{otlp}"
protocol = "grpc"
interval = "1s"

[[service]]
name = "child"
match = {{ cmdline = 'lookout-test-child .*--port {port}$' }}
ready = {{ tcp = "127.0.0.1:{port}" }}
expected_max_threads = 50

[[cache]]
name = "doc"
source = {{ file = "{doc}" }}
blob = "file://{blob}"
check_interval = "500ms"
refresh_interval = "2s"

[[tracker]]
service = "replicated"
discovery = {{ http = [{discovery}] }}

[detectors.anomaly]
enabled = true
[detectors.timeout]
enabled = true
sample_hz = 10

[alerts]
alertmanager = ["http://127.0.0.1:{dead}"]
resend_interval = "1s"
"#,
        otlp = receiver.port,
        doc = doc.display(),
        blob = dir.path().join("blob").display(),
        dead = free_port(),
    );
    let agent = Agent::start(&extra);
    agent.wait_ready(Duration::from_secs(30));
    // Traffic through every path while we count: scrapes, cache reads, proxied requests.
    let pid = agent.child.id();
    let mut most = 0;
    let mut names_seen = std::collections::BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let _ = agent.get("/metrics");
        let _ = agent.get("/v1/cache/doc");
        let _ = agent.get("/v1/proxy/replicated/data");
        let names = thread_names(pid);
        most = most.max(names.len());
        names_seen.extend(names.iter().cloned());
        assert!(
            names.iter().filter(|n| *n == "lookout-kmeans").count() <= 1,
            "more than one k-means thread: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        receiver.received.count() > 0,
        "OTLP was not on\n{}",
        agent.log()
    );
    assert!(
        agent.metric("process_thread_count", &[("service", "child")]) == Some(4.0),
        "the service watcher was not on\n{}",
        agent.log()
    );
    assert!(
        most < 10,
        "the agent ran {most} threads: {names_seen:?}\n{}",
        agent.log()
    );
    // Every thread says what it is; the rayon pool of linfa's k-means is one thread.
    let names = thread_names(pid);
    assert_eq!(
        names.iter().filter(|n| *n == "lookout-kmeans").count(),
        1,
        "{names:?}"
    );
    for n in &names_seen {
        assert!(
            n == "lookout" || n == "lookout-rt" || n == "lookout-kmeans",
            "unnamed or unexpected thread {n:?} among {names_seen:?}"
        );
    }
}

#[test]
fn version_names_the_git_commit() {
    let out = Command::new(lookout_bin()).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("commit "))
        .unwrap_or_else(|| panic!("no commit line in {text:?}"));
    // What git says of the source tree the binary was built from; `unknown` when it is not
    // a git checkout (a tarball) or git is missing.
    let git = Command::new("git")
        .args(["rev-parse", "--verify", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match git {
        Some(head) => assert_eq!(
            commit, head,
            "the binary is not from HEAD: rebuild it (cargo build -p lookout-agent)"
        ),
        None => assert_eq!(commit, "unknown"),
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo_root().join("agent/deploy/lookout.service")).unwrap();
    for directive in [
        "Type=notify",
        "WatchdogSec=",
        "EnvironmentFile=-",
        "LimitNOFILE=",
        "MemoryMax=",
        "TasksMax=",
        "CPUSchedulingPolicy=batch",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "{directive} missing from the unit"
        );
    }
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let bin = lookout_bin();
    let local = unit.replace("/usr/local/bin/lookout", &bin.display().to_string());
    assert_ne!(
        local, unit,
        "ExecStart no longer names /usr/local/bin/lookout"
    );
    let path = dir.path().join("lookout.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown or misspelt directives are only warnings: none allowed.
    assert!(
        !stderr.contains("lookout.service"),
        "systemd-analyze verify warns:\n{stderr}"
    );
}

/// Datagrams received on `socket` within `timeout`, until `until` matches one.
fn recv_until(
    socket: &UnixDatagram,
    timeout: Duration,
    mut until: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = until(&msg);
            got.push(msg);
            if done {
                return got;
            }
        }
    }
    panic!("timed out; received {got:?}");
}

#[test]
fn it_tells_systemd_when_it_is_ready_alive_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&sock_path).unwrap();
    let sock = sock_path.display().to_string();
    // A cache whose source never answers keeps /readyz at 503: READY=1 must not wait for it.
    let extra = "[[cache]]\nname = \"slow\"\nsource = { command = [\"sleep\", \"3600\"] }\nsource_timeout = \"1h\"\n";
    let mut agent = Agent::start_with(
        extra,
        "1s",
        &[
            ("NOTIFY_SOCKET", sock.as_str()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let first = recv_until(&socket, Duration::from_secs(20), |m| m.contains("READY=1"));
    let ready = first.last().unwrap();
    assert!(
        ready.contains("STATUS=waiting for") && ready.contains("slow"),
        "READY=1 should say what /readyz still waits for: {ready:?}"
    );
    assert!(matches!(agent.get("/readyz"), Some((503, _))));
    // Pings every half period (500 ms) while the probe loop ticks.
    let started = Instant::now();
    let mut pings = 0;
    recv_until(&socket, Duration::from_secs(5), |m| {
        pings += usize::from(m == "WATCHDOG=1");
        pings >= 4
    });
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "4 pings took {:?}",
        started.elapsed()
    );
    agent.signal(libc::SIGHUP);
    let reload = recv_until(&socket, Duration::from_secs(10), |m| {
        m.starts_with("RELOADING=1")
    });
    assert!(reload.last().unwrap().contains("MONOTONIC_USEC="));
    recv_until(&socket, Duration::from_secs(10), |m| m == "READY=1");
    agent.signal(libc::SIGTERM);
    recv_until(&socket, Duration::from_secs(10), |m| m == "STOPPING=1");
    let status = wait_for("agent exit", Duration::from_secs(10), || {
        agent.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}\n{}", agent.log());
}
