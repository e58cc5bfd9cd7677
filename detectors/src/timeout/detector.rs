//! Per-process online detector: follows each thread's stall on another party across samples
//! and classifies it into the CONTRACT verdicts.

use super::client_bytes;
use super::cmdline::Declared;
use super::{
    Baseline, Call, Link, Party, PeerSide, ProcessSample, Role, ThreadState, Timeout,
    TimeoutSource, Verdict, awaited_links, client_inodes, format_seconds, waits_on_other_party,
};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// `parked` is sorted.
fn held_by_parked(call: &Call, parked: &[i32]) -> bool {
    call.parties.iter().any(
        |p| matches!(p, Party::Lock { holder_tid: Some(h), .. } if parked.binary_search(h).is_ok()),
    )
}

/// Thresholds of the classification.
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// Seconds the other party must have been silent (sent nothing) before a wait on it with
    /// no timeout is a missing timeout. The verdict comes from this evidence; how long it may
    /// last before someone is paged is the alert's `for`, not the detector's business.
    pub quiet_period: f64,
    /// A finite timeout above this many seconds on a wait for another party is too large.
    pub max_timeout: f64,
    /// Attempts (first one included) at the same peer, with nothing read back, that make a
    /// retry loop with a too-small timeout.
    pub min_attempts: u32,
    /// How long a thread may be seen doing something else (sleeping between retries, writing
    /// the next request) before its stall is considered over.
    pub gap_tolerance: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            quiet_period: 5.0,
            max_timeout: 60.0,
            min_attempts: 3,
            gap_tolerance: 2.0,
        }
    }
}

/// How sure a verdict is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The timeout could not be read, or only a wake-up pattern suggests the deadline.
    Low,
    /// The timeout is known, the peer's side is not (a remote peer), or the timeout is an
    /// event loop's next timer.
    Medium,
    /// The timeout is the wait's own and the other side is seen: a peer that has not read
    /// the request, is stopped or busy elsewhere; a lock whose holder is known.
    High,
}

impl Confidence {
    pub fn as_str(&self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// What a verdict rests on.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Where the timeout value comes from.
    pub timeout_source: TimeoutSource,
    /// Seconds the other party has sent nothing (for a lock: seconds waited).
    pub silent_seconds: f64,
    /// Bytes the client wrote that the peer has not taken.
    pub bytes_in_flight: Option<u64>,
    /// What the peer's side shows, when it is on this host.
    pub peer_side: PeerSide,
}

/// One thread classified as a suspect.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    pub verdict: Verdict,
    pub tid: i32,
    pub comm: String,
    pub syscall: String,
    pub timeout: Timeout,
    /// How long the thread has been stuck on this party.
    pub blocked_seconds: f64,
    /// The other party: `ip:port`, or the lock and its holder.
    pub peer: String,
    /// Attempts at the peer seen during the stall (1 = no retry).
    pub attempts: u32,
    pub confidence: Confidence,
    pub evidence: Evidence,
    /// Why it matters, in one or two sentences.
    pub detail: String,
    /// What to do about it.
    pub advice: String,
}

/// What one thread waits on, and what the detector makes of it: the report shows every
/// thread's wait, not only the suspects, so that an `ok` can be checked by a person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Wait {
    pub tid: i32,
    pub comm: String,
    pub syscall: String,
    pub timeout: Timeout,
    /// The parties, in short.
    pub on: String,
    pub verdict: Verdict,
    /// Why this verdict, in a few words.
    pub note: String,
}

/// A thread waiting on one party with no read progress.
#[derive(Clone, Debug)]
struct Stall {
    key: String,
    since: f64,
    /// Sample time at which the thread was last seen waiting on `key`.
    last_waiting_at: f64,
    last_io: Option<(u64, u64)>,
    last_inodes: Vec<u64>,
    connections: BTreeSet<u64>,
    /// Per connection: (first seen, last seen, its timeout) while waited on, to tell an
    /// attempt that ran into its timeout from one that was answered at once.
    spans: HashMap<u64, (f64, f64, Option<f64>)>,
    /// Per connection: (bytes received, bytes sent) last seen.
    bytes: HashMap<u64, (u64, u64)>,
    resends: u32,
    last_wakeups: u64,
    /// The latest call on the party.
    call: Call,
    /// The first call, which keys the baseline.
    first_syscall: String,
    first_site: u64,
    any_infinite: bool,
    max_finite: Option<f64>,
    /// Since when (sample clock) the peer has sent nothing, from the connection's own
    /// counters; earliest seen.
    silent_since: Option<f64>,
    /// The latest evidence of the awaited connection.
    link: Option<Link>,
}

