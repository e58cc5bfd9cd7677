//! The cache's example program (`agent/cache/examples/config_service.rs`), as a service would
//! run it: two processes of it against a private Azurite share one document. Both serve the
//! first version, the fleet loads the source once for it, and a change of the source reaches
//! both as the next version with the same content hash.

mod cache_common;

use cache_common::Azurite;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(az: &Azurite, source: &std::path::Path, seconds: u64) -> Service {
    let mut cmd = Command::new(lookout_e2e::example_bin("config_service"));
    cmd.args(["--blob", "az://example/fleet"]);
    for (k, v) in az.options() {
        cmd.args(["--opt", &format!("{k}={v}")]);
    }
    let mut child = cmd
        .arg("--source")
        .arg(source)
        .args(["--check-ms", "100", "--refresh-ms", "1500"])
        .args(["--seconds", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn config_service");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Service { child, lines }
}

/// The next `serving` line of `svc` within `timeout`, as (version, sha256).
fn next_version(svc: &Service, timeout: Duration) -> (u64, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = svc
            .lines
            .recv_timeout(left)
            .expect("the example to print a served version in time");
        if let Some(rest) = line.strip_prefix("serving ") {
            let field = |name: &str| {
                rest.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_else(|| panic!("{name} in {line:?}"))
                    .to_string()
            };
            return (field("version=").parse().unwrap(), field("sha256="));
        }
    }
}

/// The final `status` line: source loads that succeeded.
fn loads_ok(svc: &mut Service) -> u64 {
    let status = svc.child.wait().expect("example exits");
    assert!(status.success(), "config_service exited with {status}");
    let line = svc
        .lines
        .iter()
        .find(|l| l.starts_with("status "))
        .expect("a status line");
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("loads_ok="))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn two_example_services_share_one_document_through_azurite() {
    let az = Azurite::start();
    lookout_e2e::block_on(az.create_container("example"));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("flags.json");
    std::fs::write(&source, br#"{"flag": "one"}"#).unwrap();

    let mut a = start(&az, &source, 8);
    let mut b = start(&az, &source, 8);
    let (va, sha_a) = next_version(&a, Duration::from_secs(20));
    let (vb, sha_b) = next_version(&b, Duration::from_secs(20));
    assert_eq!((va, vb), (1, 1), "both serve the first version");
    assert_eq!(sha_a, sha_b);

    std::fs::write(&source, br#"{"flag": "two"}"#).unwrap();
    let (va2, sha_a2) = next_version(&a, Duration::from_secs(20));
    let (vb2, sha_b2) = next_version(&b, Duration::from_secs(20));
    assert_eq!((va2, vb2), (2, 2), "the change reaches both as version 2");
    assert_eq!(sha_a2, sha_b2);
    assert_ne!(sha_a2, sha_a);

    // One load per refresh interval for the pair, not one per process: over 8 s at a 1.5 s
    // interval that is at most about 6 together (each process loads only when it wins the
    // claim).
    let total = loads_ok(&mut a) + loads_ok(&mut b);
    assert!(
        (2..=7).contains(&total),
        "{total} source loads by two services in 8 s at a 1.5 s refresh interval"
    );
}
