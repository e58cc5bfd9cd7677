//! The sampler of one process: each tick, every thread's `schedstat` and — only when the
//! thread has run since the last tick — its `syscall` line, decoded. Files stay open between
//! ticks and are re-read with `pread` at offset 0 (seq_file regenerates them), so a parked
//! thread costs one small read per tick. Threads are re-listed once a second.

use super::decode::{Decoder, Line, parse_line};
use super::target::{self, TcpTable};
use lookout_detectors::timeout::{
    Call, Party, ProcessSample, ThreadSample, ThreadState, Timeout, waits_on_other_party,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI64, Ordering};
use thiserror::Error;

/// How often the thread list is re-read: a new thread is looked at within this, well inside
/// any hang threshold. (Every second, re-reading a 500-thread task directory was a tenth of
/// the sampler's cost.)
const RESCAN_SECONDS: f64 = 2.0;
/// Seconds a thread must go without a wait on another party before it is looked at only every
/// [`CALM_PERIOD`]: parked pools and sleepers cost little, and a thread that starts waiting on
/// a peer is seen within two seconds — far below any hang threshold. Longer than the
/// detector's gap tolerance (2 s), so a retry loop sleeping between attempts stays fully
/// sampled. (A 1 s period cost 1.6 % of a core for 500 threads that wake every 50 ms, most of
/// it the kernel rendering their `syscall` files; 2 s halves it.)
const CALM_AFTER: f64 = 3.0;
/// How often a thread that sleeps in a wait on another party is decoded again although it
/// did not run: the evidence around it (the peer's side) changes while it sleeps.
const REFRESH_PARTY: f64 = 1.0;
const CALM_PERIOD: f64 = 2.0;

#[derive(Debug, Error)]
pub enum SampleError {
    #[error("no process with pid {0}")]
    NoProcess(i32),
    #[error(
        "cannot read the threads of pid {0}: permission denied; lookout needs CAP_SYS_PTRACE \
         (or root) to read /proc/PID/task/TID/syscall"
    )]
    PermissionDenied(i32),
    #[error("cannot read /proc/{0}: {1}")]
    Io(i32, std::io::Error),
}

/// File descriptors the samplers of this process may hold between them (two per followed
/// thread). Unlimited until the daemon sets it from RLIMIT_NOFILE: what is left after HTTP
/// connections and everything else, so that a watched service with thousands of threads makes
/// threads go unsampled (and says so) instead of starving accept(2) and the caches of fds.
static FD_BUDGET: AtomicI64 = AtomicI64::new(i64::MAX);

/// Set the fd budget of all samplers (see [`FD_BUDGET`]).
pub fn set_fd_budget(fds: u64) {
    FD_BUDGET.store(fds.min(i64::MAX as u64) as i64, Ordering::Relaxed);
}

/// Two fds of [`FD_BUDGET`], given back on drop.
struct FdTicket;

impl FdTicket {
    fn take() -> Option<Self> {
        let left = FD_BUDGET.fetch_sub(2, Ordering::AcqRel);
        if left < 2 {
            FD_BUDGET.fetch_add(2, Ordering::AcqRel);
            return None;
        }
        Some(FdTicket)
    }
}

impl Drop for FdTicket {
    fn drop(&mut self) {
        FD_BUDGET.fetch_add(2, Ordering::AcqRel);
    }
}

struct ThreadFiles {
    /// The budget of the two files below.
    _fds: FdTicket,
    syscall: File,
    schedstat: File,
    comm: std::sync::Arc<str>,
    /// (run time ns, times scheduled in) at the last tick.
    last_sched: Option<(u64, u64)>,
    last: Option<ThreadSample>,
    /// Since when the thread has not been seen waiting on another party.
    calm_since: Option<f64>,
    /// Not looked at again before this time (calm threads).
    next_look: f64,
    /// The last decoded call waits on another party.
    on_party: bool,
    /// When the syscall line was last decoded.
    decoded_at: f64,
}

impl ThreadFiles {
    /// Decide when to look next, from what the thread was just seen doing.
    fn schedule(&mut self, state: &ThreadState, at: f64) {
        match state {
            ThreadState::Blocked(call) if waits_on_other_party(call).is_some() => {
                self.calm_since = None;
            }
            _ => {
                self.calm_since.get_or_insert(at);
            }
        }
        self.next_look = if self
            .calm_since
            .is_some_and(|since| at - since >= CALM_AFTER)
        {
            at + CALM_PERIOD
        } else {
            0.0
        };
    }
}

