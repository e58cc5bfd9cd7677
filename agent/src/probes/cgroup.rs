//! The cgroup collector: the pids limit (systemd's TasksMax) that applies to a process, read
//! under the cgroup mount of the probes' `/sys` root.

use super::parse::{self, cgroup::pids_candidates};
use super::root::ProcRoot;
use std::path::Path;

/// The cgroup pids limit that applies to a process: the nearest cgroup on its path, from its
/// own up to the root, whose `pids.max` is a number, with that cgroup's `pids.current`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidsLimit {
    pub max: u64,
    pub current: u64,
}

/// The pids limit of `pid`: `PROC/PID/cgroup` followed under `SYS/fs/cgroup`.
pub fn pids_limit(root: &ProcRoot, pid: i32) -> Option<PidsLimit> {
    let text = root.read(&format!("{pid}/cgroup"))?;
    pids_limit_in(&text, &root.cgroup())
}

/// The pids limit for a process whose `/proc/PID/cgroup` reads `cgroup_file`, with cgroup
/// file systems under `root` (the order of [`pids_candidates`]).
pub fn pids_limit_in(cgroup_file: &str, root: &Path) -> Option<PidsLimit> {
    pids_candidates(cgroup_file, root)
        .into_iter()
        .find_map(|leaf| nearest_limit(&leaf, root))
}

/// From `leaf` up to (not above) `root`: the first cgroup with a numeric `pids.max`.
fn nearest_limit(leaf: &Path, root: &Path) -> Option<PidsLimit> {
    let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let mut dir = Some(leaf);
    while let Some(d) = dir {
        if !d.starts_with(root) {
            break;
        }
        if let Some(max) = read(d, "pids.max")
            .as_deref()
            .and_then(parse::cgroup::pids_max)
        {
            let current = parse::number(&read(d, "pids.current")?)?;
            return Some(PidsLimit { max, current });
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

    fn fixture_root(tree: &str) -> ProcRoot {
        ProcRoot::under(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/proc")
                .join(tree),
        )
    }

    #[test]
    fn fixture_hybrid_host_limit_from_the_v1_pids_hierarchy() {
        // Copied from this machine: a process in a v1 pids cgroup with pids.max 64.
        assert_eq!(
            pids_limit(&fixture_root("v1"), 2266),
            Some(PidsLimit {
                max: 64,
                current: 2
            })
        );
        // A kernel thread at the root of every hierarchy: the root has no pids.max.
        assert_eq!(pids_limit(&fixture_root("v1"), 2), None);
        // No such process.
        assert_eq!(pids_limit(&fixture_root("v1"), 999_999), None);
    }

    #[test]
    fn fixture_v2_only_host_limit_of_the_service_above_an_unlimited_leaf() {
        assert_eq!(
            pids_limit(&fixture_root("v2"), 2266),
            Some(PidsLimit {
                max: 64,
                current: 2
            })
        );
    }
}
