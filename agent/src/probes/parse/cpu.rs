//! `/proc/stat`: the host's CPU busy share between two reads.

use procfs::prelude::*;

/// The `cpu` line of `/proc/stat` reduced to what the busy share needs, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal (guest time is inside user and nice).
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
}

pub fn cpu_times(text: &str) -> Option<CpuTimes> {
    // The fields kept are raw ticks; the system info only scales procfs's *_ms helpers,
    // which are not used, so any value does (and none is read from this host).
    let si = procfs::ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let t = procfs::KernelStats::from_read(text.as_bytes(), &si)
        .ok()?
        .total;
    let busy = t.user
        + t.nice
        + t.system
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + t.steal.unwrap_or(0);
    Some(CpuTimes {
        busy,
        total: busy + t.idle + t.iowait.unwrap_or(0),
    })
}

/// The busy share, 0..1, between two reads (what sysinfo's global CPU usage computed: busy
/// ticks over all ticks, at most 1; 0 when no tick passed).
pub fn utilization(before: CpuTimes, now: CpuTimes) -> f64 {
    let total = now.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    (now.busy.saturating_sub(before.busy) as f64 / total as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn the_fixture_host() {
        // cpu  221212 1463483 160228 409089 4455 0 5722 1277 0 0
        let busy = 221212 + 1463483 + 160228 + 5722 + 1277;
        assert_eq!(
            cpu_times(fixture!("v1/proc/stat")),
            Some(CpuTimes {
                busy,
                total: busy + 409089 + 4455
            })
        );
    }

    #[test]
    fn share_between_two_reads() {
        let a = CpuTimes {
            busy: 100,
            total: 400,
        };
        let b = CpuTimes {
            busy: 130,
            total: 500,
        };
        assert!((utilization(a, b) - 0.3).abs() < 1e-12);
        // No tick passed, or the counters went backwards: no share, not NaN.
        assert_eq!(utilization(a, a), 0.0);
        assert_eq!(utilization(b, a), 0.0);
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(cpu_times("intr 1 2 3\n"), None);
    }
}
