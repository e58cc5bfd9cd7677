//! The alert rules of the agent: for every alert name of the contract except
//! `LookoutAgentDown` (an agent cannot report its own death; that one is central only), the
//! condition over the series store and the findings log, and its defaults (`for`, severity,
//! threshold, keep_firing_for).
//!
//! A rule is a pure function of an [`EvalInput`]: it returns one [`Candidate`] per subject
//! (service, cache, ...) whose condition holds *now*. Durations (`for`, hysteresis) are the
//! engine's business, not the rules'. The same conditions exist as Prometheus rules in
//! `alerts/lookout.rules.yml`; keep both in step.

use super::names::*;
use crate::config::Severity;
use crate::context::Finding;
use crate::series::{Sample, SeriesKey, SeriesStore};
use std::collections::BTreeMap;

/// Series names the rules read (the contract between helpers, see the signals list).
/// Each is defined once, by its producer, and imported here: a rename there is a compile
/// error here, not a silent alert that never fires.
pub mod series {
    pub use crate::alerting::names::metrics::{
        NOTIFICATIONS, SPOOL_DISK_FAILING, SPOOL_MEMORY_ONLY,
    };
    pub use crate::anomaly::{EVENT as ANOMALY_EVENT, SCORE as ANOMALY_SCORE};
    pub use crate::probes::names::{
        INITIALIZING, LAST_COLD_START, SYSTEM_THREAD_LIMIT, SYSTEM_THREADS,
        THREAD_COUNT as THREADS, THREAD_LIMIT, THREAD_LIMIT_USAGE,
    };
    pub use crate::timeout::names::SUSPECTS as TIMEOUT_SUSPECTS;
    pub use lookout_cache::names::{
        BLOB_UP as CACHE_BLOB_UP, ERRORS_TOTAL as CACHE_ERRORS,
        SOURCE_LOADS_TOTAL as CACHE_SOURCE_LOADS, STALENESS_SECONDS as CACHE_STALENESS,
        VERSION_LAG as CACHE_VERSION_LAG,
    };
    pub use lookout_tracker::names::{
        PRIMARY_CHANGES_TOTAL as PRIMARY_CHANGES, PRIMARY_UP, THROTTLED_TOTAL as TRACKER_THROTTLED,
    };
}

/// What must exist for an alert's subject to exist. A firing alert whose subject is gone
/// (the process ended, the cache or tracker went away) resolves at once instead of waiting
/// out its keep_firing_for; and the config's [`super::engine::Scope`] says which subjects
/// may exist at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// A running process of the service (`process_thread_count{service}`); for the host
    /// (`scope="host"`), `system_thread_count`.
    Process,
    /// A service instance that is starting (`lookout_service_initializing_seconds{service}`).
    Initializing,
    /// A running process of the service, watched by the timeout detector.
    Timeout,
    /// Any series of the cache.
    Cache,
    /// Any series of the tracker of the service.
    Tracker,
    /// The anomaly detector's event series.
    Anomaly,
    /// The agent itself: always there.
    Always,
}

/// (series name, label, value) of every series (and ("", label, value) for any series), and
/// the names of all series.
type Index = (
    std::collections::HashSet<(String, String, String)>,
    std::collections::HashSet<String>,
);

/// Which subjects have series now, built on first use within one evaluation.
pub struct PresenceIndex<'a> {
    input: &'a EvalInput<'a>,
    index: Option<Index>,
}

impl<'a> PresenceIndex<'a> {
    pub fn new(input: &'a EvalInput<'a>) -> Self {
        Self { input, index: None }
    }

    fn index(&mut self) -> &Index {
        self.index.get_or_insert_with(|| {
            let mut triples = std::collections::HashSet::new();
            let mut names = std::collections::HashSet::new();
            for key in self.input.series.keys() {
                for (k, v) in &key.labels {
                    triples.insert((key.name.clone(), k.clone(), v.clone()));
                    triples.insert((String::new(), k.clone(), v.clone()));
                }
                names.insert(key.name);
            }
            (triples, names)
        })
    }

    fn with(&mut self, name: &str, label: &str, value: Option<&String>) -> bool {
        let Some(value) = value else { return false };
        self.index()
            .0
            .contains(&(name.to_string(), label.to_string(), value.clone()))
    }

    /// Whether the subject of an alert with this presence still has its series.
    pub fn has(&mut self, presence: Presence, subject: &Subject) -> bool {
        let service = subject.get("service");
        match presence {
            Presence::Process if subject.get("scope").is_some_and(|s| s == "host") => {
                self.index().1.contains(series::SYSTEM_THREADS)
            }
            Presence::Process | Presence::Timeout => self.with(series::THREADS, "service", service),
            Presence::Initializing => self.with(series::INITIALIZING, "service", service),
            Presence::Cache => self.with("", "cache", subject.get("cache")),
            Presence::Tracker => {
                self.with(series::PRIMARY_UP, "service", service)
                    || self.with(series::PRIMARY_CHANGES, "service", service)
                    || self.with(series::TRACKER_THROTTLED, "service", service)
            }
            Presence::Anomaly => self.index().1.contains(series::ANOMALY_EVENT),
            Presence::Always => true,
        }
    }
}

/// Subject labels of an alert, sorted.
pub type Subject = BTreeMap<String, String>;

