//! `lookout diagnose PID`: sample one process for a few seconds, classify it with the same
//! detector the daemon runs, and report — as text for a person woken at 3 a.m., or as the
//! CONTRACT JSON object.

use super::sampler::{ProcessSampler, SampleError, now};
use lookout_detectors::timeout::{
    DetectorConfig, ProcessDetector, Suspect, Timeout, Verdict, Wait, blocked_counts,
    declared_deadline, format_seconds,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What to diagnose and how.
#[derive(Clone, Debug)]
pub struct DiagnoseOptions {
    pub pid: i32,
    /// How long to watch.
    pub seconds: f64,
    /// Samples per second.
    pub hz: f64,
    /// Seconds the other party must have been silent for a wait with no timeout to be a
    /// missing timeout.
    pub quiet_period: f64,
    pub max_timeout: f64,
}

/// The outcome of one diagnosis.
#[derive(Clone, Debug)]
pub struct Report {
    pub pid: i32,
    pub process: String,
    pub verdict: Verdict,
    pub findings: Vec<Suspect>,
    pub threads: usize,
    /// Threads in a timeout-related call at the last sample, by (call, infinite timeout).
    pub blocked: BTreeMap<(String, bool), u64>,
    /// Every thread's wait at the last sample, with the detector's reading of it.
    pub waits: Vec<Wait>,
    pub samples: usize,
    pub sampled_seconds: f64,
    pub quiet_period: f64,
    pub max_timeout: f64,
    /// The process exited while it was watched: the verdict covers what was seen until then.
    pub exited: bool,
}

/// Watch the process for `seconds` and classify it. A process that exits while watched ends
/// the watch early: the report covers what was seen until then (`exited`).
pub fn diagnose(opts: &DiagnoseOptions) -> Result<Report, SampleError> {
    let mut sampler = ProcessSampler::new(opts.pid)?;
    let mut detector = ProcessDetector::new(DetectorConfig {
        quiet_period: opts.quiet_period,
        max_timeout: opts.max_timeout,
        ..DetectorConfig::default()
    });
    // Read now: once the process is gone there is no command line to read.
    detector.set_declared(declared_deadline(&sampler.command_line()));
    let mut process = sampler.process_name();
    let start = now();
    let period = 1.0 / opts.hz.clamp(0.5, 200.0);
    let mut samples = 0usize;
    let mut last = None;
    let mut exited = false;
    loop {
        let tick = now();
        match sampler.sample() {
            Ok(sample) => {
                detector.observe(&sample);
                samples += 1;
                last = Some(sample);
            }
            Err(SampleError::NoProcess(_)) if samples > 0 => {
                exited = true;
                break;
            }
            Err(e) => return Err(e),
        }
        let elapsed = now() - start;
        if elapsed + period > opts.seconds {
            break;
        }
        let next = tick + period - now();
        if next > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(next));
        }
    }
    let last = last.unwrap_or_default();
    // Names as of now: a process that exec'd while watched (a wrapper script) has a new one.
    if !exited {
        let name = sampler.process_name();
        if !name.is_empty() {
            process = name;
        }
        detector.set_declared(declared_deadline(&sampler.command_line()));
    }
    // A process that is gone waits on nobody: no suspects, only what was seen.
    let mut findings = if exited {
        Vec::new()
    } else {
        detector.suspects()
    };
    let mut waits = if exited {
        Vec::new()
    } else {
        detector.explain(&last)
    };
    for f in &mut findings {
        if let Some(name) = sampler.thread_name(f.tid) {
            f.comm = name;
        }
    }
    for w in &mut waits {
        if let Some(f) = findings.iter().find(|f| f.tid == w.tid) {
            w.comm = f.comm.clone();
        }
    }
    Ok(Report {
        pid: opts.pid,
        process,
        verdict: ProcessDetector::verdict_of(&findings),
        threads: last.threads.len(),
        blocked: if exited {
            BTreeMap::new()
        } else {
            blocked_counts(&last)
        },
        findings,
        waits,
        samples,
        sampled_seconds: now() - start,
        quiet_period: opts.quiet_period,
        max_timeout: opts.max_timeout,
        exited,
    })
}

