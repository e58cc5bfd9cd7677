//! Timeout-bug detection from sampled thread states, without instrumenting the target.
//!
//! The agent's sampler (agent/src/timeout) reads `/proc/PID/task/TID/*` a few times a second
//! and hands this module one [`ProcessSample`] per tick: for each thread, the blocking call it
//! sits in, that call's timeout (decoded from the arguments, the target's memory or the
//! socket's `SO_RCVTIMEO`), what it waits on ([`Party`]), a wake-up counter and its I/O byte
//! counters. Everything here is pure: no I/O, no clock, no threads, so it runs the same in the
//! daemon, in `lookout diagnose` and in unit tests.
//!
//! The pipeline follows TScope's idea (timeout-related system calls as features, a baseline
//! learned online, then classification) with what `/proc` offers:
//! 1. *Feature selection* ([`waits_on_other_party`]): only waits on **another party** matter —
//!    an outbound client socket, a lock someone else holds. A server waiting on its listener or
//!    on an accepted connection, a thread pool parked on a futex, a sleeper, a shell waiting for
//!    its child, `tail -f` waiting on a pipe or inotify are all fine and dropped here.
//! 2. *Stalls* ([`ProcessDetector`]): per thread, how long it has waited on the same party with
//!    no read progress (its `rchar` did not move), across re-armed short waits (a poll loop that
//!    wakes every second is still stuck), counting re-attempts (a new connection to the same
//!    peer, or data written again while nothing comes back).
//! 3. *Baseline* ([`Baseline`]): per process, for each wait site (call + program counter), the
//!    longest stall that ended in progress. A site that is known to wait long and then succeed
//!    (a subscriber, a long poll) raises its own hang threshold.
//! 4. *Classification* into the CONTRACT verdicts ([`Verdict`]). A client that keeps its
//!    deadline in user space and polls on a short tick (curl) shows no timeout to the kernel;
//!    for the clients [`declared_deadline`] knows, the deadline comes from the command line.

mod baseline;
mod cmdline;
mod detector;

pub use baseline::Baseline;
pub use cmdline::{Declared, declared_deadline};
pub use detector::{Confidence, DetectorConfig, Evidence, ProcessDetector, Suspect, Wait};

use serde::Serialize;
use std::fmt;

/// The timeout of one blocking call.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Timeout {
    /// No timeout: -1, a NULL pointer, or a socket without `SO_RCVTIMEO`.
    Infinite,
    /// A finite timeout, in seconds (for an absolute deadline: the whole wait, i.e. time
    /// already waited plus what remains).
    Finite(f64),
    /// The argument could not be read.
    Unknown,
}

impl Timeout {
    /// The CONTRACT text: `"infinite"` or the seconds.
    pub fn contract_text(&self) -> String {
        match self {
            Timeout::Infinite | Timeout::Unknown => "infinite".into(),
            Timeout::Finite(s) => format_seconds(*s),
        }
    }

    pub fn is_finite(&self) -> bool {
        matches!(self, Timeout::Finite(_))
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::Infinite => f.write_str("none (waits forever)"),
            Timeout::Unknown => f.write_str("unknown"),
            Timeout::Finite(s) => write!(f, "{} s", format_seconds(*s)),
        }
    }
}

