//! Readiness probes of watched services: a TCP connect, an HTTP GET answering 2xx/3xx, or a
//! command exiting 0. Each is bounded by a timeout so a hung service cannot hang the watcher.

use crate::config::ReadyProbe;
use std::time::Duration;

pub struct ReadyChecker {
    probe: ReadyProbe,
    http: reqwest::Client,
    timeout: Duration,
}

impl ReadyChecker {
    pub fn new(probe: ReadyProbe, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            probe,
            http,
            timeout,
        }
    }

    pub async fn is_ready(&self) -> bool {
        match &self.probe {
            ReadyProbe::Tcp(addr) => matches!(
                tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(&addr.0)).await,
                Ok(Ok(_))
            ),
            ReadyProbe::Http(url) => match self.http.get(url.0.clone()).send().await {
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
