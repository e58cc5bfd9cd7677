//! The daemon's timeout detector on real processes: a watched client stuck on a silent peer
//! shows in `lookout_blocked_threads` and `lookout_timeout_suspects` and raises a `timeout`
//! finding; a watched healthy worker pool stays at zero suspects.

use lookout_e2e::{Agent, free_port, repo_root, wait_for};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(args: &[&str], ready: bool) -> Proc {
    let mut child = Command::new("python3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(if ready { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .unwrap();
    if ready {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    Proc(child)
}

#[test]
fn daemon_reports_a_stuck_client_and_leaves_an_idle_pool_alone() {
    let dir = repo_root().join("tests/scenarios");
    let servers = dir.join("servers.py");
    let clients = dir.join("clients.py");
    let port = free_port();
    let _server = python(
        &[servers.to_str().unwrap(), "silent", &port.to_string()],
        true,
    );
    let _stuck = python(
        &[clients.to_str().unwrap(), "no-timeout", &port.to_string()],
        false,
    );
    // A second, healthy process distinguished by its own argument.
    let _pool = python(
        &[clients.to_str().unwrap(), "queue-idle", &port.to_string()],
        false,
    );

    let agent = Agent::start(&format!(
        r#"
[[service]]
name = "stuck-client"
match = {{ cmdline = "clients\\.py no-timeout {port}$" }}

[[service]]
name = "idle-pool"
match = {{ cmdline = "clients\\.py queue-idle {port}$" }}

[detectors.timeout]
enabled = true
sample_hz = 10
hang_threshold = "2s"
"#
    ));
    let stuck = [("service", "stuck-client"), ("kind", "missing_timeout")];
    wait_for("missing_timeout suspect", Duration::from_secs(30), || {
        (agent.metric("lookout_timeout_suspects", &stuck) == Some(1.0)).then_some(())
    });
    let metrics = agent.metrics();
    let blocked = lookout_e2e::metric_value(
        &metrics,
        "lookout_blocked_threads",
        &[
            ("service", "stuck-client"),
            ("syscall", "recvfrom"),
            ("timeout", "infinite"),
        ],
    );
    assert_eq!(blocked, Some(1.0), "{metrics}");
    for kind in ["missing_timeout", "too_large_timeout", "too_small_timeout"] {
        assert_eq!(
            lookout_e2e::metric_value(
                &metrics,
                "lookout_timeout_suspects",
                &[("service", "idle-pool"), ("kind", kind)]
            ),
            Some(0.0),
            "idle pool {kind}: {metrics}"
        );
    }
    let (status, body) = agent.get("/api/v1/findings").unwrap();
    assert_eq!(status, 200);
    let findings: serde_json::Value = serde_json::from_str(&body).unwrap();
    let f = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["source"] == "timeout" && f["kind"] == "missing_timeout")
        .unwrap_or_else(|| panic!("no timeout finding in {body}"));
    assert_eq!(f["labels"]["service"], "stuck-client");
    assert_eq!(f["detail"]["syscall"], "recvfrom");
    assert_eq!(f["detail"]["timeout"], "infinite");
    assert_eq!(f["detail"]["peer"], format!("127.0.0.1:{port}"));
    assert!(
        !findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["labels"]["service"] == "idle-pool"),
        "{body}"
    );
}
