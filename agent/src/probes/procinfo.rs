//! Small facts about processes read from /proc (through procfs), shared by the probes and the
//! timeout sampler: start age on the boot clock, thread counts, limits.

use procfs::process::{LimitValue, Process};
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
}

impl ProcSnapshot {
    pub fn read(pid: i32) -> Option<Self> {
        let p = Process::new(pid).ok()?;
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
            open_fds: p.fd_count().ok(),
            rlimit_nproc,
        })
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

/// starttime of a pid, to tell a live process from a reused pid.
pub fn start_ticks(pid: i32) -> Option<u64> {
    Process::new(pid).ok()?.stat().ok().map(|s| s.starttime)
}
