//! Decoding `/proc/PID/task/TID/syscall` (x86_64): which timeout-related call a thread is
//! blocked in, its timeout (integer argument, or a timespec/timeval read from the target's
//! memory, or the socket's SO_RCVTIMEO), and what it waits on.

use super::target::{self, FdKind, TcpTable};
use lookout_detectors::timeout::{
    Call, Link, Party, PeerSide, Role, ThreadState, Timeout, TimeoutSource,
};
use procfs::net::TcpState;
use std::collections::HashMap;
use std::os::fd::OwnedFd;

// x86_64 system call numbers (asm/unistd_64.h).
const SYS_READ: i64 = 0;
const SYS_WRITE: i64 = 1;
const SYS_POLL: i64 = 7;
const SYS_READV: i64 = 19;
const SYS_SELECT: i64 = 23;
const SYS_NANOSLEEP: i64 = 35;
const SYS_CONNECT: i64 = 42;
const SYS_ACCEPT: i64 = 43;
const SYS_SENDTO: i64 = 44;
const SYS_RECVFROM: i64 = 45;
const SYS_SENDMSG: i64 = 46;
const SYS_RECVMSG: i64 = 47;
const SYS_WAIT4: i64 = 61;
const SYS_FCNTL: i64 = 72;
const SYS_FLOCK: i64 = 73;
const SYS_FUTEX: i64 = 202;
const SYS_CLOCK_NANOSLEEP: i64 = 230;
const SYS_EPOLL_WAIT: i64 = 232;
const SYS_WAITID: i64 = 247;
const SYS_PSELECT6: i64 = 270;
const SYS_PPOLL: i64 = 271;
const SYS_EPOLL_PWAIT: i64 = 281;
const SYS_ACCEPT4: i64 = 288;
const SYS_RECVMMSG: i64 = 299;
const SYS_EPOLL_PWAIT2: i64 = 441;

const FUTEX_WAIT: u64 = 0;
const FUTEX_LOCK_PI: u64 = 6;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAIT_REQUEUE_PI: u64 = 11;
const FUTEX_LOCK_PI2: u64 = 13;
const FUTEX_CLOCK_REALTIME: u64 = 256;
const FUTEX_CMD_MASK: u64 = 127;
/// The value glibc's and Rust's mutexes store in their futex word while locked with waiters.
const MUTEX_CONTENDED: u64 = 2;

const F_SETLKW: u64 = 7;
const F_OFD_SETLKW: u64 = 38;
const LOCK_NB: u64 = 4;

/// Descriptors looked at per poll/select/epoll call, to bound the work on huge sets.
const MAX_FDS: usize = 256;

/// One line of `/proc/PID/task/TID/syscall`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Running,
    /// Blocked, but not in a system call (`-1 sp pc`).
    Outside,
    Call {
        nr: i64,
        args: [u64; 6],
        pc: u64,
    },
}

pub fn parse_line(text: &str) -> Option<Line> {
    let text = text.trim();
    if text == "running" {
        return Some(Line::Running);
    }
    let mut it = text.split_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    if nr < 0 {
        return Some(Line::Outside);
    }
    let mut vals = [0u64; 8];
    for v in vals.iter_mut() {
        let s = it.next()?;
        *v = u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()?;
    }
    let mut args = [0u64; 6];
    args.copy_from_slice(&vals[..6]);
    Some(Line::Call {
        nr,
        args,
        pc: vals[7],
    })
}

/// The decoded state, and whether its timeout is the remaining part of an absolute deadline
/// (the sampler then adds the time already waited).
pub struct Decoded {
    pub state: ThreadState,
    pub deadline_remaining: bool,
}

