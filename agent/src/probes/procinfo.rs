//! The process collector: small facts about one process read from `PROC/PID` (parsed by
//! procfs), shared by the probes and the timeout sampler: start age on the boot clock, thread
//! counts, limits.

use super::root::ProcRoot;
use procfs::process::{LimitValue, Process};
use std::path::Path;
use std::time::Duration;

/// Seconds since boot on CLOCK_BOOTTIME, the clock `/proc/PID/stat` starttime counts on.
pub fn boot_clock_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Seconds since the Unix epoch (wall clock), for `process_start_time_seconds`.
pub fn wall_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What one look at a process tells.
#[derive(Clone, Debug)]
pub struct ProcSnapshot {
    pub pid: i32,
    /// starttime in clock ticks since boot: with the pid, the identity of a process instance.
    pub start_ticks: u64,
    pub threads: i64,
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    pub open_fds: Option<usize>,
    pub rlimit_nproc: Option<u64>,
    /// Owner of /proc/PID: the effective uid, whose tasks RLIMIT_NPROC counts (the kernel
    /// counts by real uid; the two differ only in set-uid programs).
    pub uid: Option<u32>,
}

impl ProcSnapshot {
    /// `pid` under the default `/proc`.
    pub fn read(pid: i32) -> Option<Self> {
        Self::read_in(&ProcRoot::default(), pid)
    }

    /// The agent's own process, at `/proc/self` whatever the probes' root: its pid means
    /// the agent only in its own pid namespace.
    pub fn myself() -> Option<Self> {
        Self::of(Process::myself().ok()?, Path::new("/proc/self"))
    }

    /// `pid` under `root`; None when it is gone, unreadable, or a zombie.
    pub fn read_in(root: &ProcRoot, pid: i32) -> Option<Self> {
        Self::of(root.process(pid)?, &root.proc_path().join(pid.to_string()))
    }

    /// `p`, whose directory is `dir`.
    fn of(p: Process, dir: &Path) -> Option<Self> {
        let pid = p.pid();
        let stat = p.stat().ok()?;
        if stat.state == 'Z' || stat.state == 'X' {
            return None;
        }
        let rlimit_nproc = p
            .limits()
            .ok()
            .and_then(|l| match l.max_processes.soft_limit {
                LimitValue::Value(v) => Some(v),
                LimitValue::Unlimited => None,
            });
        Some(Self {
            pid,
            start_ticks: stat.starttime,
            threads: stat.num_threads,
            cpu_ticks: stat.utime + stat.stime,
            rss_bytes: stat.rss * procfs::page_size(),
            open_fds: fd_count(dir),
            rlimit_nproc,
            uid: p.uid().ok(),
        })
    }

    /// Add another process of the same service: threads, CPU, memory and fds are summed;
    /// identity, limits and uid stay those of the main process.
    pub fn absorb(&mut self, other: &ProcSnapshot) {
        self.threads += other.threads;
        self.cpu_ticks += other.cpu_ticks;
        self.rss_bytes += other.rss_bytes;
        self.open_fds = match (self.open_fds, other.open_fds) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    /// How long ago this process started, on the boot clock (10 ms resolution).
    pub fn age(&self) -> Duration {
        let started = self.start_ticks as f64 / procfs::ticks_per_second() as f64;
        Duration::from_secs_f64((boot_clock_secs() - started).max(0.0))
    }

    /// Start time as Unix seconds.
    pub fn start_unix_secs(&self) -> f64 {
        wall_secs() - self.age().as_secs_f64()
    }
}

/// Entries of `PROC/PID/fd`. Not procfs's `fd_count`: that trusts the directory's size,
/// which is the count only on procfs of Linux 6.2 and later, and the block size (4096) on
/// any other file system, such as a fixture tree.
fn fd_count(dir: &Path) -> Option<usize> {
    Some(std::fs::read_dir(dir.join("fd")).ok()?.count())
}

/// starttime of a pid under the default `/proc`, to tell a live process from a reused pid.
pub fn start_ticks(pid: i32) -> Option<u64> {
    start_ticks_in(&ProcRoot::default(), pid)
}

/// starttime of a pid under `root`.
pub fn start_ticks_in(root: &ProcRoot, pid: i32) -> Option<u64> {
    root.process(pid)?.stat().ok().map(|s| s.starttime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> ProcRoot {
        ProcRoot::under(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc/v1"),
        )
    }

    #[test]
    fn a_process_whose_comm_holds_spaces_and_parentheses() {
        // stat reads `2266 (odd) (name x) S 2262 ...`: the fields after the comm still land.
        let s = ProcSnapshot::read_in(&fixture(), 2266).unwrap();
        assert_eq!(s.pid, 2266);
        assert_eq!(s.start_ticks, 1132774);
        assert_eq!(s.threads, 1);
        assert_eq!(s.cpu_ticks, 0);
        assert_eq!(s.rss_bytes, 424 * procfs::page_size());
        assert_eq!(s.open_fds, Some(4));
        assert_eq!(s.rlimit_nproc, Some(96363));
    }

    #[test]
    fn a_kernel_thread_has_no_memory() {
        let s = ProcSnapshot::read_in(&fixture(), 2).unwrap();
        assert_eq!((s.start_ticks, s.threads, s.rss_bytes), (25, 1, 0));
        // The fixture keeps no fd directory (git keeps no empty one), as when fd is
        // unreadable: no count rather than 0.
        assert_eq!(s.open_fds, None);
    }

    #[test]
    fn a_zombie_is_not_a_running_process_but_still_has_a_start() {
        assert!(ProcSnapshot::read_in(&fixture(), 2269).is_none());
        assert_eq!(start_ticks_in(&fixture(), 2269), Some(1132777));
        assert!(ProcSnapshot::read_in(&fixture(), 999_999).is_none());
        assert_eq!(start_ticks_in(&fixture(), 999_999), None);
    }

    #[test]
    fn the_agent_itself_is_read_at_proc_self() {
        let me = ProcSnapshot::myself().unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.threads >= 1 && me.rss_bytes > 0);
    }
}
