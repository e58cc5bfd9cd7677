//! The tracker's example program (`agent/tracker/examples/primary_client.rs`), as a service
//! would run it, against three replica processes: it finds the primary, keeps its GETs
//! answered through a failover (idempotent requests are retried on the new primary), and
//! learns of the new primary with a handful of discoveries, not one per request.

mod tracker_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracker_support::{failover, start_replicas};

#[test]
fn the_example_client_follows_a_failover_across_three_replicas() {
    let replicas = start_replicas(3, "421");
    let mut cmd = Command::new(lookout_e2e::example_bin("primary_client"));
    for r in &replicas {
        cmd.args(["--replica", &r.url]);
    }
    let mut child = cmd
        .args(["--path", "/orders", "--interval-ms", "20", "--seconds", "6"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn primary_client");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let first = format!("ok primary={} ", replicas[0].url);
    let second = format!("ok primary={} ", replicas[1].url);
    let mut lines = Vec::new();
    let wait_for = |lines: &mut Vec<String>, prefix: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {prefix:?} line in time; got {lines:?}"));
            let hit = line.starts_with(prefix);
            lines.push(line);
            if hit {
                return;
            }
        }
    };
    wait_for(&mut lines, &first);
    failover(&replicas, 1, 2, "421");
    wait_for(&mut lines, &second);

    let status = child.wait().expect("example exits");
    assert!(status.success(), "primary_client exited with {status}");
    lines.extend(rx.iter());
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("error")).collect();
    assert!(
        errors.is_empty(),
        "GETs failed across the failover: {errors:?}"
    );
    let last = lines.last().expect("a status line");
    let discoveries: u64 = last
        .strip_prefix("status ")
        .and_then(|s| {
            s.split_whitespace()
                .find_map(|f| f.strip_prefix("discoveries="))
        })
        .unwrap_or_else(|| panic!("no status line at the end: {last:?}"))
        .parse()
        .unwrap();
    assert!(
        (2..=4).contains(&discoveries),
        "{discoveries} discoveries for a start and one failover"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("primary {}", replicas[1].url))),
        "the primary change arrives as an event: {lines:?}"
    );
}