/// Samples one process. Never stops or attaches to it.
pub struct ProcessSampler {
    pid: i32,
    pidfd: Option<OwnedFd>,
    threads: HashMap<i32, ThreadFiles>,
    names: HashMap<i32, String>,
    last_scan: f64,
    sockopt_cache: HashMap<(u64, bool), Timeout>,
    /// Owners of the other ends of connections (see `Decoder::owners`).
    owners: HashMap<u64, Option<(i32, i32)>>,
    buf: Vec<u8>,
    /// CLOCK_MONOTONIC minus the scheduler clock of `sched` files (they drift apart by
    /// seconds on some machines), measured on our own running thread.
    sched_offset: f64,
    /// When the process started, on CLOCK_MONOTONIC: no call of it began earlier.
    started: f64,
    /// Threads the last scan could not open for want of file descriptors (EMFILE/ENFILE):
    /// they are not sampled, and the watcher says so.
    unsampled: usize,
}

impl ProcessSampler {
    /// Open the process; fails with [`SampleError::PermissionDenied`] when the rights to read
    /// its threads are missing.
    pub fn new(pid: i32) -> Result<Self, SampleError> {
        let mut s = Self {
            pid,
            pidfd: target::pidfd_open(pid),
            threads: HashMap::new(),
            names: HashMap::new(),
            last_scan: f64::NEG_INFINITY,
            sockopt_cache: HashMap::new(),
            owners: HashMap::new(),
            buf: vec![0u8; 512],
            sched_offset: 0.0,
            started: process_start_monotonic(pid).unwrap_or(f64::NEG_INFINITY),
            unsampled: 0,
        };
        s.rescan(now())?;
        // Prove the rights on the main thread now rather than at the first tick.
        let path = format!("/proc/{pid}/task/{pid}/syscall");
        let mut b = [0u8; 256];
        match File::open(&path).and_then(|f| f.read_at(&mut b, 0)) {
            Ok(_) => Ok(s),
            Err(e) => Err(classify_error(pid, e)),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A thread's command name as of now (it changes on exec and prctl).
    pub fn thread_name(&self, tid: i32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", self.pid))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The process's command name.
    pub fn process_name(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// The process's argv as of now (empty for a kernel thread or a process that is gone):
    /// some clients declare their deadline only there.
    pub fn command_line(&self) -> Vec<String> {
        std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Threads left unsampled at the last scan because no file descriptor was left.
    pub fn unsampled(&self) -> usize {
        self.unsampled
    }

    fn rescan(&mut self, at: f64) -> Result<(), SampleError> {
        let dir = format!("/proc/{}/task", self.pid);
        let entries = std::fs::read_dir(&dir).map_err(|e| classify_error(self.pid, e))?;
        // A set: with thousands of threads a list made this rescan quadratic.
        let mut seen = std::collections::HashSet::new();
        self.unsampled = 0;
        for e in entries.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            seen.insert(tid);
            if self.threads.contains_key(&tid) {
                continue;
            }
            let Some(ticket) = FdTicket::take() else {
                self.unsampled += 1;
                continue;
            };
            let base = format!("{dir}/{tid}");
            let (syscall, schedstat) = match (
                File::open(format!("{base}/syscall")),
                File::open(format!("{base}/schedstat")),
            ) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    if matches!(e.kind(), ErrorKind::PermissionDenied) {
                        return Err(SampleError::PermissionDenied(self.pid));
                    }
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        self.unsampled += 1;
                    }
                    continue; // the thread exited meanwhile, or no fd was left
                }
            };
            let comm = std::fs::read_to_string(format!("{base}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            self.names.insert(tid, comm.clone());
            self.threads.insert(
                tid,
                ThreadFiles {
                    _fds: ticket,
                    syscall,
                    schedstat,
                    comm: comm.into(),
                    last_sched: None,
                    last: None,
                    calm_since: None,
                    next_look: 0.0,
                    on_party: false,
                    decoded_at: 0.0,
                },
            );
        }
        self.threads.retain(|tid, _| seen.contains(tid));
        self.names.retain(|tid, _| seen.contains(tid));
        self.last_scan = at;
        if let Some(offset) = sched_clock_offset() {
            self.sched_offset = offset;
        }
        Ok(())
    }

    /// Number of threads followed.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// One sample of every thread.
    pub fn sample(&mut self) -> Result<ProcessSample, SampleError> {
        let at = now();
        if at - self.last_scan >= RESCAN_SECONDS {
            self.rescan(at)?;
        }
        let mut tcp: Option<TcpTable> = None;
        let mut out = Vec::with_capacity(self.threads.len());
        let mut gone = Vec::new();
        let pid = self.pid;
        let names = &self.names;
        for (tid, tf) in self.threads.iter_mut() {
            if at < tf.next_look
                && let Some(last) = &tf.last
            {
                out.push(last.clone());
                continue;
            }
            let Some(sched) = read_schedstat(&tf.schedstat, &mut self.buf) else {
                gone.push(*tid);
                continue;
            };
            // Not scheduled since the last tick: still in the same call, nothing to re-read —
            // except, now and then, a wait on another party, whose evidence (the peer's side,
            // the connection's counters) moves while the thread sleeps.
            if tf.last_sched == Some(sched)
                && let Some(last) = &tf.last
                && last.state != ThreadState::Running
                && !(tf.on_party && at - tf.decoded_at >= REFRESH_PARTY)
            {
                let last = last.clone();
                tf.schedule(&last.state, at);
                out.push(last);
                continue;
            }
            tf.last_sched = Some(sched);
            let line = match tf.syscall.read_at(&mut self.buf, 0) {
                Ok(n) => std::str::from_utf8(&self.buf[..n])
                    .ok()
                    .and_then(parse_line),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                    return Err(SampleError::PermissionDenied(pid));
                }
                Err(_) => {
                    gone.push(*tid);
                    continue;
                }
            };
            let line = line.unwrap_or(Line::Outside);
            let mut decoder = Decoder {
                pid,
                pidfd: self.pidfd.as_ref(),
                tcp: &mut tcp,
                sockopt_cache: &mut self.sockopt_cache,
                thread_names: names,
                info_budget: super::decode::SOCKET_INFO_BUDGET,
                owners: &mut self.owners,
            };
            let decoded = decoder.decode(&line);
            let mut state = decoded.state;
            let mut blocked_since = None;
            let mut io = None;
            if let ThreadState::Blocked(call) = &mut state {
                let on_party = waits_on_other_party(call).is_some();
                if on_party || decoded.deadline_remaining {
                    blocked_since = exec_start(&format!("/proc/{pid}/task/{tid}/sched"))
                        .filter(|s| *s > 0.0)
                        .map(|s| (s + self.sched_offset).max(self.started))
                        .filter(|s| *s <= at);
                }
                if decoded.deadline_remaining
                    && let (Timeout::Finite(rem), Some(since)) = (call.timeout, blocked_since)
                {
                    call.timeout = Timeout::Finite(round_ms(rem + (at - since)));
                }
                if on_party || has_socket(call) {
                    io = read_io(pid, *tid);
                }
            } else {
                io = read_io(pid, *tid);
            }
            let sample = ThreadSample {
                tid: *tid,
                comm: tf.comm.clone(),
                state,
                wakeups: sched.1,
                blocked_since,
                io,
            };
            tf.schedule(&sample.state, at);
            tf.on_party = matches!(&sample.state, ThreadState::Blocked(c) if waits_on_other_party(c).is_some());
            tf.decoded_at = at;
            tf.last = Some(sample.clone());
            out.push(sample);
        }
        for tid in gone {
            self.threads.remove(&tid);
        }
        if out.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(SampleError::NoProcess(pid));
        }
        out.sort_by_key(|t| t.tid);
        Ok(ProcessSample { at, threads: out })
    }
}

fn has_socket(call: &Call) -> bool {
    call.parties
        .iter()
        .any(|p| matches!(p, Party::Socket { .. }))
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

fn classify_error(pid: i32, e: std::io::Error) -> SampleError {
    match e.kind() {
        ErrorKind::NotFound => SampleError::NoProcess(pid),
        ErrorKind::PermissionDenied => SampleError::PermissionDenied(pid),
        _ if e.raw_os_error() == Some(libc::ESRCH) => SampleError::NoProcess(pid),
        _ => SampleError::Io(pid, e),
    }
}

/// (run time ns, times scheduled in) from `schedstat`: "run_ns wait_ns timeslices".
fn read_schedstat(f: &File, buf: &mut [u8]) -> Option<(u64, u64)> {
    let n = f.read_at(buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let mut it = text.split_whitespace();
    let run = it.next()?.parse().ok()?;
    let _wait = it.next()?;
    let slices = it.next()?.parse().ok()?;
    Some((run, slices))
}

/// When the thread last started running, on the scheduler clock (≈ CLOCK_MONOTONIC): for a
/// sleeping thread, about when its current call began. From `sched` (`se.exec_start`, ms).
fn exec_start(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("se.exec_start"))?;
    let ms: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(ms / 1000.0)
}

/// CLOCK_MONOTONIC − scheduler clock: our own thread is running, so its `exec_start` is
/// "now" on the scheduler clock.
fn sched_clock_offset() -> Option<f64> {
    let mono = now();
    let own = exec_start("/proc/thread-self/sched")?;
    Some(mono - own)
}

/// The process's start time on CLOCK_MONOTONIC (its stat starttime is on the boot clock).
fn process_start_monotonic(pid: i32) -> Option<f64> {
    let ticks = crate::probes::procinfo::start_ticks(pid)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let age = crate::probes::procinfo::boot_clock_secs() - ticks as f64 / hz as f64;
    Some(now() - age.max(0.0))
}

/// (rchar, wchar) of one thread.
fn read_io(pid: i32, tid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/io")).ok()?;
    let mut r = None;
    let mut w = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("rchar:") {
            r = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("wchar:") {
            w = v.trim().parse().ok();
        }
    }
    Some((r?, w?))
}

/// Seconds on CLOCK_MONOTONIC, the clock of every sample.
pub fn now() -> f64 {
    target::clock_secs(libc::CLOCK_MONOTONIC)
}