/// Seconds as short text: `0.2`, `30`, `3600`.
pub fn format_seconds(s: f64) -> String {
    if (s - s.round()).abs() < 1e-6 {
        format!("{}", s.round() as i64)
    } else {
        let t = format!("{s:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Which side of a TCP connection this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Role {
    /// An outbound connection (or one being established): this process is the client.
    Client,
    /// A connection a local listener accepted: this process is the server.
    Accepted,
    /// A listening socket.
    Listener,
    /// A socket that is neither (unconnected, UDP, unix): nothing to say about the peer.
    Other,
}

/// What a blocked call waits on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Party {
    /// A TCP socket.
    Socket {
        inode: u64,
        role: Role,
        /// TCP state as the kernel names it (`ESTABLISHED`, `SYN_SENT`, `LISTEN`, ...).
        state: String,
        /// `ip:port` of the other end, when connected.
        peer: Option<String>,
        /// Bytes received and sent on it so far (TCP_INFO), for client sockets: what came
        /// back ends a stall, what went out again while nothing came back is a re-attempt.
        bytes: Option<(u64, u64)>,
        /// What the kernel says of the conversation on a client socket, when it could be
        /// asked: the evidence of a missing timeout.
        link: Option<Link>,
    },
    /// A lock another thread or process holds: a mutex (futex in its contended state) or a
    /// file lock (flock, fcntl F_SETLKW).
    Lock {
        /// `mutex` or `file lock`.
        kind: String,
        /// Who holds it, when known (`pid 123 (flock)`, `thread 456 (worker)`).
        holder: Option<String>,
        /// The holder when it is a thread of the same process.
        holder_tid: Option<i32>,
    },
    /// A futex used as a condition variable or a parking spot: a worker waiting for work.
    Park,
    /// nanosleep / clock_nanosleep.
    Sleep,
    /// wait4 / waitid: a parent waiting for its child.
    Child,
    /// A terminal or a pipe: a person or a pipeline on the other end.
    Stream,
    /// Any other file descriptor (regular file, inotify, eventfd, timerfd, signalfd, unix
    /// socket): local work, not a remote party.
    Local,
}

/// What the kernel shows of a client connection while a thread waits on it (TCP_INFO of a
/// copy of the socket, the TCP table, and the peer's side when it is on this host).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Link {
    /// Seconds since the peer last sent data (TCP_INFO `last_data_recv`; since the connect
    /// when it never did), as of the sample.
    pub silent: Option<f64>,
    /// Whether the client awaits the peer: its connect or its data has not gone through, it
    /// was never answered, or it sent again since the last answer. `Some(false)`: the last
    /// word was the peer's (an idle keep-alive connection, a subscriber between messages),
    /// so waiting on it is waiting for news, not for an answer.
    pub awaiting: Option<bool>,
    /// Bytes written that the peer has not acknowledged or that are not sent yet: a peer
    /// that does not read.
    pub in_flight: Option<u64>,
    /// The other end, when it is a process on this host.
    pub peer_side: PeerSide,
    /// A deadline the program keeps for this connection itself (Go's netpoller keeps read
    /// deadlines in its pollDesc, not in the syscall): `Infinite` when it has none,
    /// `Finite(s)` with the seconds left as of the sample.
    pub deadline: Option<Timeout>,
}

/// The peer's side of a connection between two processes of this host.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub enum PeerSide {
    /// Not on this host, or not found.
    #[default]
    Unknown,
    /// The peer has not read what the client sent (bytes wait in its receive queue).
    Unread { process: String, queued: u64 },
    /// The connection waits in the accept queue of a listener that has not taken it.
    NotAccepted { process: String },
    /// The peer process is stopped (SIGSTOP, a debugger).
    Stopped { process: String },
    /// The peer read the request and none of its threads waits on this connection: it is
    /// busy with the request (or stuck on something of its own: a lock, another peer).
    Busy { process: String },
    /// The peer read the request and waits on this very connection (a broker holding a
    /// blocking pop until a job comes, a long poll, a stream): the client is held on purpose.
    Holding { process: String },
}

impl PeerSide {
    pub fn describe(&self) -> Option<String> {
        match self {
            PeerSide::Unknown => None,
            PeerSide::Unread { process, queued } => Some(format!(
                "the peer ({process}) has not read the request ({queued} bytes wait in its queue)"
            )),
            PeerSide::NotAccepted { process } => Some(format!(
                "the peer ({process}) has not accepted the connection (it waits in its listen queue)"
            )),
            PeerSide::Stopped { process } => Some(format!("the peer ({process}) is stopped")),
            PeerSide::Busy { process } => Some(format!(
                "the peer ({process}) read the request and is busy elsewhere, not answering"
            )),
            PeerSide::Holding { process } => Some(format!(
                "the peer ({process}) read the request and holds it, waiting on the connection"
            )),
        }
    }
}

/// Where a call's timeout value comes from: it says how sure a verdict resting on it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutSource {
    /// The call's own argument (poll, select, futex, a sleep): the wait's timeout itself.
    #[default]
    Argument,
    /// The socket's SO_RCVTIMEO / SO_SNDTIMEO, for a plain read, write or connect.
    SocketOption,
    /// An event loop's epoll_wait: the loop's next timer, which may belong to anything.
    EventLoopTimer,
    /// A deadline the program keeps for the connection in user space (Go's pollDesc).
    RuntimeDeadline,
    /// The client's command line (curl --max-time).
    CommandLine,
}

impl TimeoutSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            TimeoutSource::Argument => "syscall argument",
            TimeoutSource::SocketOption => "socket option (SO_RCVTIMEO/SO_SNDTIMEO)",
            TimeoutSource::EventLoopTimer => "event loop's next timer (epoll_wait argument)",
            TimeoutSource::RuntimeDeadline => "runtime deadline of the connection (Go pollDesc)",
            TimeoutSource::CommandLine => "command line",
        }
    }
}

/// One blocking call a thread sits in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Call {
    /// System call name (`recvfrom`, `poll`, `futex`, ...).
    pub syscall: String,
    pub timeout: Timeout,
    pub timeout_source: TimeoutSource,
    /// What it waits on; several for poll/select/epoll.
    pub parties: Vec<Party>,
    /// Program counter of the call: with the syscall it keys the baseline.
    pub site: u64,
}

