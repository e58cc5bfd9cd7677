//! Finding the processes of a watched service: by executable name, command-line regex or
//! pidfile. The oldest match is the service's main process (its instance: a new one is a
//! restart); the service is every matching process and all their descendants (a prefork
//! master and its workers), or with `processes = "tree"` the main process and its
//! descendants only — each process counted once.
//!
//! Watchers that need a /proc walk share one: a table of every process (pid, start, comm, exe
//! name, command line) is kept for [`TABLE_MAX_AGE`], so ten watchers looking at once (the
//! agent's start, a restart storm) cost one walk, not ten. The walk is of the probes'
//! [`ProcRoot`]; procfs parses each `PROC/PID` (stat's comm may hold spaces and parentheses:
//! it splits at the last `)`).

use super::procinfo::start_ticks_in;
use super::root::ProcRoot;
use crate::config::ProcessMatch;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one walk of /proc answers every watcher.
const TABLE_MAX_AGE: Duration = Duration::from_millis(50);

/// What the matchers need to know of one process.
struct Entry {
    pid: i32,
    ppid: i32,
    /// Owner of /proc/PID (the effective uid).
    uid: Option<u32>,
    threads: i64,
    start_ticks: u64,
    comm: String,
    exe_name: Option<String>,
    cmdline: String,
}

/// The last walk, of which root, when.
type Table = (ProcRoot, Instant, Arc<Vec<Entry>>);

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn table(root: &ProcRoot) -> Arc<Vec<Entry>> {
    let mut slot = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((r, at, t)) = slot.as_ref()
        && r == root
        && at.elapsed() < TABLE_MAX_AGE
    {
        return t.clone();
    }
    let t = Arc::new(walk(root));
    *slot = Some((root.clone(), Instant::now(), t.clone()));
    t
}

fn walk(root: &ProcRoot) -> Vec<Entry> {
    // The agent leaves itself out; its pid names it only in its own /proc.
    let me = root.is_default().then(|| std::process::id() as i32);
    let Some(all) = root.processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter(|p| Some(p.pid) != me)
        .filter_map(|p| {
            let stat = p.stat().ok()?;
            if stat.state == 'Z' || stat.state == 'X' {
                return None;
            }
            let exe_name = p.exe().ok().and_then(|exe| {
                let base = exe.file_name()?.to_string_lossy().into_owned();
                // A replaced binary reads "name (deleted)".
                Some(base.strip_suffix(" (deleted)").unwrap_or(&base).to_string())
            });
            let cmdline = p.cmdline().map(|argv| argv.join(" ")).unwrap_or_default();
            Some(Entry {
                pid: p.pid,
                ppid: stat.ppid,
                uid: p.uid().ok(),
                threads: stat.num_threads,
                start_ticks: stat.starttime,
                comm: stat.comm,
                exe_name,
                cmdline,
            })
        })
        .collect()
}

/// The pid of the service's main process under `/proc`, if it runs.
pub fn find(matcher: &ProcessMatch) -> Option<i32> {
    find_in(&ProcRoot::default(), matcher)
}

/// The pid of the service's main process under `root`, if it runs. A pidfile's path is the
/// service's own (not under the root).
pub fn find_in(root: &ProcRoot, matcher: &ProcessMatch) -> Option<i32> {
    match matcher {
        ProcessMatch::Pidfile(path) => {
            let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
            start_ticks_in(root, pid).map(|_| pid)
        }
        m @ (ProcessMatch::Exe(_) | ProcessMatch::Cmdline(_)) => {
            oldest(root, |e| entry_matches(e, m))
        }
    }
}

fn exe_matches(e: &Entry, name: &str) -> bool {
    match &e.exe_name {
        Some(base) => base == name,
        // Without ptrace rights exe is unreadable for other users' processes; comm (the first
        // 15 bytes of the name) is not.
        None => name.starts_with(&e.comm) && e.comm.len() >= name.len().min(15),
    }
}

fn oldest(root: &ProcRoot, pred: impl Fn(&Entry) -> bool) -> Option<i32> {
    table(root)
        .iter()
        .filter(|e| pred(e))
        .min_by_key(|e| (e.start_ticks, e.pid))
        .map(|e| e.pid)
}