/// One subject whose condition holds now.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub subject: Subject,
    /// The value that crossed the threshold (for people and for `/api/v1/alerts`).
    pub value: f64,
    pub summary: String,
    pub description: String,
}

/// What the rules know of the config: the per-service and per-cache numbers they compare to.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Service name → cold start budget in seconds.
    pub cold_start_budget: BTreeMap<String, f64>,
    /// Cache name → check interval in seconds.
    pub check_interval: BTreeMap<String, f64>,
}

/// Everything a rule may read, at one evaluation.
pub struct EvalInput<'a> {
    pub series: &'a SeriesStore,
    /// The evaluation time on the series store's monotonic clock (seconds).
    pub now: f64,
    /// Samples kept per series (`agent.history`): tells a full ring from a young series.
    pub history: usize,
    pub facts: &'a Facts,
    /// Recent findings, oldest first.
    pub findings: &'a [Finding],
    /// The probes have completed a cycle since the agent started, so a subject without
    /// series is really gone (right after a restart every subject looks gone).
    pub settled: bool,
}

/// A rule: its name, defaults and condition.
pub struct RuleDef {
    pub name: &'static str,
    pub severity: Severity,
    /// Seconds the condition must hold before the alert fires.
    pub for_secs: f64,
    /// Seconds the condition must stay false before a firing alert resolves.
    pub keep_firing_for_secs: f64,
    /// The rule-specific threshold; its meaning is in [`RuleDef::threshold_meaning`] and the
    /// runbook.
    pub threshold: f64,
    pub threshold_meaning: &'static str,
    pub eval: fn(&EvalInput, f64) -> Vec<Candidate>,
    /// What must exist for its subject to exist.
    pub presence: Presence,
}

/// Every agent rule, in the order of the contract.
pub fn all() -> Vec<RuleDef> {
    use Severity::{Page, Ticket};
    let r = |name,
             severity,
             for_secs,
             keep_firing_for_secs,
             threshold,
             threshold_meaning,
             eval: fn(&EvalInput, f64) -> Vec<Candidate>,
             presence| RuleDef {
        name,
        severity,
        for_secs,
        keep_firing_for_secs,
        threshold,
        threshold_meaning,
        eval,
        presence,
    };
    vec![
        r(
            THREAD_COUNT_ABOVE_EXPECTED,
            Ticket,
            300.0,
            120.0,
            1.0,
            "fraction of expected_max_threads above which the alert fires",
            thread_count_above_expected,
            Presence::Process,
        ),
        r(
            THREAD_LIMIT_NEAR,
            Page,
            60.0,
            120.0,
            0.9,
            "fraction of the thread limit (RLIMIT_NPROC, or min(threads-max, pid_max) for the host)",
            thread_limit_near,
            Presence::Process,
        ),
        r(
            THREAD_LEAK_SUSPECTED,
            Ticket,
            600.0,
            300.0,
            3600.0,
            "horizon in seconds: fire when the trend reaches the lowest limit within it",
            thread_leak_suspected,
            Presence::Process,
        ),
        r(
            COLD_START_SLOW,
            Ticket,
            0.0,
            0.0,
            1.0,
            "fraction of the service's cold_start_budget",
            cold_start_slow,
            Presence::Process,
        ),
        r(
            SERVICE_STUCK_INITIALIZING,
            Page,
            0.0,
            60.0,
            1.0,
            "fraction of the service's cold_start_budget",
            service_stuck_initializing,
            Presence::Initializing,
        ),
        r(
            CACHE_VERSION_LAG,
            Page,
            120.0,
            60.0,
            0.0,
            "versions behind the blob tier above which the alert fires",
            cache_version_lag,
            Presence::Cache,
        ),
        r(
            CACHE_STALE,
            Page,
            0.0,
            60.0,
            10.0,
            "multiple of the cache's check_interval",
            cache_stale,
            Presence::Cache,
        ),
        r(
            CACHE_SOURCE_FAILING,
            Ticket,
            600.0,
            0.0,
            0.0,
            "failed source loads in the last 10 minutes above which (with no success) it fires",
            cache_source_failing,
            Presence::Cache,
        ),
        r(
            CACHE_BLOB_UNAVAILABLE,
            Page,
            120.0,
            60.0,
            0.0,
            "unused",
            cache_blob_unavailable,
            Presence::Cache,
        ),
        r(
            CACHE_CORRUPT_BLOB,
            Page,
            0.0,
            0.0,
            0.0,
            "corrupt-blob errors in the last 10 minutes above which it fires",
            cache_corrupt_blob,
            Presence::Cache,
        ),
        r(
            PRIMARY_UNAVAILABLE,
            Page,
            30.0,
            60.0,
            0.0,
            "unused",
            primary_unavailable,
            Presence::Tracker,
        ),
        r(
            PRIMARY_FLAPPING,
            Ticket,
            0.0,
            0.0,
            3.0,
            "primary changes in the last 10 minutes above which it fires",
            primary_flapping,
            Presence::Tracker,
        ),
        r(
            TRACKER_THROTTLING,
            Ticket,
            0.0,
            0.0,
            0.0,
            "throttled requests in the last 5 minutes above which it fires",
            tracker_throttling,
            Presence::Tracker,
        ),
        r(
            ANOMALY_DETECTED,
            Ticket,
            120.0,
            300.0,
            0.5,
            "lookout_anomaly_event value above which it fires (and at least 2 trained measurement metrics behind it)",
            anomaly_detected,
            Presence::Anomaly,
        ),
        r(
            TIMEOUT_BUG_SUSPECTED,
            Ticket,
            120.0,
            120.0,
            0.0,
            "suspect threads above which it fires",
            timeout_bug_suspected,
            Presence::Timeout,
        ),
        r(
            TIMEOUT_STORM,
            Page,
            60.0,
            120.0,
            10.0,
            "suspect threads of one service (all kinds) at or above which it fires",
            timeout_storm,
            Presence::Timeout,
        ),
        r(
            TIMEOUT_TOO_LARGE,
            Ticket,
            120.0,
            120.0,
            0.0,
            "suspect threads above which it fires",
            timeout_too_large,
            Presence::Timeout,
        ),
        r(
            LOOKOUT_ALERT_SPOOL_FAILING,
            Ticket,
            0.0,
            120.0,
            0.0,
            "unused",
            alert_spool_failing,
            Presence::Always,
        ),
    ]
}

