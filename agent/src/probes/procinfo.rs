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
    /// Owner of /proc/PID: the effective uid, whose tasks RLIMIT_NPROC counts (the kernel
    /// counts by real uid; the two differ only in set-uid programs).
    pub uid: Option<u32>,
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

/// starttime of a pid, to tell a live process from a reused pid.
pub fn start_ticks(pid: i32) -> Option<u64> {
    Process::new(pid).ok()?.stat().ok().map(|s| s.starttime)
}

/// The cgroup pids limit that applies to a process: the nearest cgroup on its path, from its
/// own up to the root, whose `pids.max` is a number, with that cgroup's `pids.current`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidsLimit {
    pub max: u64,
    pub current: u64,
}

/// Where cgroup file systems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pids limit of `pid`, read under [`CGROUP_ROOT`].
pub fn pids_limit(pid: i32) -> Option<PidsLimit> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    pids_limit_in(&text, std::path::Path::new(CGROUP_ROOT))
}

/// The pids limit for a process whose `/proc/PID/cgroup` reads `cgroup_file`, with cgroup
/// file systems under `root`. cgroup v1 (`N:pids:/path` → `root/pids/path`) is tried first:
/// on a hybrid host the controller lives there and the v2 tree has none. Then v2 (`0::/path`)
/// at `root/path` (v2 only) or `root/unified/path` (hybrid).
pub fn pids_limit_in(cgroup_file: &str, root: &std::path::Path) -> Option<PidsLimit> {
    let mut candidates = Vec::new();
    for line in cgroup_file.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "pids") {
            candidates.insert(0, root.join("pids").join(rel));
        } else if id == "0" && controllers.is_empty() {
            candidates.push(root.join(rel));
            candidates.push(root.join("unified").join(rel));
        }
    }
    candidates
        .into_iter()
        .find_map(|leaf| nearest_limit(&leaf, root))
}

/// From `leaf` up to (not above) `root`: the first cgroup with a numeric `pids.max`.
fn nearest_limit(leaf: &std::path::Path, root: &std::path::Path) -> Option<PidsLimit> {
    let read = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let mut dir = Some(leaf);
    while let Some(d) = dir {
        if !d.starts_with(root) {
            break;
        }
        if let Some(max) = read(d, "pids.max") {
            if let Ok(max) = max.trim().parse::<u64>() {
                let current = read(d, "pids.current")?.trim().parse().ok()?;
                return Some(PidsLimit { max, current });
            }
        }
        dir = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cg(root: &Path, rel: &str, max: &str, current: u64) {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("pids.max"), format!("{max}\n")).unwrap();
        std::fs::write(d.join("pids.current"), format!("{current}\n")).unwrap();
    }

    #[test]
    fn cgroup_v2_only_finds_the_service_limit_above_an_unlimited_leaf() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        cg(r, "system.slice", "max", 900);
        cg(r, "system.slice/nginx.service", "4915", 17);
        cg(r, "system.slice/nginx.service/worker", "max", 12);
        let file = "0::/system.slice/nginx.service/worker\n";
        assert_eq!(
            pids_limit_in(file, r),
            Some(PidsLimit {
                max: 4915,
                current: 17
            })
        );
        // Unlimited all the way up: no limit.
        assert_eq!(pids_limit_in("0::/system.slice\n", r), None);
    }

    #[test]
    fn cgroup_v1_pids_wins_over_an_empty_unified_tree() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        cg(r, "pids/system.slice/api.service", "64", 9);
        std::fs::create_dir_all(r.join("unified/system.slice/api.service")).unwrap();
        let file = "12:pids:/system.slice/api.service\n5:cpu,cpuacct:/system.slice/api.service\n0::/system.slice/api.service\n";
        assert_eq!(
            pids_limit_in(file, r),
            Some(PidsLimit {
                max: 64,
                current: 9
            })
        );
    }

    #[test]
    fn cgroup_v2_hybrid_under_unified() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        cg(r, "unified/app", "128", 3);
        assert_eq!(
            pids_limit_in("1:name=systemd:/app\n0::/app\n", r),
            Some(PidsLimit {
                max: 128,
                current: 3
            })
        );
    }
}
