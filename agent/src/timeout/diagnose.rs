//! `lookout diagnose PID`: sample one process for a few seconds, classify it with the same
//! detector the daemon runs, and report — as text for a person woken at 3 a.m., or as the
//! CONTRACT JSON object.

use super::sampler::{ProcessSampler, SampleError, now};
use lookout_detectors::timeout::{
    DetectorConfig, ProcessDetector, Suspect, Timeout, Verdict, blocked_counts, declared_deadline,
    format_seconds,
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
    pub hang_threshold: f64,
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
    pub samples: usize,
    pub sampled_seconds: f64,
    pub hang_threshold: f64,
    pub max_timeout: f64,
}

/// Watch the process for `seconds` and classify it.
pub fn diagnose(opts: &DiagnoseOptions) -> Result<Report, SampleError> {
    let mut sampler = ProcessSampler::new(opts.pid)?;
    let mut detector = ProcessDetector::new(DetectorConfig {
        hang_threshold: opts.hang_threshold,
        max_timeout: opts.max_timeout,
        ..DetectorConfig::default()
    });
    let start = now();
    let period = 1.0 / opts.hz.clamp(0.5, 200.0);
    let mut samples = 0usize;
    let last = loop {
        let tick = now();
        let sample = sampler.sample()?;
        detector.observe(&sample);
        samples += 1;
        let elapsed = now() - start;
        if elapsed + period > opts.seconds {
            break sample;
        }
        let next = tick + period - now();
        if next > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(next));
        }
    };
    // Names as of now: a process that exec'd while watched (a wrapper script) has a new one.
    let process = sampler.process_name();
    detector.set_declared(declared_deadline(&sampler.command_line()));
    let mut findings = detector.suspects();
    for f in &mut findings {
        if let Some(name) = sampler.thread_name(f.tid) {
            f.comm = name;
        }
    }
    Ok(Report {
        pid: opts.pid,
        process,
        verdict: ProcessDetector::verdict_of(&findings),
        threads: last.threads.len(),
        blocked: blocked_counts(&last),
        findings,
        samples,
        sampled_seconds: now() - start,
        hang_threshold: opts.hang_threshold,
        max_timeout: opts.max_timeout,
    })
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
    })
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "pid": self.pid,
            "process": self.process,
            "verdict": self.verdict.as_str(),
            "findings": self.findings.iter().map(finding_json).collect::<Vec<_>>(),
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
            if s.attempts > 1 {
                let _ = writeln!(o, "    attempts:    {}", s.attempts);
            }
            let _ = writeln!(o, "    why:         {}", s.detail);
            let _ = writeln!(o, "    what to do:  {}", s.advice);
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
            "thresholds: hang after {} s, timeouts above {} s are too large (--hang-threshold, --max-timeout)",
            format_seconds(self.hang_threshold),
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