/// Decoding context for one process during one sample: the TCP table is read at most once
/// per sample and only when a socket needs it.
pub struct Decoder<'a> {
    pub pid: i32,
    pub pidfd: Option<&'a OwnedFd>,
    pub tcp: &'a mut Option<TcpTable>,
    /// Socket timeouts by (inode, send side): they rarely change, getfd is not free.
    pub sockopt_cache: &'a mut HashMap<(u64, bool), Timeout>,
    /// Names of the process's threads, to name a mutex holder.
    pub thread_names: &'a HashMap<i32, String>,
    /// Client sockets still to be asked (pidfd_getfd) while decoding this call.
    pub info_budget: usize,
    /// Owner (pid, fd) of the other end of a connection, by that end's inode: found once by a
    /// scan of /proc.
    pub owners: &'a mut HashMap<u64, Option<(i32, i32)>>,
}

/// A client must have awaited its peer this long before the peer's side is looked at (it
/// costs a scan of /proc the first time): a request answered within it is the normal case.
const PEER_LOOK_AFTER_MS: u32 = 1000;

/// Client sockets asked per decoded call.
pub const SOCKET_INFO_BUDGET: usize = 16;

impl Decoder<'_> {
    pub fn decode(&mut self, line: &Line) -> Decoded {
        let (nr, a, pc) = match line {
            Line::Running => return plain(ThreadState::Running),
            Line::Outside => return plain(ThreadState::Elsewhere),
            Line::Call { nr, args, pc } => (*nr, *args, *pc),
        };
        let fd0 = a[0] as i32;
        let mut remaining = false;
        let mut source = TimeoutSource::Argument;
        let (name, timeout, parties): (&str, Timeout, Vec<Party>) = match nr {
            SYS_READ | SYS_READV | SYS_RECVFROM | SYS_RECVMSG | SYS_RECVMMSG => {
                let (t, p) = self.fd_wait(fd0, false);
                source = TimeoutSource::SocketOption;
                (syscall_name(nr), t, p)
            }
            SYS_WRITE | SYS_SENDTO | SYS_SENDMSG | SYS_CONNECT => {
                let (t, p) = self.fd_wait(fd0, true);
                source = TimeoutSource::SocketOption;
                (syscall_name(nr), t, p)
            }
            SYS_ACCEPT | SYS_ACCEPT4 => (
                syscall_name(nr),
                Timeout::Infinite,
                self.fd_parties(fd0, true),
            ),
            SYS_POLL => ("poll", ms_timeout(a[2]), self.poll_parties(a[0], a[1])),
            SYS_PPOLL => (
                "ppoll",
                self.ptr_timeout(a[2], true),
                self.poll_parties(a[0], a[1]),
            ),
            SYS_SELECT | SYS_PSELECT6 => (
                syscall_name(nr),
                self.ptr_timeout(a[4], nr == SYS_PSELECT6),
                self.select_parties(a[0], a[1], a[2]),
            ),
            SYS_EPOLL_WAIT | SYS_EPOLL_PWAIT => {
                source = TimeoutSource::EventLoopTimer;
                (
                    syscall_name(nr),
                    ms_timeout(a[3]),
                    self.fd_parties(fd0, true),
                )
            }
            SYS_EPOLL_PWAIT2 => {
                source = TimeoutSource::EventLoopTimer;
                (
                    "epoll_pwait2",
                    self.ptr_timeout(a[3], true),
                    self.fd_parties(fd0, true),
                )
            }
            SYS_NANOSLEEP => (
                "nanosleep",
                self.ptr_timeout(a[0], true),
                vec![Party::Sleep],
            ),
            SYS_CLOCK_NANOSLEEP => {
                let t = if a[1] & 1 == 1 {
                    // TIMER_ABSTIME: the remaining time to the deadline on that clock.
                    remaining = true;
                    self.deadline(a[2], a[0] as libc::clockid_t)
                } else {
                    self.ptr_timeout(a[2], true)
                };
                ("clock_nanosleep", t, vec![Party::Sleep])
            }
            SYS_WAIT4 | SYS_WAITID => (syscall_name(nr), Timeout::Infinite, vec![Party::Child]),
            SYS_FLOCK if a[1] & LOCK_NB == 0 => (
                "flock",
                Timeout::Infinite,
                vec![Party::Lock {
                    kind: "file lock".into(),
                    holder: target::file_lock_holder(self.pid, fd0),
                    holder_tid: None,
                }],
            ),
            SYS_FCNTL if a[1] == F_SETLKW || a[1] == F_OFD_SETLKW => (
                "fcntl",
                Timeout::Infinite,
                vec![Party::Lock {
                    kind: "file lock".into(),
                    holder: target::file_lock_holder(self.pid, fd0),
                    holder_tid: None,
                }],
            ),
            SYS_FUTEX => {
                let (t, p, rem) = self.futex(a);
                remaining = rem;
                ("futex", t, p)
            }
            _ => return plain(ThreadState::Elsewhere),
        };
        Decoded {
            state: ThreadState::Blocked(Call {
                syscall: name.to_string(),
                timeout,
                timeout_source: source,
                parties,
                site: pc,
            }),
            deadline_remaining: remaining,
        }
    }

    /// A read/write/connect on one descriptor: its party, and the socket's own timeout.
    fn fd_wait(&mut self, fd: i32, send: bool) -> (Timeout, Vec<Party>) {
        match target::fd_kind(self.pid, fd) {
            FdKind::Socket(inode) => {
                let (party, info) = self.socket(fd, inode);
                let fresh = info.map(|i| if send { i.send_timeout } else { i.recv_timeout });
                let timeout = match (fresh, self.sockopt_cache.get(&(inode, send))) {
                    (Some(t), _) => {
                        if self.sockopt_cache.len() > 4096 {
                            self.sockopt_cache.clear();
                        }
                        self.sockopt_cache.insert((inode, send), t);
                        t
                    }
                    (None, Some(t)) => *t,
                    (None, None) => match self.pidfd.and_then(|p| target::socket_info(p, fd)) {
                        Some(i) => {
                            let t = if send { i.send_timeout } else { i.recv_timeout };
                            self.sockopt_cache.insert((inode, send), t);
                            t
                        }
                        None => Timeout::Unknown,
                    },
                };
                (timeout, vec![party])
            }
            FdKind::Stream | FdKind::Pipe => (Timeout::Infinite, vec![Party::Stream]),
            _ => (Timeout::Infinite, vec![Party::Local]),
        }
    }

    /// The party of socket `fd`; for a client TCP socket also what a copy of it tells (its
    /// byte counters and timeouts) and the evidence of the conversation ([`Link`]).
    fn socket(&mut self, fd: i32, inode: u64) -> (Party, Option<target::SocketInfo>) {
        let table = self.tcp.get_or_insert_with(|| TcpTable::read(self.pid));
        let Some(mut party) = table.party(inode) else {
            return (Party::Local, None);
        };
        let mut info = None;
        if let Party::Socket {
            role: Role::Client,
            bytes,
            link,
            ..
        } = &mut party
        {
            // Bounded: an event loop with hundreds of connections costs at most this many
            // descriptor copies per look.
            if self.info_budget > 0 {
                self.info_budget -= 1;
                info = self.pidfd.and_then(|p| target::socket_info(p, fd));
            }
            *bytes = info.as_ref().and_then(|i| i.bytes);
            *link = Some(self.link(inode, info.as_ref()));
        }
        (party, info)
    }

    /// What the kernel shows of client connection `inode`: is an answer awaited, since when
    /// has the peer been silent, does the peer take what is sent, and — when the peer is a
    /// process of this host — what its side is doing.
    fn link(&mut self, inode: u64, info: Option<&target::SocketInfo>) -> Link {
        let table = self.tcp.get_or_insert_with(|| TcpTable::read(self.pid));
        let Some(entry) = table.entry(inode).cloned() else {
            return Link::default();
        };
        let connecting = matches!(entry.state, TcpState::SynSent);
        let in_flight = u64::from(entry.tx_queue);
        let (awaiting, silent_ms) = match info.and_then(|i| i.bytes.zip(i.last_data)) {
            _ if connecting => (Some(true), None),
            // Data the peer does not take: it waits on the peer, and the peer's silence is
            // not the question (window probes keep the counters moving).
            _ if in_flight > 0 => (Some(true), None),
            Some(((received, _), (last_recv, last_sent))) => {
                // Never answered, or sent again since the last answer: awaiting. The silence
                // that counts starts at the client's last word (a keep-alive connection
                // silent for minutes has only had since the new request to answer).
                let awaiting = received == 0 || last_sent < last_recv;
                (
                    Some(awaiting),
                    Some(if awaiting {
                        last_sent.min(last_recv)
                    } else {
                        last_recv
                    }),
                )
            }
            None => (None, None),
        };
        let mut link = Link {
            silent: silent_ms.map(|ms| f64::from(ms) / 1000.0),
            awaiting,
            in_flight: Some(in_flight),
            peer_side: PeerSide::Unknown,
            deadline: None,
        };
        if awaiting != Some(false)
            && (connecting || in_flight > 0 || silent_ms.is_some_and(|ms| ms >= PEER_LOOK_AFTER_MS))
        {
            link.peer_side = self.peer_side(inode);
        }
        link
    }

    /// The other end of a connection between two processes of this host.
    fn peer_side(&mut self, inode: u64) -> PeerSide {
        let table = self.tcp.get_or_insert_with(|| TcpTable::read(self.pid));
        let Some(ours) = table.entry(inode) else {
            return PeerSide::Unknown;
        };
        let listener = table.listener_of(ours.remote);
        let other = table
            .other_end(inode)
            .map(|(other, e)| (other, u64::from(e.rx_queue)));
        if self.owners.len() > 4096 {
            self.owners.clear();
        }
        let mut owner_of = |inode: u64| {
            *self
                .owners
                .entry(inode)
                .or_insert_with(|| target::socket_owner(inode))
        };
        match other.map(|(o, q)| (owner_of(o), q)) {
            Some((Some((pid, fd)), queued)) => {
                let process = target::process_label(pid);
                if target::is_stopped(pid) {
                    PeerSide::Stopped { process }
                } else if queued > 0 {
                    PeerSide::Unread { process, queued }
                } else if target::waits_on_fd(pid, fd) {
                    PeerSide::Holding { process }
                } else {
                    PeerSide::Busy { process }
                }
            }
            // No other end yet (a connect the listener's full queue does not answer), or one
            // nobody has open: it still sits in the listener's accept queue.
            _ => match listener.and_then(&mut owner_of) {
                Some((pid, _)) if target::is_stopped(pid) => PeerSide::Stopped {
                    process: target::process_label(pid),
                },
                Some((pid, _)) => PeerSide::NotAccepted {
                    process: target::process_label(pid),
                },
                None => PeerSide::Unknown,
            },
        }
    }

    fn fd_parties(&mut self, fd: i32, follow_epoll: bool) -> Vec<Party> {
        match target::fd_kind(self.pid, fd) {
            FdKind::Socket(inode) => vec![self.socket(fd, inode).0],
            FdKind::Stream => vec![Party::Stream],
            FdKind::Pipe => vec![Party::Stream],
            FdKind::Epoll if follow_epoll => target::epoll_members(self.pid, fd, MAX_FDS)
                .into_iter()
                .flat_map(|(m, data)| self.epoll_member(m, data))
                .collect(),
            _ => vec![Party::Local],
        }
    }

    /// A descriptor registered in an epoll set. A pipe there is the event loop's own wake-up
    /// channel (libuv's async handle, Go's netpoll break, a self-pipe), not a pipeline on the
    /// other end: it is local. For a client socket of a Go program, the deadline the runtime
    /// keeps for it is read from its pollDesc.
    fn epoll_member(&mut self, fd: i32, data: u64) -> Vec<Party> {
        match target::fd_kind(self.pid, fd) {
            FdKind::Pipe => vec![Party::Local],
            FdKind::Socket(inode) => {
                let mut party = self.socket(fd, inode).0;
                if let Party::Socket {
                    role: Role::Client,
                    link: Some(link),
                    ..
                } = &mut party
                {
                    link.deadline = target::go_deadline(self.pid, fd, data);
                }
                vec![party]
            }
            _ => self.fd_parties(fd, false),
        }
    }

    fn poll_parties(&mut self, ptr: u64, nfds: u64) -> Vec<Party> {
        let n = (nfds as usize).min(MAX_FDS);
        let mut buf = vec![0u8; n * 8];
        if n == 0 || !target::read_mem(self.pid, ptr, &mut buf) {
            return Vec::new();
        }
        // struct pollfd { int fd; short events; short revents; }: a negative fd or no
        // requested events (nc parks stdout that way) is not waited on.
        let fds: Vec<i32> = buf
            .chunks_exact(8)
            .filter(|c| i16::from_ne_bytes([c[4], c[5]]) != 0)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .filter(|fd| *fd >= 0)
            .collect();
        fds.into_iter()
            .flat_map(|fd| self.fd_parties(fd, true))
            .collect()
    }

    fn select_parties(&mut self, nfds: u64, readfds: u64, writefds: u64) -> Vec<Party> {
        let n = (nfds as usize).min(1024);
        let bytes = n.div_ceil(64) * 8;
        let mut fds = Vec::new();
        for set in [readfds, writefds] {
            let mut buf = vec![0u8; bytes];
            if bytes == 0 || !target::read_mem(self.pid, set, &mut buf) {
                continue;
            }
            for fd in 0..n {
                if buf[fd / 8] & (1 << (fd % 8)) != 0 && fds.len() < MAX_FDS {
                    fds.push(fd as i32);
                }
            }
        }
        fds.sort_unstable();
        fds.dedup();
        fds.into_iter()
            .flat_map(|fd| self.fd_parties(fd, true))
            .collect()
    }

    /// A relative timespec (`nano`) or timeval pointer; NULL is no timeout.
    fn ptr_timeout(&self, ptr: u64, nano: bool) -> Timeout {
        if ptr == 0 {
            return Timeout::Infinite;
        }
        match target::read_time(self.pid, ptr, nano) {
            Some(s) if s >= 0.0 => Timeout::Finite(s),
            _ => Timeout::Unknown,
        }
    }

    /// An absolute timespec deadline on `clock`: what remains of it.
    fn deadline(&self, ptr: u64, clock: libc::clockid_t) -> Timeout {
        if ptr == 0 {
            return Timeout::Infinite;
        }
        match target::read_time(self.pid, ptr, true) {
            Some(at) => Timeout::Finite((at - target::clock_secs(clock)).max(0.0)),
            None => Timeout::Unknown,
        }
    }

    fn futex(&self, a: [u64; 6]) -> (Timeout, Vec<Party>, bool) {
        let (uaddr, op, val, tptr) = (a[0], a[1], a[2] & 0xffff_ffff, a[3]);
        let cmd = op & FUTEX_CMD_MASK;
        let realtime = op & FUTEX_CLOCK_REALTIME != 0;
        let (timeout, remaining) = match cmd {
            FUTEX_WAIT => (self.ptr_timeout(tptr, true), false),
            FUTEX_LOCK_PI => (self.deadline(tptr, libc::CLOCK_REALTIME), true),
            FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI | FUTEX_LOCK_PI2 => {
                let clock = if realtime {
                    libc::CLOCK_REALTIME
                } else {
                    libc::CLOCK_MONOTONIC
                };
                (self.deadline(tptr, clock), true)
            }
            _ => (Timeout::Unknown, false),
        };
        let party = match cmd {
            FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => {
                let owner = target::read_u32(self.pid, uaddr).map(|w| (w & 0x3fff_ffff) as i32);
                self.mutex(owner)
            }
            // glibc's lowlevellock waits with FUTEX_WAIT on the value 2 (locked, contended),
            // and its pthread_mutex_t keeps the owner's tid in its third int. A mutex whose
            // owner is not a thread of the process (Rust std, Go, or a condvar word that
            // happens to read 2) is left as a parking spot: without an owner there is no
            // holder to blame.
            FUTEX_WAIT if val == MUTEX_CONTENDED => {
                let owner = target::read_u32(self.pid, uaddr + 8).map(|t| t as i32);
                self.mutex(owner)
            }
            _ => Party::Park,
        };
        (timeout, vec![party], remaining)
    }

    fn mutex(&self, owner: Option<i32>) -> Party {
        match owner.filter(|t| *t > 0 && self.thread_names.contains_key(t)) {
            Some(tid) => Party::Lock {
                kind: "mutex".into(),
                holder: self.thread_name(tid),
                holder_tid: Some(tid),
            },
            None => Party::Park,
        }
    }

    fn thread_name(&self, tid: i32) -> Option<String> {
        self.thread_names
            .get(&tid)
            .map(|comm| format!("thread {tid} ({comm})"))
    }
}

