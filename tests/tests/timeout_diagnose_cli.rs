//! `lookout diagnose` at its edges: no such process, bad arguments, and missing rights (exit 2
//! naming CAP_SYS_PTRACE); and the report for people names the thread, call, timeout, peer
//! and what to do.

use lookout_e2e::{free_port, lookout_bin, repo_root};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn diagnose(args: &[&str]) -> std::process::Output {
    Command::new(lookout_bin())
        .arg("diagnose")
        .args(args)
        .output()
        .expect("run lookout diagnose")
}

#[test]
fn a_missing_process_or_bad_arguments_exit_2_with_one_clear_line() {
    // pid_max is at most 2^22: this pid cannot exist.
    let out = diagnose(&["99999999", "--seconds", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("lookout: no process with pid 99999999"),
        "{err}"
    );

    let out = diagnose(&["1", "--seconds", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = diagnose(&["1", "--quiet-period", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let out = diagnose(&["not-a-pid"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn without_ptrace_rights_diagnose_exits_2_naming_cap_sys_ptrace() {
    // A process of ours (root in CI) and lookout run as `nobody`: no CAP_SYS_PTRACE, another
    // uid, so the kernel refuses /proc/PID/task/TID/syscall.
    let mut target = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = target.id().to_string();
    let is_root = unsafe { libc::geteuid() } == 0;
    let out = if is_root {
        // nobody must be able to execute the binary: copy it somewhere world-readable.
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("lookout");
        std::fs::copy(lookout_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = lookout_e2e::as_nobody(&bin)
            .args(["diagnose", &pid, "--seconds", "1"])
            .output()
            .expect("setpriv (util-linux)");
        drop(dir);
        out
    } else {
        // Not root: pid 1 belongs to another user.
        diagnose(&["1", "--seconds", "1"])
    };
    let _ = target.kill();
    let _ = target.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.lines().next().unwrap_or("").contains("CAP_SYS_PTRACE"),
        "{err}"
    );
}

#[test]
fn the_report_for_people_says_what_is_stuck_on_what_and_what_to_do() {
    let port = free_port();
    let scenarios = repo_root().join("tests/scenarios");
    let mut server = Command::new("python3")
        .arg(scenarios.join("servers.py"))
        .args(["silent", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut client = Command::new("python3")
        .arg(scenarios.join("clients.py"))
        .args(["no-timeout", &port.to_string()])
        .spawn()
        .unwrap();
    let pid = client.id().to_string();
    let out = diagnose(&[&pid, "--seconds", "2", "--quiet-period", "1s"]);
    let _ = client.kill();
    let _ = server.kill();
    let _ = client.wait();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("VERDICT: missing_timeout"), "{text}");
    assert!(text.contains(&format!("thread {pid} (python3)")), "{text}");
    assert!(text.contains("recvfrom"), "{text}");
    assert!(text.contains("none (waits forever)"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("what to do:"), "{text}");
    assert!(text.contains("evidence:    high confidence"), "{text}");
    assert!(text.contains("has not read the request"), "{text}");
    // Every thread's wait is listed, the stuck one included.
    assert!(text.contains("every thread's wait"), "{text}");
}

#[test]
fn an_ok_verdict_still_shows_every_threads_wait() {
    let mut pool = Command::new(env!("CARGO_BIN_EXE_scenario-pool-idle"))
        .arg("8")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(pool.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let out = diagnose(&[&pool.id().to_string(), "--seconds", "1"]);
    let _ = pool.kill();
    let _ = pool.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("VERDICT: ok"), "{text}");
    assert!(text.contains("parked: waits for work"), "{text}");
    assert!(text.contains("worker-"), "{text}");
}

/// A target that exits while it is sampled gives a clean verdict (exit 0, `ok`, `exited`),
/// never a panic; so do threads that exit between being listed and being read.
#[test]
fn a_target_that_exits_mid_sample_gives_a_clean_verdict() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scenarios = repo_root().join("tests/scenarios");
    let mut client = Command::new("python3")
        .arg(scenarios.join("clients.py"))
        .args(["no-timeout", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = client.id();
    let watch =
        std::thread::spawn(move || diagnose(&[&pid.to_string(), "--seconds", "4", "--json"]));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = client.kill();
    let _ = client.wait();
    let out = watch.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "ok", "{v}");
    assert_eq!(v["exited"], true, "{v}");
    assert_eq!(v["findings"], serde_json::json!([]), "{v}");
    drop(listener);

    let mut churn = Command::new(env!("CARGO_BIN_EXE_scenario-pool-idle"))
        .args(["16", "churn"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(churn.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let out = diagnose(&[&churn.id().to_string(), "--seconds", "3", "--json"]);
    let _ = churn.kill();
    let _ = churn.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "ok", "{v}");
    assert_eq!(v["exited"], false, "{v}");
}

#[test]
fn the_former_hang_threshold_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, "[detectors.timeout]\nhang_threshold = \"30s\"\n").unwrap();
    let out = Command::new(lookout_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains(":2:"), "{err}");
    assert!(
        first.contains("quiet_period") && first.contains("TimeoutBugSuspected"),
        "{err}"
    );
}
