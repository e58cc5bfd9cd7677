//! Where the probes read the kernel's files: a `/proc` root and a `/sys` root, `/proc` and
//! `/sys` unless told otherwise — what node_exporter's `--path.procfs` / `--path.sysfs` are,
//! so that an agent in a container can read the host's through a bind mount, and the tests
//! read the fixture trees of `tests/fixtures/proc` with the same code.
//!
//! The agent's own process is the exception: it is read at `/proc/self` (see
//! [`super::procinfo::ProcSnapshot::myself`]), since under another root its pid means
//! another process.

use procfs::process::{Process, ProcessesIter};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcRoot {
    proc: PathBuf,
    sys: PathBuf,
}

impl Default for ProcRoot {
    fn default() -> Self {
        Self::new("/proc", "/sys")
    }
}

impl ProcRoot {
    pub fn new(proc: impl Into<PathBuf>, sys: impl Into<PathBuf>) -> Self {
        Self {
            proc: proc.into(),
            sys: sys.into(),
        }
    }

    /// The trees `DIR/proc` and `DIR/sys`, as the fixtures lay them out.
    pub fn under(dir: &Path) -> Self {
        Self::new(dir.join("proc"), dir.join("sys"))
    }

    /// Whether this is the running kernel's own `/proc`, where the agent's pid is the agent.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn proc_path(&self) -> &Path {
        &self.proc
    }

    pub fn sys_path(&self) -> &Path {
        &self.sys
    }

    /// Where cgroup file systems are mounted: `SYS/fs/cgroup`.
    pub fn cgroup(&self) -> PathBuf {
        self.sys.join("fs/cgroup")
    }

    /// `PROC/rel` read whole; None when absent or unreadable (a probe then skips that value).
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.proc.join(rel)).ok()
    }

    /// `SYS/rel` read whole.
    pub fn read_sys(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.sys.join(rel)).ok()
    }

    /// `PROC/PID` through procfs, which parses what lies below it.
    pub fn process(&self, pid: i32) -> Option<Process> {
        Process::new_with_root(self.proc.join(pid.to_string())).ok()
    }

    /// Every `PROC/PID` directory.
    pub fn processes(&self) -> Option<ProcessesIter> {
        procfs::process::all_processes_with_root(&self.proc).ok()
    }
}
