//! A private Prometheus server (Debian package `prometheus`) for the tests: its own config,
//! data dir and free port, scraping the targets it is given every second; killed on drop.

use crate::{free_port, http_get, wait_for};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Start Prometheus scraping `targets` (host:port) as job `lookout` every second.
    pub fn start(targets: &[String]) -> Self {
        Self::start_with_rules(targets, None)
    }

    pub fn start_with_rules(targets: &[String], rule_file: Option<&std::path::Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let rules = rule_file
            .map(|p| format!("rule_files: ['{}']\n", p.display()))
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}scrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus (apt-get install prometheus; tests/run.sh does)");
        let p = Self {
            child,
            port,
            _dir: dir,
        };
        wait_for("prometheus ready", Duration::from_secs(60), || {
            matches!(http_get(&p.url("/-/ready")), Some((200, _))).then_some(())
        });
        p
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Run an instant query; returns the `data.result` array.
    pub fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let url = format!("{}?query={}", self.url("/api/v1/query"), urlencode(promql));
        let (status, body) = http_get(&url)?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"].as_array().cloned()
    }

    /// The value of the first series of an instant query.
    pub fn query_value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql)?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode a query parameter.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