/// Every process of the service whose main process is `main`: `main`, with `all_matches` every
/// other process `matcher` matches, and the descendants of all of them; sorted, each once.
pub fn members(root: &ProcRoot, main: i32, matcher: &ProcessMatch, all_matches: bool) -> Vec<i32> {
    let t = table(root);
    let mut roots = vec![main];
    if all_matches {
        roots.extend(
            t.iter()
                .filter(|e| entry_matches(e, matcher))
                .map(|e| e.pid),
        );
    }
    let mut children: std::collections::HashMap<i32, Vec<i32>> = std::collections::HashMap::new();
    for e in t.iter() {
        children.entry(e.ppid).or_default().push(e.pid);
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(pid) = roots.pop() {
        if seen.insert(pid) {
            roots.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    seen.into_iter().collect()
}

/// Threads (tasks) of every process owned by `uid`: what its RLIMIT_NPROC counts. The agent's
/// own threads are left out (the table skips the agent).
pub fn user_tasks(root: &ProcRoot, uid: u32) -> u64 {
    table(root)
        .iter()
        .filter(|e| e.uid == Some(uid))
        .map(|e| e.threads.max(0) as u64)
        .sum()
}

fn entry_matches(e: &Entry, matcher: &ProcessMatch) -> bool {
    match matcher {
        ProcessMatch::Exe(name) => exe_matches(e, name),
        ProcessMatch::Cmdline(re) => !e.cmdline.is_empty() && re.0.is_match(&e.cmdline),
        // A pidfile names one process: its tree is the service.
        ProcessMatch::Pidfile(_) => false,
    }
}

/// Whether `pid` is still the process it was (`start_ticks` unchanged), read directly.
pub fn still_running(root: &ProcRoot, pid: i32, ticks: u64) -> bool {
    root.process(pid)
        .and_then(|p| p.stat().ok())
        .is_some_and(|s| s.starttime == ticks && s.state != 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Regex;

    fn fixture() -> ProcRoot {
        ProcRoot::under(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc/v1"),
        )
    }

    fn exe(name: &str) -> ProcessMatch {
        ProcessMatch::Exe(name.into())
    }

    #[test]
    fn by_exe_name_with_spaces_and_parentheses() {
        assert_eq!(find_in(&fixture(), &exe("odd) (name x")), Some(2266));
        assert_eq!(find_in(&fixture(), &exe("odd")), None);
    }

    #[test]
    fn a_zombie_never_matches() {
        // 2267 and its unreaped child 2269 both run `sleep`; only 2267 is alive.
        assert_eq!(find_in(&fixture(), &exe("sleep")), Some(2267));
        assert_eq!(members(&fixture(), 2267, &exe("sleep"), true), vec![2267]);
        assert!(still_running(&fixture(), 2267, 1132775));
        assert!(!still_running(&fixture(), 2269, 1132777));
        // Same pid, another start: a reused pid is another process.
        assert!(!still_running(&fixture(), 2267, 1132774));
    }

    #[test]
    fn a_kernel_thread_by_comm_as_it_has_no_exe() {
        assert_eq!(find_in(&fixture(), &exe("kthreadd")), Some(2));
    }

    #[test]
    fn by_command_line_joined_by_spaces() {
        let re = |r: &str| ProcessMatch::Cmdline(Regex(regex::Regex::new(r).unwrap()));
        assert_eq!(
            find_in(&fixture(), &re(r"^/tmp/odd\) \(name x 600$")),
            Some(2266)
        );
        // A kernel thread's empty command line matches nothing, not even an empty regex.
        assert_eq!(find_in(&fixture(), &re(r"^$")), None);
    }

    #[test]
    fn user_tasks_counts_the_threads_of_live_processes_of_the_owner() {
        use std::os::unix::fs::MetadataExt;
        // The fixture's owner is whoever checked it out: the owner of /proc/PID.
        let owner = std::fs::metadata(fixture().proc_path().join("2266"))
            .unwrap()
            .uid();
        // 2, 2266 and 2267 with one thread each; the zombie is left out.
        assert_eq!(user_tasks(&fixture(), owner), 3);
        assert_eq!(user_tasks(&fixture(), owner.wrapping_add(1)), 0);
    }
}
