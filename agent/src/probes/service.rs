//! The watcher of one `[[service]]`: finds its process, reports threads against their limits,
//! CPU, memory and fds, notices restarts, and measures cold start — process start to the first
//! successful readiness probe — while it happens.
//!
//! Cold start is only observed for an instance the watcher saw before it was ready; a service
//! already up when the agent starts has no cold start to report (its age is not one).

use super::procinfo::{ProcSnapshot, start_ticks_in};
use super::ready::ReadyChecker;
use super::root::ProcRoot;
use super::{ProbeMetrics, matcher};
use crate::config::ServiceConfig;
use std::time::{Duration, Instant};

/// How often an initializing service is probed: the resolution of cold-start times.
const INIT_PROBE_PERIOD: Duration = Duration::from_millis(100);

struct Instance {
    pid: i32,
    start_ticks: u64,
    ready: bool,
    /// We saw it before it was ready, so its cold start is ours to measure.
    observe_cold_start: bool,
    last_cpu: Option<(u64, Instant)>,
}

pub struct ServiceWatcher {
    root: ProcRoot,
    cfg: ServiceConfig,
    metrics: ProbeMetrics,
    ready: Option<ReadyChecker>,
    interval: Duration,
    started: Instant,
    instance: Option<Instance>,
    ever_seen: bool,
}

impl ServiceWatcher {
    /// The service's processes under `/proc`.
    pub fn new(cfg: ServiceConfig, metrics: ProbeMetrics, interval: Duration) -> Self {
        Self::with_root(cfg, metrics, interval, ProcRoot::default())
    }

    pub fn with_root(
        cfg: ServiceConfig,
        metrics: ProbeMetrics,
        interval: Duration,
        root: ProcRoot,
    ) -> Self {
        let ready = cfg
            .ready
            .clone()
            .map(|p| ReadyChecker::new(p, Duration::from_secs(1)));
        Self {
            root,
            cfg,
            metrics,
            ready,
            interval,
            started: Instant::now(),
            instance: None,
            ever_seen: false,
        }
    }

    pub async fn run(
        mut self,
        shutdown: tokio_util::sync::CancellationToken,
        first_cycle: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut first_cycle = Some(first_cycle);
        loop {
            let next = self.tick().await;
            if let Some(tx) = first_cycle.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(next) => {}
            }
        }
        self.metrics.forget_service(&self.cfg.name);
    }

    /// One look; returns how long to wait before the next.
    pub async fn tick(&mut self) -> Duration {
        let name = self.cfg.name.clone();
        let alive = self
            .instance
            .as_ref()
            .is_some_and(|i| matcher::still_running(&self.root, i.pid, i.start_ticks));
        if !alive {
            let previous = self.instance.take();
            if let Some(pid) = matcher::find_in(&self.root, &self.cfg.matcher)
                && let Some(ticks) = start_ticks_in(&self.root, pid)
            {
                if previous.is_some() || self.ever_seen {
                    self.metrics
                        .restarts
                        .add(1, &[opentelemetry::KeyValue::new("service", name.clone())]);
                    tracing::info!(service = %name, pid, "service instance changed (restart)");
                } else {
                    tracing::info!(service = %name, pid, "service found");
                }
                self.ever_seen = true;
                self.instance = Some(Instance {
                    pid,
                    start_ticks: ticks,
                    ready: self.ready.is_none(),
                    observe_cold_start: false,
                    last_cpu: None,
                });
                if let Some(snap) = ProcSnapshot::read_in(&self.root, pid) {
                    // Started after we began watching: we are seeing its start.
                    let inst = self.instance.as_mut().expect("just set");
                    inst.observe_cold_start =
                        snap.age() < self.started.elapsed() + Duration::from_millis(50);
                }
            } else if previous.is_some() {
                tracing::warn!(service = %name, "service process is gone");
            }
        }

        let Some(inst) = self.instance.as_mut() else {
            self.metrics.service_absent(&name);
            return self.interval;
        };
        let Some(main) = ProcSnapshot::read_in(&self.root, inst.pid) else {
            self.instance = None;
            self.metrics.service_absent(&name);
            return Duration::from_millis(10);
        };
        // The whole service: its other processes summed into the main one's snapshot.
        let mut snap = main.clone();
        let all = self.cfg.processes == crate::config::ServiceProcesses::All;
        let mut processes = 1;
        for pid in matcher::members(&self.root, inst.pid, &self.cfg.matcher, all) {
            if pid == inst.pid {
                continue;
            }
            if let Some(other) = ProcSnapshot::read_in(&self.root, pid) {
                snap.absorb(&other);
                processes += 1;
            }
        }
        let user_tasks = main.uid.map(|uid| matcher::user_tasks(&self.root, uid));
        let pids = super::cgroup::pids_limit(&self.root, inst.pid);

        if !inst.ready
            && let Some(checker) = &self.ready
        {
            if checker.is_ready().await {
                inst.ready = true;
                let took = snap.age().as_secs_f64();
                if inst.observe_cold_start {
                    self.metrics.observe_cold_start(&name, took);
                    tracing::info!(service = %name, pid = inst.pid, seconds = took, "service ready (cold start)");
                } else {
                    tracing::info!(service = %name, pid = inst.pid, "service ready");
                }
            } else {
                inst.observe_cold_start = true;
            }
        }

        let cpu = match inst.last_cpu {
            Some((ticks, at)) if snap.cpu_ticks >= ticks => {
                let secs = at.elapsed().as_secs_f64();
                (secs > 0.0).then(|| {
                    (snap.cpu_ticks - ticks) as f64 / procfs::ticks_per_second() as f64 / secs
                })
            }
            _ => None,
        };
        inst.last_cpu = Some((snap.cpu_ticks, Instant::now()));
        let initializing = if inst.ready {
            0.0
        } else {
            snap.age().as_secs_f64()
        };
        self.metrics.record_process(
            &name,
            &snap,
            cpu,
            self.cfg.expected_max_threads,
            Some(initializing),
        );
        self.metrics
            .record_limits(&name, processes, user_tasks, pids);
        if inst.ready {
            self.interval
        } else {
            INIT_PROBE_PERIOD.min(self.interval)
        }
    }
}