fn plain(state: ThreadState) -> Decoded {
    Decoded {
        state,
        deadline_remaining: false,
    }
}

/// An `int` millisecond timeout: negative is infinite (the kernel reads it as 32 bits).
fn ms_timeout(arg: u64) -> Timeout {
    let ms = arg as u32 as i32;
    if ms < 0 {
        Timeout::Infinite
    } else {
        Timeout::Finite(ms as f64 / 1000.0)
    }
}

pub fn syscall_name(nr: i64) -> &'static str {
    match nr {
        SYS_READ => "read",
        SYS_WRITE => "write",
        SYS_POLL => "poll",
        SYS_READV => "readv",
        SYS_SELECT => "select",
        SYS_NANOSLEEP => "nanosleep",
        SYS_CONNECT => "connect",
        SYS_ACCEPT => "accept",
        SYS_SENDTO => "sendto",
        SYS_RECVFROM => "recvfrom",
        SYS_SENDMSG => "sendmsg",
        SYS_RECVMSG => "recvmsg",
        SYS_WAIT4 => "wait4",
        SYS_FCNTL => "fcntl",
        SYS_FLOCK => "flock",
        SYS_FUTEX => "futex",
        SYS_CLOCK_NANOSLEEP => "clock_nanosleep",
        SYS_EPOLL_WAIT => "epoll_wait",
        SYS_WAITID => "waitid",
        SYS_PSELECT6 => "pselect6",
        SYS_PPOLL => "ppoll",
        SYS_EPOLL_PWAIT => "epoll_pwait",
        SYS_ACCEPT4 => "accept4",
        SYS_RECVMMSG => "recvmmsg",
        SYS_EPOLL_PWAIT2 => "epoll_pwait2",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse_line("running\n"), Some(Line::Running));
        assert_eq!(parse_line("-1 0x7ffd 0x4005\n"), Some(Line::Outside));
        let l = parse_line("7 0x7ffc1 0x2 0xffffffff 0x0 0x0 0x0 0x7ffc0 0x7f12\n").unwrap();
        assert_eq!(
            l,
            Line::Call {
                nr: 7,
                args: [0x7ffc1, 2, 0xffffffff, 0, 0, 0],
                pc: 0x7f12
            }
        );
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(parse_line("7 0x1"), None);
    }

    #[test]
    fn int_timeouts_are_32_bit() {
        assert_eq!(ms_timeout(0xffff_ffff), Timeout::Infinite);
        assert_eq!(ms_timeout(0xffff_ffff_ffff_ffff), Timeout::Infinite);
        assert_eq!(ms_timeout(3_600_000), Timeout::Finite(3600.0));
        assert_eq!(ms_timeout(0), Timeout::Finite(0.0));
    }
}