impl Stall {
    fn start(
        key: String,
        call: &Call,
        since: f64,
        at: f64,
        io: Option<(u64, u64)>,
        wk: u64,
    ) -> Self {
        let inodes = client_inodes(call);
        let mut s = Self {
            key,
            since,
            last_waiting_at: at,
            last_io: io,
            connections: inodes.iter().copied().collect(),
            last_inodes: inodes,
            spans: HashMap::new(),
            bytes: HashMap::new(),
            resends: 0,
            last_wakeups: wk,
            call: call.clone(),
            first_syscall: call.syscall.clone(),
            first_site: call.site,
            any_infinite: false,
            max_finite: None,
            silent_since: None,
            link: None,
        };
        s.note_timeout(&call.timeout);
        s.note_call(call, at);
        s
    }

    /// Record the connections of a call seen waiting at `at`.
    fn note_call(&mut self, call: &Call, at: f64) {
        let timeout = match call.timeout {
            Timeout::Finite(t) => Some(t),
            _ => None,
        };
        for inode in client_inodes(call) {
            let span = self.spans.entry(inode).or_insert((at, at, timeout));
            span.1 = at;
            span.2 = timeout;
        }
        if self.spans.len() > 1024 {
            // Bounded: forget the oldest attempts.
            let mut firsts: Vec<(f64, u64)> = self.spans.iter().map(|(k, v)| (v.0, *k)).collect();
            firsts.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, k) in firsts.into_iter().take(512) {
                self.spans.remove(&k);
            }
        }
        for (inode, rx, tx) in client_bytes(call) {
            self.bytes.insert(inode, (rx, tx));
        }
        // The most telling connection: the one silent longest.
        let mut best: Option<&Link> = None;
        for l in awaited_links(call) {
            if let Some(s) = l.silent {
                let since = at - s;
                self.silent_since = Some(self.silent_since.map_or(since, |x| x.min(since)));
            }
            if best.is_none_or(|b| b.silent.unwrap_or(0.0) < l.silent.unwrap_or(0.0)) {
                best = Some(l);
            }
        }
        if let Some(l) = best {
            self.link = Some(l.clone());
        }
    }

    /// Seconds the other party has been silent at `now`: the connection's own counter when
    /// known, else how long the thread has waited on it.
    fn silent_for(&self, now: f64) -> f64 {
        let waited = now - self.since;
        match self.silent_since {
            Some(s) => (now - s).max(0.0),
            None => waited.max(0.0),
        }
    }

    /// Bytes came back on a connection already seen, or the thread read something.
    fn progress(&self, call: Option<&Call>, io: Option<(u64, u64)>) -> bool {
        self.read_progress(io)
            || call.is_some_and(|c| {
                client_bytes(c)
                    .iter()
                    .any(|(i, rx, _)| self.bytes.get(i).is_some_and(|(rx0, _)| rx > rx0))
            })
    }

    /// Data went out again on a connection already seen while nothing came back.
    fn resent(&self, call: &Call) -> bool {
        client_bytes(call).iter().any(|(i, rx, tx)| {
            self.bytes
                .get(i)
                .is_some_and(|(rx0, tx0)| tx > tx0 && rx == rx0)
        })
    }

    /// Attempts that waited about as long as their timeout: they ran into it.
    fn expired_attempts(&self) -> u32 {
        self.spans
            .values()
            .filter(|(first, last, t)| t.is_some_and(|t| last - first >= 0.4 * t && last > first))
            .count() as u32
    }

    fn note_timeout(&mut self, t: &Timeout) {
        match t {
            Timeout::Finite(s) => self.max_finite = Some(self.max_finite.map_or(*s, |m| m.max(*s))),
            Timeout::Infinite | Timeout::Unknown => self.any_infinite = true,
        }
    }

    fn read_progress(&self, io: Option<(u64, u64)>) -> bool {
        matches!((self.last_io, io), (Some((r0, _)), Some((r1, _))) if r1 > r0)
    }

    fn attempts(&self) -> u32 {
        (self.connections.len().max(1) as u32).saturating_add(self.resends)
    }
}

