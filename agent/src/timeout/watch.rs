//! The daemon side: samples every configured `[[service]]` at `sample_hz` (1 Hz while none of
//! its threads waits on another party), keeps one online detector (with its baseline) per
//! process instance, and writes `lookout_blocked_threads`, `lookout_timeout_suspects` and
//! `timeout` findings. Missing rights are warned about once per service and counted; the
//! component never stops the daemon.

use super::diagnose::finding_json;
use super::sampler::{ProcessSampler, SampleError};
use crate::config::{ProcessMatch, TimeoutConfig};
use crate::context::{Context, Finding};
use crate::series::Gauge;
use lookout_detectors::timeout::{
    DetectorConfig, ProcessDetector, ThreadState, Verdict, blocked_counts, declared_deadline,
    waits_on_other_party,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often the pid of each service is looked up again (a full /proc scan).
const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// The sampling period while nothing waits on another party. A wait that starts is seen
/// within it and then sampled at `sample_hz`; its evidence (the peer's silence) comes from the
/// connection's own counters, so a late first look costs no time toward the verdict.
/// Sampling idle services every second instead cost the bench (10 services, ~85 threads)
/// 0.1 % of a core more.
const IDLE_PERIOD: Duration = Duration::from_secs(2);

/// One watched service.
struct Watched {
    name: String,
    matcher: ProcessMatch,
    /// The sampler and detector of the current process instance.
    instance: Option<(ProcessSampler, ProcessDetector)>,
    denied_warned: bool,
    /// The "out of file descriptors" finding is out for the current shortage.
    fds_warned: bool,
    retry_at: Option<Instant>,
    blocked_keys: BTreeSet<(String, bool)>,
    reported: BTreeSet<(i32, Verdict)>,
}

struct Metrics {
    blocked: Gauge,
    suspects: Gauge,
    unsampled: Gauge,
    errors: Counter<u64>,
}

/// Start the sampler thread for `services`; it stops when `ctx.shutdown` is cancelled.
pub fn start(
    ctx: &Context,
    cfg: &TimeoutConfig,
    services: Vec<(String, ProcessMatch)>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    if !cfg.enabled || services.is_empty() {
        return;
    }
    let ctx = ctx.child();
    let cfg = cfg.clone();
    tasks.spawn(async move {
        let token = ctx.shutdown.clone();
        let job = tokio::task::spawn_blocking(move || run(ctx, cfg, services));
        if job.await.is_err() {
            token.cancel();
            tracing::error!("timeout detector stopped unexpectedly");
        }
    });
}

fn run(ctx: Context, cfg: TimeoutConfig, services: Vec<(String, ProcessMatch)>) {
    let metrics = Metrics {
        blocked: ctx.series.gauge(
            &ctx.meter,
            super::names::BLOCKED_THREADS,
            "Threads of a watched service blocked in a timeout-related call",
            "{thread}",
        ),
        suspects: ctx.series.gauge(
            &ctx.meter,
            super::names::SUSPECTS,
            "Threads of a watched service currently classified as a timeout bug, by kind",
            "{thread}",
        ),
        unsampled: ctx.series.gauge(
            &ctx.meter,
            super::names::UNSAMPLED_THREADS,
            "Threads of a watched service the timeout detector cannot sample (no file descriptor left)",
            "{thread}",
        ),
        errors: ctx
            .meter
            .u64_counter(super::names::SAMPLE_ERRORS)
            .with_description("Samples the timeout detector could not take, by reason")
            .build(),
    };
    let fast = Duration::from_secs_f64(1.0 / f64::from(cfg.sample_hz.max(1)));
    let detector_cfg = DetectorConfig {
        quiet_period: cfg.quiet_period.get().as_secs_f64(),
        max_timeout: cfg.max_timeout.get().as_secs_f64(),
        ..DetectorConfig::default()
    };
    let mut watched: Vec<Watched> = services
        .into_iter()
        .map(|(name, matcher)| Watched {
            name,
            matcher,
            instance: None,
            denied_warned: false,
            fds_warned: false,
            retry_at: None,
            blocked_keys: BTreeSet::new(),
            reported: BTreeSet::new(),
        })
        .collect();
    tracing::info!(
        services = watched.len(),
        sample_hz = cfg.sample_hz,
        "timeout detector started"
    );
    let mut last_resolve: Option<Instant> = None;
    while !ctx.shutdown.is_cancelled() {
        let tick = Instant::now();
        if last_resolve.is_none_or(|t| t.elapsed() >= RESOLVE_EVERY) {
            for w in &mut watched {
                resolve(w, &metrics, &detector_cfg);
            }
            last_resolve = Some(tick);
        }
        let mut busy = false;
        for w in &mut watched {
            busy |= tick_service(&ctx, w, &metrics);
        }
        let period = if busy { fast } else { IDLE_PERIOD.max(fast) };
        // Sleep in short steps so a shutdown is seen quickly.
        while !ctx.shutdown.is_cancelled() {
            let left = period.saturating_sub(tick.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
    }
    for w in &watched {
        metrics.blocked.remove_where("service", &w.name);
        metrics.suspects.remove_where("service", &w.name);
        metrics.unsampled.remove_where("service", &w.name);
    }
}

/// Find the service's process; a new pid starts a fresh sampler, detector and baseline.
fn resolve(w: &mut Watched, m: &Metrics, detector_cfg: &DetectorConfig) {
    let pid = crate::probes::matcher::find(&w.matcher);
    let current = w.instance.as_ref().map(|(s, _)| s.pid());
    if pid == current {
        return;
    }
    if let Some(retry) = w.retry_at
        && Instant::now() < retry
        && pid.is_some()
    {
        return;
    }
    w.instance = None;
    let Some(pid) = pid else {
        clear(w, m);
        return;
    };
    match ProcessSampler::new(pid) {
        Ok(s) => {
            let mut detector = ProcessDetector::new(detector_cfg.clone());
            detector.set_declared(declared_deadline(&s.command_line()));
            w.instance = Some((s, detector));
            w.retry_at = None;
        }
        Err(e) => failed(w, m, &e),
    }
}

fn failed(w: &mut Watched, m: &Metrics, e: &SampleError) {
    let reason = match e {
        SampleError::PermissionDenied(_) => "permission",
        SampleError::NoProcess(_) => "gone",
        SampleError::Io(..) => "io",
    };
    m.errors.add(
        1,
        &[
            KeyValue::new("service", w.name.clone()),
            KeyValue::new("reason", reason),
        ],
    );
    if matches!(e, SampleError::PermissionDenied(_)) {
        if !w.denied_warned {
            tracing::warn!(service = %w.name, "timeout detector: {e}");
            w.denied_warned = true;
        }
        // Rights do not come back by themselves; look again now and then.
        w.retry_at = Some(Instant::now() + Duration::from_secs(60));
    }
    w.instance = None;
    clear(w, m);
    if matches!(e, SampleError::PermissionDenied(_)) {
        // Unknown is not zero: export no suspects rather than a reassuring 0.
        m.suspects.remove_where("service", &w.name);
    }
}

fn clear(w: &mut Watched, m: &Metrics) {
    m.blocked.remove_where("service", &w.name);
    w.blocked_keys.clear();
    w.reported.clear();
    for kind in Verdict::SUSPECT_KINDS {
        m.suspects
            .set(&[("service", &w.name), ("kind", kind.as_str())], 0.0);
    }
}

/// Sample one service once; true when one of its threads waits on another party (sample fast).
fn tick_service(ctx: &Context, w: &mut Watched, m: &Metrics) -> bool {
    let Some((sampler, detector)) = w.instance.as_mut() else {
        return false;
    };
    let sample = match sampler.sample() {
        Ok(s) => s,
        Err(e) => {
            failed(w, m, &e);
            return false;
        }
    };
    detector.observe(&sample);
    let unsampled = sampler.unsampled();
    m.unsampled.set(&[("service", &w.name)], unsampled as f64);
    if unsampled > 0 && !w.fds_warned {
        let summary = format!(
            "{unsampled} threads of {} are not sampled: the agent ran out of file descriptors (RLIMIT_NOFILE)",
            w.name
        );
        tracing::warn!(service = %w.name, "{summary}");
        ctx.findings
            .push(Finding::new("timeout", "sampler_degraded", summary).label("service", &w.name));
    }
    w.fds_warned = unsampled > 0;
    let mut suspects = detector.suspects();
    for s in &mut suspects {
        if let Some(name) = sampler.thread_name(s.tid) {
            s.comm = name;
        }
    }
    let busy = sample.threads.iter().any(|t| match &t.state {
        ThreadState::Blocked(call) => waits_on_other_party(call).is_some(),
        _ => false,
    });

    let counts = blocked_counts(&sample);
    for key in w.blocked_keys.difference(&counts.keys().cloned().collect()) {
        m.blocked.remove(&blocked_labels(&w.name, key));
    }
    for (key, n) in &counts {
        m.blocked.set(&blocked_labels(&w.name, key), *n as f64);
    }
    w.blocked_keys = counts.keys().cloned().collect();

    for kind in Verdict::SUSPECT_KINDS {
        let n = suspects.iter().filter(|s| s.verdict == kind).count();
        m.suspects
            .set(&[("service", &w.name), ("kind", kind.as_str())], n as f64);
    }

    let now: BTreeSet<(i32, Verdict)> = suspects.iter().map(|s| (s.tid, s.verdict)).collect();
    for s in &suspects {
        if w.reported.contains(&(s.tid, s.verdict)) {
            continue;
        }
        let summary = format!(
            "{}: thread {} ({}) of {} in {} on {} for {:.0} s",
            s.verdict, s.tid, s.comm, w.name, s.syscall, s.peer, s.blocked_seconds
        );
        tracing::warn!(service = %w.name, "{summary}");
        ctx.findings.push(
            Finding::new("timeout", s.verdict.as_str(), summary)
                .label("service", &w.name)
                .detail(finding_json(s)),
        );
    }
    w.reported = now;
    busy
}

fn blocked_labels<'a>(service: &'a str, key: &'a (String, bool)) -> [(&'a str, &'a str); 3] {
    [
        ("service", service),
        ("syscall", key.0.as_str()),
        ("timeout", if key.1 { "infinite" } else { "finite" }),
    ]
}
