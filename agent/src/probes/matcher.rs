//! Finding the process of a watched service: by executable name, command-line regex or pidfile.
//! When several processes match (a server and its workers), the oldest is the service.

use super::procinfo::start_ticks;
use crate::config::ProcessMatch;
use procfs::process::Process;

/// The pid of the service's main process, if it runs.
pub fn find(matcher: &ProcessMatch) -> Option<i32> {
    let me = std::process::id() as i32;
    match matcher {
        ProcessMatch::Pidfile(path) => {
            let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
            start_ticks(pid).map(|_| pid)
        }
        ProcessMatch::Exe(name) => oldest(me, |p| exe_matches(p, name)),
        ProcessMatch::Cmdline(re) => oldest(me, |p| {
            p.cmdline()
                .ok()
                .filter(|argv| !argv.is_empty())
                .is_some_and(|argv| re.0.is_match(&argv.join(" ")))
        }),
    }
}

fn exe_matches(p: &Process, name: &str) -> bool {
    if let Ok(exe) = p.exe() {
        let base = exe.file_name().map(|b| b.to_string_lossy().into_owned());
        if let Some(base) = base {
            // A replaced binary reads "name (deleted)".
            let base = base.strip_suffix(" (deleted)").unwrap_or(&base);
            return base == name;
        }
    }
    // Without ptrace rights exe is unreadable for other users' processes; comm is not.
    p.stat()
        .is_ok_and(|s| name.starts_with(&s.comm) && s.comm.len() >= name.len().min(15))
}

fn oldest(me: i32, pred: impl Fn(&Process) -> bool) -> Option<i32> {
    let mut best: Option<(u64, i32)> = None;
    for p in procfs::process::all_processes().ok()?.flatten() {
        if p.pid == me {
            continue;
        }
        if !pred(&p) {
            continue;
        }
        let Ok(stat) = p.stat() else { continue };
        if stat.state == 'Z' {
            continue;
        }
        if best.is_none_or(|(t, pid)| (stat.starttime, p.pid) < (t, pid)) {
            best = Some((stat.starttime, p.pid));
        }
    }
    best.map(|(_, pid)| pid)
}