/// A cause and the alerts it explains: while `cause` is pending or firing for a subject with
/// the same value of every `equal` label, new `effects` alerts for it are held back (their
/// page would only repeat the cause's). An effect already firing keeps firing: withdrawing a
/// page someone may be reading would be worse than the repetition.
pub struct Inhibition {
    pub cause: &'static str,
    pub effects: &'static [&'static str],
    pub equal: &'static [&'static str],
}

pub const INHIBITIONS: &[Inhibition] = &[
    Inhibition {
        cause: PRIMARY_UNAVAILABLE,
        effects: &[TRACKER_THROTTLING, PRIMARY_FLAPPING],
        equal: &["service"],
    },
    Inhibition {
        cause: CACHE_BLOB_UNAVAILABLE,
        effects: &[CACHE_STALE, CACHE_VERSION_LAG],
        equal: &["cache"],
    },
    Inhibition {
        cause: TIMEOUT_STORM,
        effects: &[TIMEOUT_BUG_SUSPECTED, TIMEOUT_TOO_LARGE],
        equal: &["service"],
    },
    Inhibition {
        cause: THREAD_LIMIT_NEAR,
        effects: &[THREAD_COUNT_ABOVE_EXPECTED, THREAD_LEAK_SUSPECTED],
        equal: &["service"],
    },
];

fn subject(pairs: &[(&str, &str)]) -> Subject {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Latest value of every series of `name`, keyed by its `label` (series without it skipped).
fn latest_by(input: &EvalInput, name: &str, label: &str) -> BTreeMap<String, f64> {
    input
        .series
        .latest_of(name)
        .into_iter()
        .filter_map(|(k, v)| k.label(label).map(|l| (l.to_string(), v)))
        .collect()
}

/// Latest value of the series of `name` with `label`=`value` and `kind`=`kind`.
fn latest_kind(input: &EvalInput, name: &str, label: &str, kind: &str) -> BTreeMap<String, f64> {
    input
        .series
        .latest_of(name)
        .into_iter()
        .filter(|(k, _)| k.label("kind") == Some(kind))
        .filter_map(|(k, v)| k.label(label).map(|l| (l.to_string(), v)))
        .collect()
}

/// How much a counter (a series of running totals) grew in the last `window` seconds,
/// counting resets as Prometheus' `increase` does.
///
/// The baseline is the last sample at or before the window's start. With none: if the ring is
/// full, its oldest sample (older history was dropped); else 0, as the series was born inside
/// the window and counters start at zero.
pub fn increase(input: &EvalInput, key: &SeriesKey, window: f64) -> f64 {
    let samples = input.series.samples(key);
    increase_of(&samples, input.now, window, samples.len() >= input.history)
}

fn increase_of(samples: &[Sample], now: f64, window: f64, ring_full: bool) -> f64 {
    let start = now - window;
    let split = samples.partition_point(|s| (s.t as f64) <= start);
    let in_window = &samples[split..];
    if in_window.is_empty() {
        return 0.0;
    }
    let mut prev = match split.checked_sub(1) {
        Some(i) => samples[i].v as f64,
        None if ring_full => in_window[0].v as f64,
        None => 0.0,
    };
    let mut total = 0.0;
    for s in in_window {
        let v = s.v as f64;
        total += if v >= prev { v - prev } else { v };
        prev = v;
    }
    total
}

/// Least-squares line through `samples` (t, v): (slope per second, value at `at`, r²).
pub fn linear_fit(samples: &[Sample], at: f64) -> Option<(f64, f64, f64)> {
    let n = samples.len() as f64;
    if samples.len() < 3 {
        return None;
    }
    let mt = samples.iter().map(|s| s.t as f64).sum::<f64>() / n;
    let mv = samples.iter().map(|s| s.v as f64).sum::<f64>() / n;
    let (mut stt, mut stv, mut svv) = (0.0, 0.0, 0.0);
    for s in samples {
        let (dt, dv) = (s.t as f64 - mt, s.v as f64 - mv);
        stt += dt * dt;
        stv += dt * dv;
        svv += dv * dv;
    }
    if stt <= 0.0 {
        return None;
    }
    let slope = stv / stt;
    let r2 = if svv <= 0.0 {
        0.0
    } else {
        (stv * stv) / (stt * svv)
    };
    Some((slope, mv + slope * (at - mt), r2))
}

fn fmt_secs(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).round() as u64))
        .to_string()
}

