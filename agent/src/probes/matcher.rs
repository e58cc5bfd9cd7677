//! Finding the processes of a watched service: by executable name, command-line regex or
//! pidfile. The oldest match is the service's main process (its instance: a new one is a
//! restart); the service is every matching process and all their descendants (a prefork
//! master and its workers), or with `processes = "tree"` the main process and its
//! descendants only — each process counted once.
//!
//! Watchers that need a /proc walk share one: a table of every process (pid, start, comm, exe
//! name, command line) is kept for [`TABLE_MAX_AGE`], so ten watchers looking at once (the
//! agent's start, a restart storm) cost one walk, not ten.

use super::procinfo::start_ticks;
use crate::config::ProcessMatch;
use procfs::process::Process;
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

static TABLE: Mutex<Option<(Instant, Arc<Vec<Entry>>)>> = Mutex::new(None);

fn table() -> Arc<Vec<Entry>> {
    let mut slot = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, t)) = slot.as_ref()
        && at.elapsed() < TABLE_MAX_AGE
    {
        return t.clone();
    }
    let t = Arc::new(walk());
    *slot = Some((Instant::now(), t.clone()));
    t
}

fn walk() -> Vec<Entry> {
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter(|p| p.pid != me)
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

/// The pid of the service's main process, if it runs.
pub fn find(matcher: &ProcessMatch) -> Option<i32> {
    match matcher {
        ProcessMatch::Pidfile(path) => {
            let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
            start_ticks(pid).map(|_| pid)
        }
        m @ (ProcessMatch::Exe(_) | ProcessMatch::Cmdline(_)) => oldest(|e| entry_matches(e, m)),
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

fn oldest(pred: impl Fn(&Entry) -> bool) -> Option<i32> {
    table()
        .iter()
        .filter(|e| pred(e))
        .min_by_key(|e| (e.start_ticks, e.pid))
        .map(|e| e.pid)
}

/// Every process of the service whose main process is `main`: `main`, with `all_matches` every
/// other process `matcher` matches, and the descendants of all of them; sorted, each once.
pub fn members(main: i32, matcher: &ProcessMatch, all_matches: bool) -> Vec<i32> {
    let t = table();
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
pub fn user_tasks(uid: u32) -> u64 {
    table()
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
pub fn still_running(pid: i32, ticks: u64) -> bool {
    Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.starttime == ticks && s.state != 'Z')
}
