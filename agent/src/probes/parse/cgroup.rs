//! `/proc/PID/cgroup`: where to look for the pids limit of a process.

use procfs::prelude::*;
use std::path::{Path, PathBuf};

/// The cgroup directories, under the cgroup mount `root`, whose `pids.max` may limit the
/// process, leaf first for each hierarchy: cgroup v1 (`N:pids:/path` → `root/pids/path`) is
/// tried first, since on a hybrid host the controller lives there and the v2 tree has none;
/// then v2 (`0::/path`) at `root/path` (v2 only) or `root/unified/path` (hybrid). Empty when
/// the file does not parse.
pub fn pids_candidates(cgroup_file: &str, root: &Path) -> Vec<PathBuf> {
    let Ok(groups) = procfs::ProcessCGroups::from_read(cgroup_file.as_bytes()) else {
        return Vec::new();
    };
    let mut candidates = Vec::new();
    for g in groups {
        let rel = g.pathname.trim_start_matches('/');
        if g.controllers.iter().any(|c| c == "pids") {
            candidates.insert(0, root.join("pids").join(rel));
        } else if g.hierarchy == 0 && g.controllers.is_empty() {
            candidates.push(root.join(rel));
            candidates.push(root.join("unified").join(rel));
        }
    }
    candidates
}

/// A `pids.max`: a number, or `max` (no limit here; look further up).
pub fn pids_max(text: &str) -> Option<u64> {
    super::number(text)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn hybrid_host_v1_pids_first_then_v2() {
        let root = Path::new("/R");
        assert_eq!(
            pids_candidates(fixture!("v1/proc/2266/cgroup"), root),
            [
                "/R/pids/lookout-fixture",
                "/R/lookout-fixture",
                "/R/unified/lookout-fixture"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn v2_only_host() {
        assert_eq!(
            pids_candidates(fixture!("v2/proc/2266/cgroup"), Path::new("/R")),
            [
                "/R/system.slice/lookout-fixture.service/worker",
                "/R/unified/system.slice/lookout-fixture.service/worker"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_kernel_thread_sits_at_the_roots() {
        let c = pids_candidates(fixture!("v1/proc/2/cgroup"), Path::new("/R"));
        assert_eq!(c[0], PathBuf::from("/R/pids/"));
    }

    #[test]
    fn garbage_gives_nothing_to_read() {
        assert!(pids_candidates("not a cgroup file", Path::new("/R")).is_empty());
        assert_eq!(pids_max("max\n"), None);
        assert_eq!(pids_max("64\n"), Some(64));
    }
}