// ---- thread rules -------------------------------------------------------------------------

fn thread_count_above_expected(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let threads = latest_by(input, series::THREADS, "service");
    let expected = latest_kind(input, series::THREAD_LIMIT, "service", "expected");
    let mut out = Vec::new();
    for (svc, n) in &threads {
        let Some(max) = expected.get(svc) else {
            continue;
        };
        if *n > max * threshold {
            out.push(Candidate {
                subject: subject(&[("service", svc)]),
                value: *n,
                summary: format!("Service {svc} runs {n} threads, above its expected maximum of {max}"),
                description: format!(
                    "The watched service {svc} has {n} threads; its configured expected_max_threads is {max}. \
                     More threads than designed for usually means a leak, a stuck pool that keeps growing, \
                     or a load the service was not sized for."
                ),
            });
        }
    }
    out
}

fn host_thread_limit(input: &EvalInput) -> Option<f64> {
    input
        .series
        .latest_of(series::SYSTEM_THREAD_LIMIT)
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| *v > 0.0)
        .min_by(f64::total_cmp)
}

/// The limits ThreadLimitNear weighs for a service, what counts against each, and what
/// hitting it does.
const HARD_LIMITS: [(&str, &str, &str); 2] = [
    (
        "rlimit_nproc",
        "RLIMIT_NPROC",
        "RLIMIT_NPROC counts every thread and process of the service's user, not only the service's",
    ),
    (
        "cgroup_pids",
        "its cgroup's pids.max (systemd TasksMax)",
        "the cgroup's pids.max (TasksMax) counts every task of the service's cgroup, all its processes and their threads",
    ),
];

fn thread_limit_near(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    let threads = latest_by(input, series::THREADS, "service");
    // Per service, the limit nearest to being hit: the highest usage/limit.
    for (svc, n) in &threads {
        let mut nearest: Option<(f64, f64, f64, &str, &str)> = None;
        for (kind, name, what) in HARD_LIMITS {
            let Some(limit) = latest_kind(input, series::THREAD_LIMIT, "service", kind)
                .get(svc)
                .copied()
                .filter(|l| *l > 0.0)
            else {
                continue;
            };
            // Without a usage series (an older agent's data), the service's own threads.
            let used = latest_kind(input, series::THREAD_LIMIT_USAGE, "service", kind)
                .get(svc)
                .copied()
                .unwrap_or(*n);
            let share = used / limit;
            if nearest.is_none_or(|(s, ..)| share > s) {
                nearest = Some((share, used, limit, name, what));
            }
        }
        let Some((share, used, limit, name, what)) = nearest else {
            continue;
        };
        if share >= threshold {
            out.push(Candidate {
                subject: subject(&[("service", svc)]),
                value: used,
                summary: format!(
                    "Service {svc} is at {:.0}% of {name}: {used} of {limit} tasks",
                    100.0 * share
                ),
                description: format!(
                    "Service {svc} has {n} threads; {what}, and that count is {used} of {limit} — the nearest \
                     of its limits. At the limit, thread and process creation fails with EAGAIN: the service can no \
                     longer start threads or processes."
                ),
            });
        }
    }
    if let (Some(n), Some(limit)) = (
        input
            .series
            .latest(&SeriesKey::new(series::SYSTEM_THREADS, &[])),
        host_thread_limit(input),
    ) && n >= limit * threshold
    {
        out.push(Candidate {
            subject: subject(&[("scope", "host")]),
            value: n,
            summary: format!(
                "The host runs {n} threads, {:.0}% of its limit of {limit} (min of kernel.threads-max, kernel.pid_max)",
                100.0 * n / limit
            ),
            description: format!(
                "The whole host has {n} threads; the kernel refuses new threads and processes at {limit}. \
                 Every service on the host is at risk, including sshd and the shells you would use to fix it."
            ),
        });
    }
    out
}

/// Seconds of history a leak trend needs before it is believed.
const LEAK_MIN_SPAN: f64 = 300.0;
/// Fit quality below which a trend is noise, not a leak.
const LEAK_MIN_R2: f64 = 0.7;

