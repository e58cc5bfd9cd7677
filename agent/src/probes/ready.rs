//! Readiness probes of watched services: a TCP connect, an HTTP GET answering 2xx/3xx, or a
//! command exiting 0. Each is bounded by a timeout so a hung service cannot hang the watcher.

use crate::config::ReadyProbe;
use std::sync::OnceLock;
use std::time::Duration;

pub struct ReadyChecker {
    probe: ReadyProbe,
    timeout: Duration,
}

/// One HTTP client for every HTTP readiness probe, built on first use: each client loads the
/// TLS root store (~100 KiB), and most services are probed over TCP and need none.
fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    lookout_common::install_tls_provider();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default()
    })
}

impl ReadyChecker {
    pub fn new(probe: ReadyProbe, timeout: Duration) -> Self {
        Self { probe, timeout }
    }

    pub async fn is_ready(&self) -> bool {
        match &self.probe {
            ReadyProbe::Tcp(addr) => matches!(
                tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(&addr.0)).await,
                Ok(Ok(_))
            ),
            ReadyProbe::Http(url) => match http_client()
                .get(url.0.clone())
                .timeout(self.timeout)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() || r.status().is_redirection(),
                Err(_) => false,
            },
            ReadyProbe::Exec(argv) => {
                let Some((program, args)) = argv.split_first() else {
                    return false;
                };
                let child = tokio::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status();
                matches!(
                    tokio::time::timeout(self.timeout.max(Duration::from_secs(5)), child).await,
                    Ok(Ok(status)) if status.success()
                )
            }
        }
    }
}
