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
    let out = diagnose(&["1", "--hang-threshold", "soon"]);
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
    let out = diagnose(&[&pid, "--seconds", "2", "--hang-threshold", "1s"]);
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
}