fn thread_leak_suspected(input: &EvalInput, horizon: f64) -> Vec<Candidate> {
    // Per service, the limit with the least headroom: limit minus what counts against it
    // (the service's threads for `expected`, the user's or the cgroup's tasks for the others).
    let threads = latest_by(input, series::THREADS, "service");
    let mut limits: BTreeMap<String, (f64, f64, &'static str)> = BTreeMap::new();
    let host = host_thread_limit(input);
    let host_threads = input
        .series
        .latest(&SeriesKey::new(series::SYSTEM_THREADS, &[]));
    for (k, v) in input.series.latest_of(series::THREAD_LIMIT) {
        let (Some(svc), Some(kind)) = (k.label("service"), k.label("kind")) else {
            continue;
        };
        let Some(n) = threads.get(svc).copied() else {
            continue;
        };
        let used = if kind == "expected" {
            n
        } else {
            latest_kind(input, series::THREAD_LIMIT_USAGE, "service", kind)
                .get(svc)
                .copied()
                .unwrap_or(n)
        };
        let name = match kind {
            "expected" => "expected_max_threads",
            "cgroup_pids" => "its cgroup's pids.max (TasksMax)",
            _ => "RLIMIT_NPROC",
        };
        let headroom = v - used;
        let e = limits.entry(svc.to_string()).or_insert((headroom, v, name));
        if headroom < e.0 {
            *e = (headroom, v, name);
        }
    }
    let mut out = Vec::new();
    for (key, n) in input.series.latest_of(series::THREADS) {
        let Some(svc) = key.label("service") else {
            continue;
        };
        let host_room = host.map(|h| (h - host_threads.unwrap_or(n), h, "the host thread limit"));
        let (headroom, limit, which) = match (limits.get(svc).copied(), host_room) {
            (Some(l), Some(h)) if h.0 < l.0 => h,
            (Some(l), _) => l,
            (None, Some(h)) => h,
            (None, None) => continue,
        };
        let samples = input.series.samples(&key);
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            continue;
        };
        if ((last.t - first.t) as f64) < LEAK_MIN_SPAN || headroom <= 0.0 {
            // Too little history to call it a trend; or already at the limit, which
            // ThreadCountAboveExpected / ThreadLimitNear report.
            continue;
        }
        let Some((slope, now_fit, r2)) = linear_fit(&samples, input.now) else {
            continue;
        };
        if slope <= 0.0 || r2 < LEAK_MIN_R2 {
            continue;
        }
        // The fit's value now may lead the last sample: the headroom left at the fit's pace.
        let eta = (headroom - (now_fit - n).max(0.0)) / slope;
        if eta <= horizon {
            out.push(Candidate {
                subject: subject(&[("service", svc)]),
                value: eta,
                summary: format!(
                    "Service {svc}'s threads grow {:.1}/min and will reach {which} ({limit}) in about {}",
                    slope * 60.0,
                    fmt_secs(eta)
                ),
                description: format!(
                    "Service {svc} has {n} threads, growing steadily ({:.2} per minute, fit r²={r2:.2} over the last {}). \
                     At this rate it reaches {which} of {limit} in about {}. A steady climb that never comes back down is \
                     the signature of a thread leak.",
                    slope * 60.0,
                    fmt_secs((last.t - first.t) as f64),
                    fmt_secs(eta)
                ),
            });
        }
    }
    out
}

// ---- service start ------------------------------------------------------------------------

fn cold_start_slow(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (svc, secs) in latest_by(input, series::LAST_COLD_START, "service") {
        let Some(budget) = input.facts.cold_start_budget.get(&svc) else {
            continue;
        };
        if secs > budget * threshold {
            out.push(Candidate {
                subject: subject(&[("service", &svc)]),
                value: secs,
                summary: format!(
                    "Service {svc}'s last cold start took {}, over its budget of {}",
                    fmt_secs(secs),
                    fmt_secs(*budget)
                ),
                description: format!(
                    "The last start of {svc} took {secs:.1} s from process start to its first successful readiness probe; \
                     its cold_start_budget is {budget:.0} s. Slow starts stretch every deploy and every failover. \
                     This stays open until a start within budget is observed."
                ),
            });
        }
    }
    out
}

fn service_stuck_initializing(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (svc, secs) in latest_by(input, series::INITIALIZING, "service") {
        let Some(budget) = input.facts.cold_start_budget.get(&svc) else {
            continue;
        };
        if secs > budget * threshold {
            out.push(Candidate {
                subject: subject(&[("service", &svc)]),
                value: secs,
                summary: format!(
                    "Service {svc} has been starting for {} and is still not ready (budget {})",
                    fmt_secs(secs),
                    fmt_secs(*budget)
                ),
                description: format!(
                    "The current instance of {svc} started {secs:.0} s ago and its readiness probe has not passed yet; \
                     its cold_start_budget is {budget:.0} s. It is not serving."
                ),
            });
        }
    }
    out
}

// ---- cache --------------------------------------------------------------------------------

fn cache_version_lag(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    latest_by(input, series::CACHE_VERSION_LAG, "cache")
        .into_iter()
        .filter(|(_, lag)| *lag > threshold)
        .map(|(cache, lag)| Candidate {
            subject: subject(&[("cache", &cache)]),
            value: lag,
            summary: format!("Cache {cache} serves a version {lag} behind the blob tier"),
            description: format!(
                "This server's copy of cache {cache} is {lag} version(s) behind the shared blob tier: it serves \
                 older data than its peers. Normally the next check (every check_interval) catches up."
            ),
        })
        .collect()
}

fn cache_stale(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (cache, secs) in latest_by(input, series::CACHE_STALENESS, "cache") {
        let interval = input
            .facts
            .check_interval
            .get(&cache)
            .copied()
            .unwrap_or(5.0);
        if secs > threshold * interval {
            out.push(Candidate {
                subject: subject(&[("cache", &cache)]),
                value: secs,
                summary: format!(
                    "Cache {cache} has not been checked against the blob tier for {}",
                    fmt_secs(secs)
                ),
                description: format!(
                    "The last successful check of cache {cache} against the blob tier was {secs:.0} s ago, more than \
                     {threshold} × its check_interval of {interval} s. It keeps serving its last version, which may be \
                     out of date; strong reads fail."
                ),
            });
        }
    }
    out
}

const TEN_MINUTES: f64 = 600.0;