#[derive(Clone, Debug, Default)]
struct Track {
    comm: std::sync::Arc<str>,
    stall: Option<Stall>,
}

/// The detector of one process: feed it every sample with [`observe`](Self::observe), ask for
/// the current [`suspects`](Self::suspects).
#[derive(Clone, Debug)]
pub struct ProcessDetector {
    cfg: DetectorConfig,
    baseline: Baseline,
    threads: HashMap<i32, Track>,
    last_at: f64,
    /// The deadline the process declares on its command line, for clients that keep it in
    /// user space.
    declared: Option<Declared>,
}

impl ProcessDetector {
    pub fn new(cfg: DetectorConfig) -> Self {
        Self {
            cfg,
            baseline: Baseline::default(),
            threads: HashMap::new(),
            last_at: 0.0,
            declared: None,
        }
    }

    /// Tell the detector the deadline the process declares for itself (from
    /// [`declared_deadline`](super::declared_deadline) on its command line).
    pub fn set_declared(&mut self, declared: Option<Declared>) {
        self.declared = declared;
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// Take one sample of the process into account.
    pub fn observe(&mut self, sample: &ProcessSample) {
        let at = sample.at;
        self.last_at = at;
        // Sorted tid lists, not sets: this runs for every thread at 10 Hz, and a process with
        // hundreds of parked threads made set nodes the main cost of sampling it.
        let mut present: Vec<i32> = sample.threads.iter().map(|t| t.tid).collect();
        present.sort_unstable();
        self.threads
            .retain(|tid, _| present.binary_search(tid).is_ok());
        // Threads parked waiting for work: a mutex one of them holds is the idle-pool idiom
        // (`Arc<Mutex<Receiver>>`, a worker holding the queue lock while it waits), not a hang.
        let mut parked: Vec<i32> = sample
            .threads
            .iter()
            .filter(|t| match &t.state {
                ThreadState::Blocked(call) => call.parties.iter().all(|p| *p == Party::Park),
                _ => false,
            })
            .map(|t| t.tid)
            .collect();
        parked.sort_unstable();
        for t in &sample.threads {
            let track = self.threads.entry(t.tid).or_default();
            if track.comm != t.comm {
                track.comm = t.comm.clone();
            }
            let waiting = match &t.state {
                ThreadState::Blocked(call) if !held_by_parked(call, &parked) => {
                    waits_on_other_party(call).map(|k| (k, call))
                }
                _ => None,
            };
            match waiting {
                Some((key, call)) => {
                    let continues = track.stall.as_ref().is_some_and(|s| s.key == key);
                    if continues {
                        let stall = track.stall.as_mut().expect("checked above");
                        if stall.progress(Some(call), t.io) {
                            // Something came back: the previous wait ended well. Learn it and
                            // start over from this call.
                            self.baseline.observe_completed(
                                &stall.first_syscall,
                                stall.first_site,
                                at - stall.since,
                            );
                            track.stall = Some(Stall::start(key, call, at, at, t.io, t.wakeups));
                            continue;
                        }
                        let inodes = client_inodes(call);
                        if !inodes.is_empty() && inodes != stall.last_inodes {
                            stall.connections.extend(inodes.iter().copied());
                            stall.last_inodes = inodes;
                        }
                        let wrote = matches!((stall.last_io, t.io), (Some((_, w0)), Some((_, w1))) if w1 > w0);
                        if (wrote || stall.resent(call)) && stall.connections.len() <= 1 {
                            // Data went out again on the same connection while nothing came
                            // back: a re-sent request.
                            stall.resends = stall.resends.saturating_add(1);
                        }
                        if t.io.is_some() {
                            stall.last_io = t.io;
                        }
                        stall.last_wakeups = t.wakeups;
                        stall.last_waiting_at = at;
                        stall.note_timeout(&call.timeout);
                        stall.note_call(call, at);
                        stall.call = call.clone();
                    } else {
                        let since = t.blocked_since.filter(|s| *s <= at).unwrap_or(at);
                        track.stall = Some(Stall::start(key, call, since, at, t.io, t.wakeups));
                    }
                }
                None => {
                    let Some(stall) = track.stall.as_mut() else {
                        continue;
                    };
                    if stall.progress(None, t.io) {
                        self.baseline.observe_completed(
                            &stall.first_syscall,
                            stall.first_site,
                            at - stall.since,
                        );
                        track.stall = None;
                    } else if at - stall.last_waiting_at > self.cfg.gap_tolerance {
                        track.stall = None;
                    } else if let (Some((_, w0)), Some((_, w1))) = (stall.last_io, t.io) {
                        if w1 > w0 && stall.connections.len() <= 1 {
                            stall.resends = stall.resends.saturating_add(1);
                        }
                        stall.last_io = t.io;
                    }
                }
            }
        }
    }

    /// The threads classified as suspects at the last sample, worst first.
    pub fn suspects(&self) -> Vec<Suspect> {
        let now = self.last_at;
        let mut out = Vec::new();
        for (tid, track) in &self.threads {
            let Some(stall) = &track.stall else { continue };
            if let Some(s) = self.classify(*tid, &track.comm, stall, now) {
                out.push(s);
            }
        }
        out.sort_by(|a, b| {
            b.verdict
                .cmp(&a.verdict)
                .then(b.blocked_seconds.total_cmp(&a.blocked_seconds))
                .then(a.tid.cmp(&b.tid))
        });
        out
    }

    /// The timeout that governs the stall now, and where it comes from: a deadline the
    /// runtime keeps for the connection wins over the event loop's next timer.
    fn governing_timeout(stall: &Stall, now: f64) -> (Timeout, TimeoutSource) {
        match stall.link.as_ref().and_then(|l| l.deadline) {
            Some(Timeout::Finite(left)) => (
                Timeout::Finite(((left + (now - stall.since).max(0.0)) * 10.0).round() / 10.0),
                TimeoutSource::RuntimeDeadline,
            ),
            Some(t) => (t, TimeoutSource::RuntimeDeadline),
            None => (stall.call.timeout, stall.call.timeout_source),
        }
    }

    fn classify(&self, tid: i32, comm: &str, stall: &Stall, now: f64) -> Option<Suspect> {
        let duration = (now - stall.since).max(0.0);
        let attempts = stall.attempts();
        let max = self.cfg.max_timeout;
        let waiting_now = stall.last_waiting_at >= now;
        let silent = stall.silent_for(now);
        let peer_side = stall
            .link
            .as_ref()
            .map(|l| l.peer_side.clone())
            .unwrap_or_default();
        let (governing, source) = Self::governing_timeout(stall, now);
        let evidence = |source: TimeoutSource| Evidence {
            timeout_source: source,
            silent_seconds: (silent * 10.0).round() / 10.0,
            bytes_in_flight: stall.link.as_ref().and_then(|l| l.in_flight),
            peer_side: peer_side.clone(),
        };
        let suspect = |verdict: Verdict,
                       timeout: Timeout,
                       confidence: Confidence,
                       evidence: Evidence,
                       detail: String,
                       advice: String| Suspect {
            verdict,
            tid,
            comm: comm.to_string(),
            syscall: stall.call.syscall.clone(),
            timeout,
            blocked_seconds: duration,
            peer: stall.key.clone(),
            attempts,
            confidence,
            evidence,
            detail,
            advice,
        };
        // Retry loop: several attempts at the same peer, each with a short finite timeout,
        // nothing read back.
        let expired = stall.expired_attempts().max(stall.resends);
        if attempts >= self.cfg.min_attempts
            && expired >= self.cfg.min_attempts
            && !stall.any_infinite
            && let Some(t) = stall.max_finite
            && t <= max
        {
            return Some(suspect(
                Verdict::TooSmallTimeout,
                Timeout::Finite(t),
                if expired >= 2 * self.cfg.min_attempts {
                    Confidence::High
                } else {
                    Confidence::Medium
                },
                evidence(stall.call.timeout_source),
                format!(
                    "{attempts} attempts at {} in {:.1} s, each given {} s, and nothing came back: \
                     the timeout is shorter than the peer takes to answer, so every attempt is \
                     wasted and adds load on a peer that is already slow",
                    stall.key,
                    duration,
                    format_seconds(t)
                ),
                "raise this timeout above the peer's normal response time (check its latency), \
                 and retry with exponential backoff and a retry budget"
                    .into(),
            ));
        }
        if !waiting_now {
            return None;
        }
        let is_lock = stall.key.contains(" held by ");
        let seen = peer_side_text(&peer_side);
        // A known finite timeout above the maximum: too large at once, whatever the peer does.
        if let Timeout::Finite(t) = governing
            && t > max
        {
            let confidence = if source == TimeoutSource::EventLoopTimer {
                Confidence::Medium
            } else {
                Confidence::High
            };
            return Some(suspect(
                Verdict::TooLargeTimeout,
                governing,
                confidence,
                evidence(source),
                format!(
                    "waiting {:.0} s in {} on {} with a {} s timeout ({}), above the {} s \
                     maximum: callers give up long before it fires, and the thread is held \
                     meanwhile{seen}",
                    duration,
                    stall.call.syscall,
                    stall.key,
                    format_seconds(t),
                    source.as_str(),
                    format_seconds(max)
                ),
                format!(
                    "check the peer; lower this timeout to what the caller can wait (at most {} s) \
                     and fail fast",
                    format_seconds(max)
                ),
            ));
        }
        // A peer that read the request and waits on this very connection holds the client on
        // purpose (a broker's blocking pop, a long poll): waiting is the protocol.
        if matches!(peer_side, PeerSide::Holding { .. }) {
            return None;
        }
        let quiet = self.baseline.threshold(
            &stall.first_syscall,
            stall.first_site,
            self.cfg.quiet_period,
        );
        if silent < quiet {
            return None;
        }
        let what = if is_lock {
            "the lock holder lets go"
        } else {
            "the peer answers"
        };
        match governing {
            Timeout::Infinite | Timeout::Unknown => {
                let confidence = if governing == Timeout::Unknown {
                    Confidence::Low
                } else if is_lock
                    || matches!(
                        peer_side,
                        PeerSide::Unread { .. }
                            | PeerSide::NotAccepted { .. }
                            | PeerSide::Stopped { .. }
                            | PeerSide::Busy { .. }
                    )
                {
                    Confidence::High
                } else {
                    Confidence::Medium
                };
                Some(suspect(
                    Verdict::MissingTimeout,
                    governing,
                    confidence,
                    evidence(source),
                    format!(
                        "blocked in {} on {} with no timeout ({}); {} silent for {:.0} s{seen}: \
                         it waits until {what}, which may be never{}",
                        stall.call.syscall,
                        stall.key,
                        source.as_str(),
                        if is_lock {
                            "the lock has been held"
                        } else {
                            "the peer has been"
                        },
                        silent,
                        if is_lock {
                            ""
                        } else {
                            " (the kernel gives up on a connect after ~2 min, on an idle connection never)"
                        }
                    ),
                    if is_lock {
                        "find why the holder does not release it (see its stack), and acquire with a \
                         deadline (pthread_mutex_timedlock, try_lock_for, flock -w / LOCK_NB + retry, \
                         lock_timeout)"
                            .into()
                    } else {
                        "check the peer; then give this call a timeout (socket SO_RCVTIMEO, poll \
                         timeout, the client library's read/connect timeout) and handle its expiry"
                            .into()
                    },
                ))
            }
            // A finite short wait that has been re-armed past its own timeout with nothing
            // read: the program keeps its deadline in user space, if it has one. Only on one
            // connection: a client opening connection after connection to the same peer is
            // busy, not stuck.
            Timeout::Finite(t) if duration > t * 1.5 && stall.connections.len() <= 1 => {
                self.classify_user_space_deadline(stall, silent, t, &evidence, suspect)
            }
            Timeout::Finite(_) => None,
        }
    }

    /// A thread re-arming a short wait (`tick` seconds) on a silent party: the deadline, if
    /// any, lives in the program. The command line of a known client says what it is.
    fn classify_user_space_deadline(
        &self,
        stall: &Stall,
        silent: f64,
        tick: f64,
        evidence: &dyn Fn(TimeoutSource) -> Evidence,
        suspect: impl Fn(Verdict, Timeout, Confidence, Evidence, String, String) -> Suspect,
    ) -> Option<Suspect> {
        let max = self.cfg.max_timeout;
        if let Some(Declared {
            program,
            flag,
            seconds: Some(deadline),
        }) = &self.declared
        {
            if *deadline > max {
                return Some(suspect(
                    Verdict::TooLargeTimeout,
                    Timeout::Finite(*deadline),
                    Confidence::High,
                    evidence(TimeoutSource::CommandLine),
                    format!(
                        "stuck {:.0} s on {}: {} wakes every {} s and waits again; its command \
                         line gives the request {} s ({program} {flag}), above the {} s maximum: \
                         callers give up long before it fires",
                        silent,
                        stall.key,
                        stall.call.syscall,
                        format_seconds(tick),
                        format_seconds(*deadline),
                        format_seconds(max)
                    ),
                    format!(
                        "check the peer; lower {program} {flag} to what the caller can wait (at \
                         most {} s) and handle its expiry",
                        format_seconds(max)
                    ),
                ));
            }
            if silent < deadline * 1.5 {
                // Within its own, reasonable deadline: it will give up in time.
                return None;
            }
        }
        let advice = match &self.declared {
            Some(d) => format!(
                "check the peer; then give the request a deadline ({} {} SECONDS; a value in a \
                 config file such as ~/.curlrc is not visible here) and handle its expiry",
                d.program, d.flag
            ),
            None => "check the peer; then give the whole request a deadline (e.g. curl \
                     --max-time, a client library's total/read timeout) and handle its expiry"
                .into(),
        };
        Some(suspect(
            Verdict::MissingTimeout,
            Timeout::Infinite,
            if self.declared.is_some() {
                Confidence::High
            } else {
                Confidence::Low
            },
            evidence(if self.declared.is_some() {
                TimeoutSource::CommandLine
            } else {
                stall.call.timeout_source
            }),
            format!(
                "stuck {:.0} s on {}: {} wakes every {} s and waits again, nothing arrives \
                 and no overall deadline ends it",
                silent,
                stall.key,
                stall.call.syscall,
                format_seconds(tick)
            ),
            advice,
        ))
    }

    /// Every thread of `sample` that sits in a timeout-related call, with what the detector
    /// makes of its wait (call after [`observe`](Self::observe) of the same sample).
    pub fn explain(&self, sample: &ProcessSample) -> Vec<Wait> {
        let suspects = self.suspects();
        let mut out = Vec::new();
        for t in &sample.threads {
            let ThreadState::Blocked(call) = &t.state else {
                continue;
            };
            let on = describe_parties(&call.parties);
            let (verdict, note, timeout) = match suspects.iter().find(|s| s.tid == t.tid) {
                Some(s) => (
                    s.verdict,
                    format!(
                        "{} ({} confidence), silent {} s",
                        s.verdict,
                        s.confidence.as_str(),
                        format_seconds(s.evidence.silent_seconds)
                    ),
                    s.timeout,
                ),
                None => (Verdict::Ok, self.why_ok(t.tid, call), call.timeout),
            };
            out.push(Wait {
                tid: t.tid,
                comm: t.comm.to_string(),
                syscall: call.syscall.clone(),
                timeout,
                on,
                verdict,
                note,
            });
        }
        out
    }

    fn why_ok(&self, tid: i32, call: &Call) -> String {
        let stall = self.threads.get(&tid).and_then(|t| t.stall.as_ref());
        if waits_on_other_party(call).is_none() || stall.is_none() {
            let p = &call.parties;
            let has = |f: &dyn Fn(&Party) -> bool| p.iter().any(f);
            return if has(&|p| {
                matches!(
                    p,
                    Party::Socket {
                        role: Role::Listener | Role::Accepted,
                        ..
                    }
                )
            }) {
                "serves: waits for connections or requests".into()
            } else if has(&|p| *p == Party::Stream) {
                "waits on a terminal or a pipe".into()
            } else if has(&|p| matches!(p, Party::Lock { .. })) {
                "the lock is held by a parked worker: an idle pool".into()
            } else if has(&|p| {
                matches!(
                    p,
                    Party::Socket {
                        role: Role::Client,
                        ..
                    }
                )
            }) {
                "connection idle: the last word was the peer's (keep-alive, subscription)".into()
            } else if has(&|p| *p == Party::Park) {
                "parked: waits for work".into()
            } else if has(&|p| *p == Party::Sleep) {
                "sleeps".into()
            } else if has(&|p| *p == Party::Child) {
                "waits for its child".into()
            } else {
                "waits on a local event".into()
            };
        }
        let stall = stall.expect("checked above");
        let now = self.last_at;
        let (timeout, source) = Self::governing_timeout(stall, now);
        if let Some(PeerSide::Holding { process }) = stall.link.as_ref().map(|l| &l.peer_side) {
            return format!(
                "the peer ({process}) read the request and holds it on purpose (blocking pop, \
                 long poll, stream)"
            );
        }
        match timeout {
            Timeout::Finite(t) if t <= self.cfg.max_timeout => format!(
                "has a {} s timeout ({}), within the {} s maximum",
                format_seconds(t),
                source.as_str(),
                format_seconds(self.cfg.max_timeout)
            ),
            _ => format!(
                "the other party has been silent {:.1} s, less than the {} s quiet period",
                stall.silent_for(now),
                format_seconds(self.baseline.threshold(
                    &stall.first_syscall,
                    stall.first_site,
                    self.cfg.quiet_period
                ))
            ),
        }
    }
}

fn peer_side_text(p: &PeerSide) -> String {
    p.describe().map(|d| format!("; {d}")).unwrap_or_default()
}

/// The parties of a call in a few words.
fn describe_parties(parties: &[Party]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in parties {
        let s = match p {
            Party::Socket {
                role,
                state,
                peer,
                link,
                ..
            } => {
                let peer = peer.as_deref().unwrap_or("-");
                match role {
                    Role::Client => {
                        let mut s = format!("client socket to {peer} ({state}");
                        if let Some(l) = link {
                            match l.awaiting {
                                Some(true) => s.push_str(", awaiting an answer"),
                                Some(false) => s.push_str(", idle"),
                                None => {}
                            }
                            if let Some(sec) = l.silent {
                                s.push_str(&format!(", peer silent {sec:.1} s"));
                            }
                            if let Some(b) = l.in_flight.filter(|b| *b > 0) {
                                s.push_str(&format!(", {b} bytes not taken"));
                            }
                        }
                        s.push(')');
                        s
                    }
                    Role::Accepted => format!("accepted connection from {peer}"),
                    Role::Listener => "listening socket".into(),
                    Role::Other => format!("socket ({state})"),
                }
            }
            Party::Lock { kind, holder, .. } => format!(
                "{kind} held by {}",
                holder.as_deref().unwrap_or("another party")
            ),
            Party::Park => "parking spot (condition variable)".into(),
            Party::Sleep => "sleep".into(),
            Party::Child => "child process".into(),
            Party::Stream => "terminal or pipe".into(),
            Party::Local => "local descriptor".into(),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.len() > 4 {
        let n = out.len() - 3;
        out.truncate(3);
        out.push(format!("{n} more"));
    }
    out.join(", ")
}

impl ProcessDetector {
    /// The process verdict: the worst of its suspects.
    pub fn verdict_of(suspects: &[Suspect]) -> Verdict {
        suspects
            .iter()
            .map(|s| s.verdict)
            .max()
            .unwrap_or(Verdict::Ok)
    }
}
