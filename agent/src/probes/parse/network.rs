//! `/proc/net/dev`: bytes received and sent by the host's interfaces.

use procfs::prelude::*;

/// Received and transmitted bytes summed over every interface but loopback (traffic the
/// host sends itself is no network traffic). None when the file does not parse.
pub fn net_bytes(text: &str) -> Option<(u64, u64)> {
    let dev = procfs::net::InterfaceDeviceStatus::from_read(text.as_bytes()).ok()?;
    Some(
        dev.0
            .iter()
            .filter(|(name, _)| name.as_str() != "lo")
            .fold((0, 0), |(rx, tx), (_, d)| {
                (rx + d.recv_bytes, tx + d.sent_bytes)
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn the_fixture_host_without_loopback() {
        // eth0 595279832 / 1306403; ifb0, ifb1 nothing; lo (3773903140 each way) left out.
        assert_eq!(
            net_bytes(fixture!("v1/proc/net/dev")),
            Some((595279832, 1306403))
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(net_bytes("Inter-|\n face |\n eth0 1 2 3\n"), None);
    }
}
