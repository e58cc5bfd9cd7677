//! What a service writes to keep a shared document (feature flags, routing tables) in memory
//! on every one of its servers, with one source load per refresh interval for the fleet:
//!
//! ```text
//! cargo run -p lookout-cache --example config_service -- \
//!     --blob az://config/flags --opt account_name=devstoreaccount1 --opt access_key=... \
//!     --opt endpoint=http://127.0.0.1:10000/devstoreaccount1 --opt allow_http=true \
//!     --source /etc/flags.json --seconds 30
//! ```
//!
//! It prints one line per version it starts serving — `serving version=N sha256=H bytes=B` —
//! and, before it exits, `status loads_ok=N errors=M`. The end-to-end test
//! `tests/tests/cache_example.rs` runs two of these against Azurite.

use lookout_cache::source::FileSource;
use lookout_cache::{Cache, CacheEvent, CacheOptions, blob};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

struct Args {
    blob: String,
    options: BTreeMap<String, String>,
    source: String,
    name: String,
    check: Duration,
    refresh: Duration,
    seconds: u64,
    local_dir: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        blob: "memory://example".into(),
        options: BTreeMap::new(),
        source: String::new(),
        name: "config".into(),
        check: Duration::from_millis(200),
        refresh: Duration::from_secs(2),
        seconds: 10,
        local_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let ms = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{v}: {e}"))
        };
        match flag.as_str() {
            "--blob" => a.blob = value()?,
            "--opt" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("--opt {kv}: want key=value"))?;
                a.options.insert(k.into(), v.into());
            }
            "--source" => a.source = value()?,
            "--name" => a.name = value()?,
            "--check-ms" => a.check = ms(value()?)?,
            "--refresh-ms" => a.refresh = ms(value()?)?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--local-dir" => a.local_dir = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.source.is_empty() {
        return Err("--source FILE is required".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("config_service: {e}");
            std::process::exit(2);
        }
    };
    let store = match blob::open(&args.blob, &args.options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("config_service: {e}");
            std::process::exit(2);
        }
    };
    // A service has its own meter provider; the global one is a no-op until it installs one.
    let meter = opentelemetry::global::meter("config_service");
    let mut opts = CacheOptions::new(args.name)
        .check_interval(args.check)
        .refresh_interval(args.refresh)
        .source_timeout(Duration::from_secs(5));
    if let Some(dir) = args.local_dir {
        opts = opts.local_dir(dir);
    }
    let cache = Cache::new(
        opts,
        Arc::new(FileSource(args.source.into())),
        store,
        &meter,
    );

    let mut events = cache.subscribe();
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(cache.clone().run(stop.clone(), || {}));
    let deadline = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            e = events.recv() => match e {
                Ok(CacheEvent::Served { .. }) => {
                    // The application's read path: a lock-free load of the snapshot.
                    let snap = cache.get().expect("a served version");
                    println!(
                        "serving version={} sha256={} bytes={}",
                        snap.version,
                        snap.sha256,
                        snap.bytes.len()
                    );
                }
                Ok(CacheEvent::Error { kind, message }) => eprintln!("cache error {kind}: {message}"),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    stop.cancel();
    let _ = runner.await;
    let st = cache.status();
    println!(
        "status loads_ok={} errors={}",
        st.source_loads.get("ok").copied().unwrap_or(0),
        st.errors.values().sum::<u64>()
    );
}
