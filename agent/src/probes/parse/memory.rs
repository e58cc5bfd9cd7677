//! `/proc/meminfo`: memory in use.

use procfs::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    /// Total minus available.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}

/// In bytes. Kernels before 3.14 have no MemAvailable; it is then estimated as free +
/// buffers + page cache + reclaimable slab − shmem (what sysinfo, and free(1), do).
pub fn meminfo(text: &str) -> Option<Memory> {
    let m = procfs::Meminfo::from_read(text.as_bytes()).ok()?;
    let available = m.mem_available.unwrap_or_else(|| {
        (m.mem_free + m.buffers + m.cached + m.s_reclaimable.unwrap_or(0))
            .saturating_sub(m.shmem.unwrap_or(0))
    });
    Some(Memory {
        total: m.mem_total,
        available,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    // MemTotal and MemAvailable of the fixture's meminfo.
    const FIXTURE_TOTAL_KB: u64 = 24683584;
    const FIXTURE_AVAILABLE_KB: u64 = 22210716;

    #[test]
    fn the_fixture_host() {
        let m = meminfo(fixture!("v1/proc/meminfo")).unwrap();
        assert_eq!(m.total, FIXTURE_TOTAL_KB * 1024);
        assert_eq!(m.available, FIXTURE_AVAILABLE_KB * 1024);
        assert_eq!(m.used(), (FIXTURE_TOTAL_KB - FIXTURE_AVAILABLE_KB) * 1024);
    }

    #[test]
    fn an_old_kernel_without_mem_available() {
        let old: String = fixture!("v1/proc/meminfo")
            .lines()
            .filter(|l| !l.starts_with("MemAvailable:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let field = |k: &str| -> u64 {
            let line = old.lines().find(|l| l.starts_with(k)).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                * 1024
        };
        let m = meminfo(&old).unwrap();
        assert_eq!(
            m.available,
            field("MemFree:") + field("Buffers:") + field("Cached:") + field("SReclaimable:")
                - field("Shmem:")
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(meminfo("MemFree: 12 kB\n"), None);
    }
}
