//! Support for the end-to-end tests: finding the built `lookout` binary, free loopback ports,
//! starting an agent on a config with its own data dir, waiting for conditions, and reading
//! Prometheus text. Real servers (Prometheus, Alertmanager, etcd, Azurite) have their own
//! modules beside this one.

pub mod alertmanager;
pub mod otlp;
pub mod prometheus;
pub mod tls;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `lookout` binary under test: `$LOOKOUT_BIN`, else `target/debug/lookout`.
pub fn lookout_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LOOKOUT_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let bin = target.join("debug/lookout");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p lookout-agent` first (tests/run.sh does)",
        bin.display()
    );
    bin
}

/// An example program of a workspace crate (`cargo build --workspace --examples`, which
/// tests/run.sh does): `target/debug/examples/NAME`.
pub fn example_bin(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let bin = target.join("debug/examples").join(name);
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace --examples` first (tests/run.sh does)",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` every 50 ms until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking HTTP GET returning (status, body); connection errors as `None`.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    block_on(async {
        let r = client().get(url).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    })
}

/// A reqwest client for tests: no proxy, 10 s timeout.
pub fn client() -> reqwest::Client {
    lookout_common::install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Run a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the `lookout-test-child` helper binary (`bin`, from the test's
/// `env!("CARGO_BIN_EXE_lookout-test-child")`): `threads` parked threads, ready (listening on
/// `port`) after `ready_after` seconds.
pub fn spawn_test_child(bin: &str, threads: usize, ready_after: f64, port: u16) -> KillOnDrop {
    KillOnDrop(
        Command::new(bin)
            .args(["--threads", &threads.to_string()])
            .args(["--ready-after", &ready_after.to_string()])
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn lookout-test-child"),
    )
}

/// A running `lookout run` with its own config file and data dir; killed on drop.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

impl Agent {
    /// Start an agent whose config is `extra` appended to an `[agent]` table that sets a free
    /// listen port, a 1 s interval (or `interval`) and a private data dir.
    pub fn start(extra: &str) -> Agent {
        Self::start_with(extra, "1s", &[])
    }

    pub fn start_with(extra: &str, interval: &str, env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\ninterval = \"{interval}\"\ndata_dir = \"{}\"\nhost = \"test-host\"\n\n{extra}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("lookout.toml");
        std::fs::write(&config_path, config).unwrap();
        Self::spawn(dir, port, config_path, env)
    }

    /// Start on a config file written by the caller (its listen port must be `port`).
    pub fn spawn(
        dir: tempfile::TempDir,
        port: u16,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> Agent {
        let log_path = dir.path().join("agent.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(lookout_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env("LOOKOUT_LOG", "info,lookout_agent=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn lookout");
        Agent {
            child,
            port,
            dir,
            config_path,
            log_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.url(path))
    }

    pub fn wait_ready(&self, timeout: Duration) {
        wait_for("agent /readyz 200", timeout, || {
            matches!(self.get("/readyz"), Some((200, _))).then_some(())
        });
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// The value of the first sample of `name` whose labels include all of `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_value(&self.metrics(), name, labels)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Rewrite the config file (keeping nothing of the old one).
    pub fn rewrite_config(&self, text: &str) {
        let mut f = std::fs::File::create(&self.config_path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse one sample value out of Prometheus text: the first line of metric `name` (exactly)
/// whose labels include every pair of `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text, name)
        .into_iter()
        .find(|(ls, _)| {
            labels
                .iter()
                .all(|(k, v)| ls.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|(_, v)| v)
}

/// Every sample of metric `name`: its labels and value.
pub fn samples(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (metric, labels) = match head.find('{') {
            Some(i) => (&head[..i], &head[i + 1..head.len() - 1]),
            None => (head, ""),
        };
        if metric != name {
            continue;
        }
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        out.push((parse_labels(labels), v));
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(body) = after.strip_prefix('"') else {
            break;
        };
        let mut val = String::new();
        let mut chars = body.char_indices();
        let mut end = body.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        out.push((key, val));
        rest = &body[end..];
    }
    out
}

/// A command running `program` as nobody (uid/gid 65534) with no groups and no inheritable
/// capabilities, through util-linux `setpriv`: how the tests see what an unprivileged agent sees.
pub fn as_nobody(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(program);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_samples() {
        let text = "# HELP x y\nx{a=\"1\",b=\"two\"} 3.5\nx{a=\"2\"} 4\ny 1\n";
        assert_eq!(metric_value(text, "x", &[("b", "two")]), Some(3.5));
        assert_eq!(metric_value(text, "x", &[("a", "2")]), Some(4.0));
        assert_eq!(metric_value(text, "y", &[]), Some(1.0));
        assert_eq!(metric_value(text, "z", &[]), None);
    }
}