/// What a thread was doing at one sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ThreadState {
    /// On a CPU or runnable.
    Running,
    /// In one of the timeout-related blocking calls.
    Blocked(Call),
    /// Blocked somewhere else (page fault, another call): not a timeout question.
    Elsewhere,
}

/// One thread at one sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThreadSample {
    pub tid: i32,
    pub comm: std::sync::Arc<str>,
    pub state: ThreadState,
    /// How many times the thread was scheduled in so far. Unchanged between two samples means
    /// it never woke up: still the same call.
    pub wakeups: u64,
    /// When the current call started (seconds, on the sample clock), when the kernel says so;
    /// lets a one-shot diagnosis see a wait that started long before it.
    pub blocked_since: Option<f64>,
    /// (bytes read, bytes written) so far, when read: read progress ends a stall, writes while
    /// nothing comes back are re-attempts.
    pub io: Option<(u64, u64)>,
}

/// All threads of one process at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessSample {
    /// Seconds on a monotonic clock.
    pub at: f64,
    pub threads: Vec<ThreadSample>,
}

/// The CONTRACT verdicts, worst last in severity order used for the process verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    TooLargeTimeout,
    TooSmallTimeout,
    MissingTimeout,
}

impl Verdict {
    pub const SUSPECT_KINDS: [Verdict; 3] = [
        Verdict::MissingTimeout,
        Verdict::TooLargeTimeout,
        Verdict::TooSmallTimeout,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::MissingTimeout => "missing_timeout",
            Verdict::TooLargeTimeout => "too_large_timeout",
            Verdict::TooSmallTimeout => "too_small_timeout",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key that says "the same other party" across samples: the peers of the client sockets,
/// or the lock. `None` when the call does not wait on another party (feature selection).
pub fn waits_on_other_party(call: &Call) -> Option<String> {
    let mut peers: Vec<String> = Vec::new();
    for party in &call.parties {
        match party {
            // The last word on it was the peer's: an idle keep-alive connection or a
            // subscriber between messages waits for news, not for an answer.
            Party::Socket {
                role: Role::Client,
                link:
                    Some(Link {
                        awaiting: Some(false),
                        ..
                    }),
                ..
            } => {}
            Party::Socket {
                role: Role::Client,
                peer,
                inode,
                ..
            } => peers.push(peer.clone().unwrap_or_else(|| format!("socket {inode}"))),
            // A server's own sockets or a person on a terminal in the same wait: the thread
            // serves or converses; waiting is its job.
            Party::Socket {
                role: Role::Listener | Role::Accepted,
                ..
            }
            | Party::Stream => return None,
            Party::Lock { kind, holder, .. } => {
                peers.push(format!(
                    "{kind} held by {}",
                    holder.as_deref().unwrap_or("another party")
                ));
            }
            _ => {}
        }
    }
    if peers.is_empty() {
        return None;
    }
    peers.sort();
    peers.dedup();
    Some(peers.join(", "))
}

/// (inode, bytes received, bytes sent) of the client sockets of a call whose counters are known.
pub fn client_bytes(call: &Call) -> Vec<(u64, u64, u64)> {
    call.parties
        .iter()
        .filter_map(|p| match p {
            Party::Socket {
                inode,
                role: Role::Client,
                bytes: Some((rx, tx)),
                ..
            } => Some((*inode, *rx, *tx)),
            _ => None,
        })
        .collect()
}

/// The connection evidence of the client sockets a call awaits.
pub fn awaited_links(call: &Call) -> impl Iterator<Item = &Link> {
    call.parties.iter().filter_map(|p| match p {
        Party::Socket {
            role: Role::Client,
            link: Some(l),
            ..
        } if l.awaiting != Some(false) => Some(l),
        _ => None,
    })
}

/// The client sockets (inodes) of a call, to notice a new connection to the same peer.
pub fn client_inodes(call: &Call) -> Vec<u64> {
    let mut v: Vec<u64> = call
        .parties
        .iter()
        .filter_map(|p| match p {
            Party::Socket {
                inode,
                role: Role::Client,
                ..
            } => Some(*inode),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v
}

/// Counts for `lookout_blocked_threads{syscall,timeout}`: threads in a timeout-related call,
/// by call name and whether its timeout is infinite.
pub fn blocked_counts(sample: &ProcessSample) -> std::collections::BTreeMap<(String, bool), u64> {
    let mut out = std::collections::BTreeMap::new();
    for t in &sample.threads {
        if let ThreadState::Blocked(call) = &t.state {
            let infinite = !call.timeout.is_finite();
            *out.entry((call.syscall.clone(), infinite)).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests;
