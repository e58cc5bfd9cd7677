//! What a service writes to talk to the primary of a replicated peer service without knowing
//! which replica that is, and without a thundering herd when it moves:
//!
//! ```text
//! cargo run -p lookout-tracker --example primary_client -- \
//!     --replica http://127.0.0.1:7001 --replica http://127.0.0.1:7002 --replica http://127.0.0.1:7003 \
//!     --path /orders --interval-ms 50 --seconds 10
//! ```
//!
//! Every `--interval-ms` it GETs `--path` from the current primary and prints one line:
//! `ok primary=URL generation=G bytes=N` or `error <reason>`; when the primary changes it
//! prints `primary URL generation=G` (from the tracker's events); before it exits,
//! `status requests_ok=N errors=M discoveries=D`. The end-to-end test
//! `tests/tests/tracker_example.rs` runs it against three replica processes.

use lookout_tracker::{Discovery, Settings, Tracker, TrackerEvent};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut replicas = Vec::new();
    let (mut path, mut interval, mut seconds) = ("/".to_string(), 100u64, 10u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|e| usage(&format!("{flag}: {e}")))
        };
        match flag.as_str() {
            "--replica" => replicas.push(value),
            "--path" => path = value,
            "--interval-ms" => interval = number(&value),
            "--seconds" => seconds = number(&value),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if replicas.is_empty() {
        usage("at least one --replica URL is needed");
    }

    // A service has its own meter provider; the global one is a no-op until it installs one.
    let meter = opentelemetry::global::meter("primary_client");
    let settings = Settings::default()
        .max_in_flight(8)
        .request_timeout(Duration::from_secs(1));
    let tracker = Tracker::new("orders", &Discovery::Http(replicas), settings, &meter)
        .unwrap_or_else(|e| usage(&e.to_string()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut events = tracker.subscribe();
    let runner = tokio::spawn(tracker.clone().run(stop.clone()));

    let (mut ok, mut errors) = (0u64, 0u64);
    let deadline = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            Ok(TrackerEvent::Published { generation, primary: Some(p), changed: true }) = events.recv() => {
                println!("primary {} generation={generation}", p.base);
            }
            _ = tick.tick() => match tracker.get_bytes(&path).await {
                Ok(body) => {
                    ok += 1;
                    let st = tracker.status();
                    let primary = st.primary.map(|p| p.base.to_string()).unwrap_or_default();
                    println!("ok primary={primary} generation={} bytes={}", st.generation, body.len());
                }
                Err(e) => {
                    errors += 1;
                    println!("error {e}");
                }
            },
        }
    }
    stop.cancel();
    let _ = runner.await;
    println!(
        "status requests_ok={ok} errors={errors} discoveries={}",
        tracker.status().discoveries
    );
}

fn usage(why: &str) -> ! {
    eprintln!("primary_client: {why}");
    eprintln!(
        "usage: primary_client --replica URL [--replica URL ..] [--path P] [--interval-ms N] [--seconds N]"
    );
    std::process::exit(2);
}
