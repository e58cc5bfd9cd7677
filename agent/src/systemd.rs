//! systemd's service notification protocol (`sd_notify(3)`), for `Type=notify` and
//! `WatchdogSec=`: one datagram per message to the socket in `$NOTIFY_SOCKET`.
//!
//! Written here rather than taken from a crate: the protocol is a newline-separated
//! `KEY=VALUE` datagram to a unix socket (abstract when the name starts with `@`), which std
//! does in a few lines; the crates add nothing the agent uses.
//!
//! What the daemon sends: `READY=1` once the first probe cycle is done and `/metrics` serves
//! (not every readiness gate: a cache whose blob store is down must not make systemd kill the
//! agent at start), `STATUS=` with what `/readyz` still waits for, `WATCHDOG=1` every half
//! watchdog period while the probe loop keeps ticking (a wedged probe stops the pings and
//! systemd restarts the agent), `RELOADING=1` around a SIGHUP, `STOPPING=1` on the way out.
//! Outside systemd (no `$NOTIFY_SOCKET`) all of it is a no-op.

use crate::context::Heartbeat;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to systemd's notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Half the watchdog period, when systemd asked this process for pings.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`/`$WATCHDOG_PID`; `None` outside systemd or
    /// when the socket cannot be used (logged once).
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)
            }
            None => SocketAddr::from_pathname(std::path::Path::new(&path)),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        let (socket, addr) = match made {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; not notifying systemd");
                return None;
            }
        };
        Some(Self {
            socket,
            addr,
            watchdog_every: watchdog_period(
                std::env::var("WATCHDOG_USEC").ok().as_deref(),
                std::env::var("WATCHDOG_PID").ok().as_deref(),
                std::process::id(),
            )
            .map(|p| p / 2),
        })
    }

    /// Send one message (`KEY=VALUE` lines). Failures are logged at debug: systemd going
    /// away must not disturb the agent.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}

/// The watchdog period systemd asks for: `WATCHDOG_USEC`, if `WATCHDOG_PID` is unset or ours.
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// `STATUS=` text: what the agent still waits for, or that it is ready.
pub fn status_line(blocking: &[(String, String)]) -> String {
    if blocking.is_empty() {
        return "STATUS=ready".into();
    }
    let waits: Vec<String> = blocking.iter().map(|(g, r)| format!("{g}: {r}")).collect();
    // One line: STATUS is shown by `systemctl status`.
    format!("STATUS=waiting for {}", waits.join("; ").replace('\n', " "))
}

/// CLOCK_MONOTONIC in microseconds, for `MONOTONIC_USEC=` next to `RELOADING=1`.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Drive READY/STATUS/WATCHDOG until `shutdown`. `heartbeat` is fresh while the probe loop
/// runs; `stale_after` is how old it may get (a few probe intervals) before pings stop.
pub fn spawn(
    notifier: Arc<Notifier>,
    readiness: Arc<crate::context::Readiness>,
    heartbeat: Arc<Heartbeat>,
    stale_after: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let every = notifier
            .watchdog_every
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let mut ready_sent = false;
        let mut last_status = String::new();
        let mut last_ping: Option<Instant> = None;
        let mut warned_stale = false;
        loop {
            let blocking = readiness.blocking();
            let status = status_line(&blocking);
            if !ready_sent && !blocking.iter().any(|(g, _)| g == "probes") {
                notifier.send(&format!("READY=1\n{status}"));
                ready_sent = true;
                last_status = status;
            } else if ready_sent && status != last_status {
                notifier.send(&status);
                last_status = status;
            }
            if let Some(period) = notifier.watchdog_every
                && last_ping.is_none_or(|t| t.elapsed() >= period)
            {
                if heartbeat.age() <= stale_after {
                    notifier.send("WATCHDOG=1");
                    last_ping = Some(Instant::now());
                    warned_stale = false;
                } else if !warned_stale {
                    tracing::error!(
                        since_ms = heartbeat.age().as_millis() as u64,
                        "the probe loop is stuck: no more watchdog pings, systemd will restart the agent"
                    );
                    warned_stale = true;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(if ready_sent { every } else { Duration::from_millis(50) }) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_applies_to_us_only() {
        assert_eq!(
            watchdog_period(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_period(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(None, None, 7), None);
    }

    #[test]
    fn status_says_what_is_awaited() {
        assert_eq!(status_line(&[]), "STATUS=ready");
        let s = status_line(&[("cache:a".into(), "no version\nyet".into())]);
        assert_eq!(s, "STATUS=waiting for cache:a: no version yet");
    }

    #[test]
    fn messages_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            addr: SocketAddr::from_pathname(&path).unwrap(),
            watchdog_every: None,
        };
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }
}