/// Waits that read the same (same call, timeout, parties and reading), with their threads:
/// a JVM's dozens of parked workers are one line.
pub struct WaitGroup<'a> {
    pub wait: &'a Wait,
    pub tids: Vec<i32>,
    pub comms: Vec<String>,
    /// The range of finite timeouts of the group (a pool's timed waits differ a little).
    pub finite: Option<(f64, f64)>,
}

impl WaitGroup<'_> {
    pub fn timeout_text(&self) -> String {
        match self.finite {
            Some((lo, hi)) if hi > lo => {
                format!("{}-{} s", format_seconds(lo), format_seconds(hi))
            }
            Some((lo, _)) => format!("{} s", format_seconds(lo)),
            None if self.wait.timeout == Timeout::Unknown => "timeout unknown".into(),
            None => "no timeout".into(),
        }
    }
}

pub fn group_waits(waits: &[Wait]) -> Vec<WaitGroup<'_>> {
    let mut groups: Vec<WaitGroup> = Vec::new();
    for w in waits {
        let same = groups.iter_mut().find(|g| {
            g.wait.verdict == Verdict::Ok
                && w.verdict == Verdict::Ok
                && g.wait.syscall == w.syscall
                && g.wait.timeout.is_finite() == w.timeout.is_finite()
                && g.wait.on == w.on
                && g.wait.note == w.note
        });
        let t = match w.timeout {
            Timeout::Finite(t) => Some(t),
            _ => None,
        };
        match same {
            Some(g) => {
                if let (Some((lo, hi)), Some(t)) = (&mut g.finite, t) {
                    *lo = lo.min(t);
                    *hi = hi.max(t);
                }
                g.tids.push(w.tid);
                if !g.comms.contains(&w.comm) && g.comms.len() < 4 {
                    g.comms.push(w.comm.clone());
                }
            }
            None => groups.push(WaitGroup {
                wait: w,
                tids: vec![w.tid],
                comms: vec![w.comm.clone()],
                finite: t.map(|t| (t, t)),
            }),
        }
    }
    // Suspects first, then the largest groups.
    groups.sort_by(|a, b| {
        b.wait
            .verdict
            .cmp(&a.wait.verdict)
            .then(b.tids.len().cmp(&a.tids.len()))
    });
    groups
}