fn cache_source_failing(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut per_cache: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for key in input.series.keys() {
        if key.name != series::CACHE_SOURCE_LOADS {
            continue;
        }
        let (Some(cache), Some(outcome)) = (key.label("cache"), key.label("outcome")) else {
            continue;
        };
        let inc = increase(input, &key, TEN_MINUTES);
        let e = per_cache.entry(cache.to_string()).or_default();
        if outcome == "ok" {
            e.0 += inc;
        } else {
            e.1 += inc;
        }
    }
    per_cache
        .into_iter()
        .filter(|(_, (ok, err))| *ok == 0.0 && *err > threshold)
        .map(|(cache, (_, err))| Candidate {
            subject: subject(&[("cache", &cache)]),
            value: err,
            summary: format!(
                "Cache {cache}: every source load failed in the last 10 minutes ({err} failures)"
            ),
            description: format!(
                "Loads of cache {cache} from its source failed {err} time(s) in the last 10 minutes and none succeeded. \
                 The fleet keeps serving the last published version, which ages."
            ),
        })
        .collect()
}

fn cache_blob_unavailable(input: &EvalInput, _threshold: f64) -> Vec<Candidate> {
    latest_by(input, series::CACHE_BLOB_UP, "cache")
        .into_iter()
        .filter(|(_, up)| *up == 0.0)
        .map(|(cache, up)| Candidate {
            subject: subject(&[("cache", &cache)]),
            value: up,
            summary: format!("Cache {cache} cannot reach its blob tier"),
            description: format!(
                "Operations of cache {cache} on its shared blob store are failing. This server serves its in-memory \
                 copy (staleness grows), cannot publish refreshes, and strong reads answer 503."
            ),
        })
        .collect()
}

fn cache_corrupt_blob(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (key, _) in input.series.latest_of(series::CACHE_ERRORS) {
        if key.label("kind") != Some("corrupt") {
            continue;
        }
        let Some(cache) = key.label("cache") else {
            continue;
        };
        let inc = increase(input, &key, TEN_MINUTES);
        if inc > threshold {
            out.push(Candidate {
                subject: subject(&[("cache", cache)]),
                value: inc,
                summary: format!(
                    "Cache {cache} rejected {inc} corrupt blob(s) in the last 10 minutes"
                ),
                description: format!(
                    "Data read from the blob tier for cache {cache} did not match its content hash {inc} time(s) in the \
                     last 10 minutes. The agent rejected it and keeps serving the last good version, but the shared \
                     copy is damaged or being tampered with."
                ),
            });
        }
    }
    out
}

// ---- primary tracker ----------------------------------------------------------------------

fn primary_unavailable(input: &EvalInput, _threshold: f64) -> Vec<Candidate> {
    latest_by(input, series::PRIMARY_UP, "service")
        .into_iter()
        .filter(|(_, up)| *up == 0.0)
        .map(|(svc, up)| Candidate {
            subject: subject(&[("service", &svc)]),
            value: up,
            summary: format!("No primary of {svc} is known: requests to it fail"),
            description: format!(
                "The primary tracker cannot find a primary for {svc}: no replica names one, or the named one does \
                 not answer. Every request proxied to {svc} from this host answers 503."
            ),
        })
        .collect()
}

fn primary_flapping(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (key, _) in input.series.latest_of(series::PRIMARY_CHANGES) {
        let Some(svc) = key.label("service") else {
            continue;
        };
        let changes = increase(input, &key, TEN_MINUTES);
        if changes > threshold {
            out.push(Candidate {
                subject: subject(&[("service", svc)]),
                value: changes,
                summary: format!("The primary of {svc} changed {changes} times in 10 minutes"),
                description: format!(
                    "The primary of {svc} changed {changes} times in the last 10 minutes. Each change costs a \
                     re-discovery and failed requests; frequent changes point at an unstable election or a primary \
                     that keeps crashing."
                ),
            });
        }
    }
    out
}

fn tracker_throttling(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (key, _) in input.series.latest_of(series::TRACKER_THROTTLED) {
        let Some(svc) = key.label("service") else {
            continue;
        };
        let n = increase(input, &key, 300.0);
        if n > threshold {
            out.push(Candidate {
                subject: subject(&[("service", svc)]),
                value: n,
                summary: format!(
                    "{n} requests to {svc} were throttled (429) in the last 5 minutes"
                ),
                description: format!(
                    "The tracker of {svc} refused {n} request(s) in the last 5 minutes because max_in_flight requests \
                     were already waiting on the primary. Callers got 429."
                ),
            });
        }
    }
    out
}

// ---- detectors ----------------------------------------------------------------------------

/// Distinct metrics (names, not label sets) an anomaly event needs behind it before it
/// pages: a host anomaly is many metrics at once. One metric moving — a service starting,
/// the three load averages of one load change, both directions of one network burst — is
/// not one.
pub const ANOMALY_MIN_METRICS: usize = 2;
/// A contributor must have been scored for this long: the rule's own warm-up, whatever the
/// detector's (a fresh agent, or a series that just appeared, has nothing to compare with).
pub const ANOMALY_MIN_WATCHED_SECS: f64 = 300.0;

