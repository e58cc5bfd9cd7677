//! Finding the process of a watched service: by executable name, command-line regex or pidfile.
//! When several processes match (a server and its workers), the oldest is the service.
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
        ProcessMatch::Exe(name) => oldest(|e| exe_matches(e, name)),
        ProcessMatch::Cmdline(re) => oldest(|e| !e.cmdline.is_empty() && re.0.is_match(&e.cmdline)),
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

/// Whether `pid` is still the process it was (`start_ticks` unchanged), read directly.
pub fn still_running(pid: i32, ticks: u64) -> bool {
    Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.starttime == ticks && s.state != 'Z')
}