/// One finding as the CONTRACT JSON object (also the `detail` of the daemon's findings).
pub fn finding_json(s: &Suspect) -> serde_json::Value {
    json!({
        "kind": s.verdict.as_str(),
        "tid": s.tid,
        "syscall": s.syscall,
        "timeout": s.timeout.contract_text(),
        "blocked_seconds": (s.blocked_seconds * 10.0).round() / 10.0,
        "peer": s.peer,
        "detail": format!("{}; {}", s.detail, s.advice),
        "confidence": s.confidence.as_str(),
        "evidence": {
            "syscall": s.syscall,
            "timeout": s.timeout.contract_text(),
            "timeout_source": s.evidence.timeout_source.as_str(),
            "peer": s.peer,
            "bytes_in_flight": s.evidence.bytes_in_flight,
            "silent_seconds": s.evidence.silent_seconds,
            "peer_side": s.evidence.peer_side.describe(),
            "attempts": s.attempts,
        },
    })
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "pid": self.pid,
            "process": self.process,
            "verdict": self.verdict.as_str(),
            "findings": self.findings.iter().map(finding_json).collect::<Vec<_>>(),
            "waits": group_waits(&self.waits).iter().map(|g| json!({
                "tids": g.tids,
                "comm": g.comms,
                "syscall": g.wait.syscall,
                "timeout": g.timeout_text(),
                "on": g.wait.on,
                "verdict": g.wait.verdict.as_str(),
                "note": g.wait.note,
            })).collect::<Vec<_>>(),
            "exited": self.exited,
        })
    }

    /// The report for a person.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "lookout diagnose: pid {} ({}), {} threads, watched {:.1} s ({} samples)",
            self.pid, self.process, self.threads, self.sampled_seconds, self.samples
        );
        let headline = match self.verdict {
            Verdict::Ok => "no thread is stuck waiting on another party".to_string(),
            Verdict::MissingTimeout => {
                "a thread is stuck waiting on another party with NO timeout".to_string()
            }
            Verdict::TooLargeTimeout => {
                "a thread is stuck on another party behind a very large timeout".to_string()
            }
            Verdict::TooSmallTimeout => {
                "a thread keeps retrying with a timeout too short to ever succeed".to_string()
            }
        };
        let _ = writeln!(o, "VERDICT: {} — {headline}", self.verdict);
        for (i, s) in self.findings.iter().enumerate() {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "[{}] {}  thread {} ({})",
                i + 1,
                s.verdict,
                s.tid,
                s.comm
            );
            let timeout = match s.timeout {
                Timeout::Finite(t) => format!("{} s", format_seconds(t)),
                _ => "none (waits forever)".into(),
            };
            let _ = writeln!(o, "    call:        {}", s.syscall);
            let _ = writeln!(o, "    timeout:     {timeout}");
            let _ = writeln!(o, "    stuck for:   {}", human_duration(s.blocked_seconds));
            let _ = writeln!(o, "    waiting on:  {}", s.peer);
            let _ = writeln!(
                o,
                "    evidence:    {} confidence; timeout from the {}; peer silent {} s{}{}",
                s.confidence.as_str(),
                s.evidence.timeout_source.as_str(),
                format_seconds(s.evidence.silent_seconds),
                s.evidence
                    .bytes_in_flight
                    .filter(|b| *b > 0)
                    .map(|b| format!("; {b} bytes sent and not taken"))
                    .unwrap_or_default(),
                s.evidence
                    .peer_side
                    .describe()
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            );
            if s.attempts > 1 {
                let _ = writeln!(o, "    attempts:    {}", s.attempts);
            }
            let _ = writeln!(o, "    why:         {}", s.detail);
            let _ = writeln!(o, "    what to do:  {}", s.advice);
        }
        if self.exited {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "the process exited while watched ({} samples): nothing waits any more",
                self.samples
            );
        }
        if !self.waits.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(o, "every thread's wait at the last sample:");
            for g in group_waits(&self.waits) {
                let w = g.wait;
                let who = if g.tids.len() == 1 {
                    format!("thread {} ({})", g.tids[0], g.comms.join(", "))
                } else {
                    format!("{} threads ({})", g.tids.len(), g.comms.join(", "))
                };
                let timeout = g.timeout_text();
                let _ = writeln!(
                    o,
                    "  {:<7} {who}: {} ({timeout}) on {} — {}",
                    if w.verdict == Verdict::Ok {
                        "ok".to_string()
                    } else {
                        w.verdict.to_string()
                    },
                    w.syscall,
                    w.on,
                    w.note
                );
            }
        }
        if !self.blocked.is_empty() {
            let parts: Vec<String> = self
                .blocked
                .iter()
                .map(|((call, inf), n)| {
                    format!(
                        "{n} in {call} ({})",
                        if *inf { "no timeout" } else { "timed" }
                    )
                })
                .collect();
            let _ = writeln!(o);
            let _ = writeln!(o, "blocked threads now: {}", parts.join(", "));
        }
        let _ = writeln!(
            o,
            "thresholds: a wait with no timeout on a party silent {} s is missing one, timeouts above {} s are too large (--quiet-period, --max-timeout)",
            format_seconds(self.quiet_period),
            format_seconds(self.max_timeout)
        );
        o
    }
}

fn human_duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}