/// The agent's own bookkeeping: series that describe the agent's work (its alerts, spool,
/// detectors' outputs, configuration echoes, its own process) rather than the host. They move
/// because the agent does something — an anomaly in them is never the host's.
pub fn is_agent_bookkeeping(metric: &str) -> bool {
    const OWN: &[&str] = &[
        "lookout_alert",
        "lookout_anomaly",
        "lookout_host_anomaly",
        "lookout_timeout",
        "lookout_blocked",
        "lookout_agent",
        "lookout_build",
        "lookout_service_cold_start_budget",
        "lookout_cache_check_interval",
    ];
    let name = metric.split('{').next().unwrap_or(metric);
    OWN.iter().any(|p| name.starts_with(p))
        || metric.contains(&format!("service={:?}", crate::probes::names::SELF_SERVICE))
}

/// The contributors of the latest anomaly event that may page: measurements of the host (not
/// the agent's bookkeeping) whose score comes from a trained, mature model (the detector caps
/// an immature model's scores at `IMMATURE_CAP`; an untrained one scores 0) and that have
/// been scored for [`ANOMALY_MIN_WATCHED_SECS`].
fn anomaly_contributors(input: &EvalInput) -> Vec<(String, f64)> {
    let Some(top) = input
        .findings
        .iter()
        .rev()
        .find(|f| f.source == "anomaly" && f.kind == "anomaly_event")
        .and_then(|f| f.detail.get("top").and_then(|t| t.as_array()).cloned())
    else {
        return Vec::new();
    };
    let cap = f64::from(lookout_detectors::anomaly::IMMATURE_CAP);
    top.iter()
        .filter_map(|m| {
            Some((
                m.get("metric")?.as_str()?.to_string(),
                m.get("score")?.as_f64()?,
            ))
        })
        .filter(|(metric, score)| *score > cap && !is_agent_bookkeeping(metric))
        .filter(|(metric, _)| {
            let samples = input.series.samples(&SeriesKey::new(
                series::ANOMALY_SCORE,
                &[("metric", metric)],
            ));
            samples.len() >= input.history
                || samples
                    .first()
                    .is_some_and(|s| input.now - f64::from(s.t) >= ANOMALY_MIN_WATCHED_SECS)
        })
        .collect()
}

fn anomaly_detected(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let Some(v) = input
        .series
        .latest(&SeriesKey::new(series::ANOMALY_EVENT, &[]))
    else {
        return Vec::new();
    };
    if v <= threshold {
        return Vec::new();
    }
    let contributors = anomaly_contributors(input);
    let metrics: std::collections::BTreeSet<&str> = contributors
        .iter()
        .map(|(m, _)| m.split('{').next().unwrap_or(m))
        .collect();
    if metrics.len() < ANOMALY_MIN_METRICS {
        return Vec::new();
    }
    let top = contributors
        .iter()
        .take(5)
        .map(|(m, s)| format!("{m} ({s:.2})"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![Candidate {
        subject: Subject::new(),
        value: v,
        summary: format!("Many of this host's metrics behave unusually at once; top: {top}"),
        description: format!(
            "The anomaly detector sees an unusual share of this host's metrics deviate from their learned behaviour \
             at the same time (a host anomaly event). Most anomalous series: {top}. This is a hint to look, not a \
             diagnosis."
        ),
    }]
}

/// How far back `LookoutAlertSpoolFailing` looks for notices the spool's bound dropped.
pub const SPOOL_DROPPED_WINDOW: f64 = 300.0;

fn alert_spool_failing(input: &EvalInput, _threshold: f64) -> Vec<Candidate> {
    let failing = input
        .series
        .latest(&SeriesKey::new(series::SPOOL_DISK_FAILING, &[]))
        .unwrap_or(0.0);
    let dropped = increase(
        input,
        &SeriesKey::new(series::NOTIFICATIONS, &[("outcome", "dropped")]),
        SPOOL_DROPPED_WINDOW,
    );
    if failing < 1.0 && dropped <= 0.0 {
        return Vec::new();
    }
    let memory = input
        .series
        .latest(&SeriesKey::new(series::SPOOL_MEMORY_ONLY, &[]))
        .unwrap_or(0.0);
    let mut summary = Vec::new();
    let mut description = Vec::new();
    if failing >= 1.0 {
        summary.push(format!(
            "the agent cannot write its alert spool: {memory} notification(s) wait in memory only"
        ));
        description.push(format!(
            "Writes under data_dir/alerts fail (read-only or full disk, or a permission problem). Alerts are still \
             delivered, but {memory} notification(s) now live only in the agent's memory: if the agent dies before \
             an Alertmanager takes them, they are lost, and a restart cannot resolve what it does not remember."
        ));
    }
    if dropped > 0.0 {
        summary.push(format!(
            "the alert spool dropped {dropped} notification(s) at its bound (alerts.spool_max) in the last 5 minutes"
        ));
        description.push(format!(
            "An Alertmanager's queue holds more distinct alerts than alerts.spool_max allows (an Alertmanager down \
             while many alerts fire, or a reload that lowered the bound): {dropped} firing notification(s) were \
             dropped in the last 5 minutes, oldest first. Still-firing alerts are queued again at their next resend; \
             resolutions are never dropped."
        ));
    }
    let mut summary = summary.join("; ");
    if let Some(first) = summary.get(..1) {
        summary = first.to_uppercase() + &summary[1..];
    }
    vec![Candidate {
        subject: Subject::new(),
        value: if failing >= 1.0 { memory } else { dropped },
        summary,
        description: description.join(" "),
    }]
}

/// The last timeout finding of `service` of one of `kinds`, in words.
fn timeout_evidence(input: &EvalInput, service: &str, kinds: &[&str]) -> String {
    let Some(f) = input.findings.iter().rev().find(|f| {
        f.source == "timeout"
            && kinds.contains(&f.kind.as_str())
            && f.labels.get("service").map(String::as_str) == Some(service)
    }) else {
        return String::new();
    };
    let d = &f.detail;
    let first = d
        .get("findings")
        .and_then(|x| x.as_array())
        .and_then(|a| a.first())
        .unwrap_or(d);
    let field = |k: &str| {
        first.get(k).map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
    };
    let mut parts = Vec::new();
    for (k, label) in [
        ("tid", "thread"),
        ("syscall", "in"),
        ("timeout", "timeout"),
        ("blocked_seconds", "blocked s"),
        ("peer", "peer"),
    ] {
        if let Some(v) = field(k) {
            parts.push(format!("{label} {v}"));
        }
    }
    if parts.is_empty() {
        format!(" Latest finding: {}.", f.summary)
    } else {
        format!(" Latest finding: {}.", parts.join(", "))
    }
}

fn suspects(input: &EvalInput, kinds: &[&str], threshold: f64) -> Vec<(String, String, f64)> {
    input
        .series
        .latest_of(series::TIMEOUT_SUSPECTS)
        .into_iter()
        .filter_map(|(k, v)| {
            let kind = k.label("kind")?;
            let service = k.label("service")?;
            (kinds.contains(&kind) && v > threshold)
                .then(|| (service.to_string(), kind.to_string(), v))
        })
        .collect()
}

fn timeout_bug_suspected(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    suspects(input, &["missing_timeout", "too_small_timeout"], threshold)
        .into_iter()
        .map(|(svc, kind, n)| {
            let what = if kind == "missing_timeout" {
                "wait on another party with no timeout"
            } else {
                "keep hitting a too-short timeout and retrying without progress"
            };
            Candidate {
                subject: subject(&[("service", &svc), ("kind", &kind)]),
                value: n,
                summary: format!("{n} thread(s) of {svc} {what} ({kind})"),
                description: format!(
                    "The timeout detector classifies {n} thread(s) of {svc} as {kind}: they {what}. Such a thread hangs \
                     for as long as the other side does.{}",
                    timeout_evidence(input, &svc, &[&kind])
                ),
            }
        })
        .collect()
}

fn timeout_too_large(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    suspects(input, &["too_large_timeout"], threshold)
        .into_iter()
        .map(|(svc, kind, n)| Candidate {
            subject: subject(&[("service", &svc), ("kind", &kind)]),
            value: n,
            summary: format!("{n} thread(s) of {svc} wait on another party with a very long timeout"),
            description: format!(
                "The timeout detector sees {n} thread(s) of {svc} blocked on another party with a finite timeout above \
                 the configured maximum: when the peer dies they stay stuck that long.{}",
                timeout_evidence(input, &svc, &["too_large_timeout"])
            ),
        })
        .collect()
}

fn timeout_storm(input: &EvalInput, threshold: f64) -> Vec<Candidate> {
    let mut per_service: BTreeMap<String, f64> = BTreeMap::new();
    for (k, v) in input.series.latest_of(series::TIMEOUT_SUSPECTS) {
        if let Some(svc) = k.label("service") {
            *per_service.entry(svc.to_string()).or_default() += v;
        }
    }
    per_service
        .into_iter()
        .filter(|(_, n)| *n >= threshold)
        .map(|(svc, n)| Candidate {
            subject: subject(&[("service", &svc)]),
            value: n,
            summary: format!("{n} threads of {svc} are stuck on timeouts at once"),
            description: format!(
                "{n} threads of {svc} are classified as timeout suspects (missing, too large or too small timeouts) at \
                 the same time: a dependency is probably down or hanging and {svc} is piling up blocked work.{}",
                timeout_evidence(
                    input,
                    &svc,
                    &["missing_timeout", "too_large_timeout", "too_small_timeout"]
                )
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f32, v: f32) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn increase_counts_growth_and_resets() {
        let samples = [s(0.0, 5.0), s(100.0, 7.0), s(200.0, 2.0), s(300.0, 4.0)];
        // Window (50, 300]: baseline 5, then +2, reset to 2 (+2), +2.
        assert_eq!(increase_of(&samples, 300.0, 250.0, false), 6.0);
        // Nothing in the window.
        assert_eq!(increase_of(&samples, 1000.0, 100.0, false), 0.0);
        // Young series born inside the window counts from zero; a full ring from its oldest.
        assert_eq!(increase_of(&samples[1..], 300.0, 1000.0, false), 11.0);
        assert_eq!(increase_of(&samples[1..], 300.0, 1000.0, true), 4.0);
    }

    #[test]
    fn linear_fit_finds_slope_and_quality() {
        let samples: Vec<_> = (0..10)
            .map(|i| s(i as f32 * 60.0, 100.0 + i as f32 * 6.0))
            .collect();
        let (slope, at_end, r2) = linear_fit(&samples, 540.0).unwrap();
        assert!((slope - 0.1).abs() < 1e-6, "{slope}");
        assert!((at_end - 154.0).abs() < 1e-3, "{at_end}");
        assert!(r2 > 0.999);
        let flat: Vec<_> = (0..10).map(|i| s(i as f32, 50.0)).collect();
        assert_eq!(linear_fit(&flat, 9.0).unwrap().0, 0.0);
    }
}
