//! Probes: what the agent reads from /proc and /sys every interval — the host, each watched
//! service, and the agent itself — written as gauges into the series store.
//!
//! Every file is read through a [`root::ProcRoot`] (`/proc` and `/sys` by default) and parsed
//! by the pure functions of [`parse`], which the tests run on the real files copied into
//! `tests/fixtures/proc`. One collector per file: `host/` (load, limits, cpu, memory,
//! network, disk, the agent), `procinfo` (one process), `cgroup` (its pids limit),
//! `matcher` (the process table), `service` (a watched service), `ready` (its readiness).

pub mod cgroup;
pub mod host;
pub mod matcher;
pub mod names;
pub mod parse;
pub mod procinfo;
pub mod ready;
pub mod root;
pub mod service;

use crate::context::Context;
use crate::series::Gauge;
use crate::telemetry::STARTUP_BUCKETS;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use procinfo::ProcSnapshot;

/// The instruments the probes write.
#[derive(Clone)]
pub struct ProbeMetrics {
    pub threads: Gauge,
    pub thread_limit: Gauge,
    pub thread_limit_usage: Gauge,
    pub processes: Gauge,
    pub cpu_time: Gauge,
    pub cpu: Gauge,
    pub rss: Gauge,
    pub fds: Gauge,
    pub start_time: Gauge,
    pub up: Gauge,
    pub initializing: Gauge,
    pub last_cold_start: Gauge,
    pub cold_start: Histogram<f64>,
    pub restarts: Counter<u64>,
}

impl ProbeMetrics {
    pub fn new(ctx: &Context) -> Self {
        let s = &ctx.series;
        let m = &ctx.meter;
        Self {
            threads: s.gauge(m, names::THREAD_COUNT, "Threads of a watched service", "{thread}"),
            thread_limit: s.gauge(
                m,
                names::THREAD_LIMIT,
                "Thread limits of a watched service: the configured expected maximum, RLIMIT_NPROC (every task of the user), the cgroup's pids.max (systemd TasksMax)",
                "{thread}",
            ),
            thread_limit_usage: s.gauge(
                m,
                names::THREAD_LIMIT_USAGE,
                "What counts against each limit of lookout_service_thread_limit: the user's tasks (rlimit_nproc), the cgroup's pids.current (cgroup_pids)",
                "{thread}",
            ),
            cpu_time: s.counter(
                m,
                names::CPU_TIME_TOTAL,
                "CPU time (user + system) of a watched service, all its processes; drops when one of them exits",
                "s",
            ),
            processes: s.gauge(
                m,
                names::PROCESSES,
                "Processes of a watched service now (every matching process and its descendants)",
                "{process}",
            ),
            cpu: s.gauge(
                m,
                names::CPU_UTILIZATION,
                "CPU of a watched service, 0..1: CPU time per second over the CPUs available to the agent",
                "1",
            ),
            rss: s.gauge(m, names::RESIDENT_MEMORY, "Resident memory of a watched service", "By"),
            fds: s.gauge(m, names::OPEN_FDS, "Open file descriptors of a watched service", "{fd}"),
            start_time: s.gauge(
                m,
                names::START_TIME,
                "Start time of the current instance of a watched service, Unix seconds",
                "s",
            ),
            up: s.gauge(m, names::SERVICE_UP, "1 while the watched service's process runs, 0 while it is absent", ""),
            initializing: s.gauge(
                m,
                names::INITIALIZING,
                "How long the current instance has been starting and not yet ready; 0 when ready",
                "s",
            ),
            last_cold_start: s.gauge(
                m,
                names::LAST_COLD_START,
                "The last observed cold start of a watched service (process start to first ready probe)",
                "s",
            ),
            cold_start: m
                .f64_histogram(names::COLD_START)
                .with_description("Cold start of a watched service: process start to its first successful readiness probe")
                .with_unit("s")
                .with_boundaries(STARTUP_BUCKETS.to_vec())
                .build(),
            restarts: m
                .u64_counter(names::RESTARTS)
                .with_description("New instances (PIDs) of a watched service seen after the first")
                .build(),
        }
    }

    pub fn record_process(
        &self,
        service: &str,
        snap: &ProcSnapshot,
        cpu_cores: Option<f64>,
        expected_max_threads: Option<u64>,
        initializing: Option<f64>,
    ) {
        let l = [("service", service)];
        self.up.set(&l, 1.0);
        self.threads.set(&l, snap.threads as f64);
        if let Some(expected) = expected_max_threads {
            self.thread_limit.set(
                &[("service", service), ("kind", "expected")],
                expected as f64,
            );
        }
        match snap.rlimit_nproc {
            Some(v) => self
                .thread_limit
                .set(&[("service", service), ("kind", "rlimit_nproc")], v as f64),
            None => self
                .thread_limit
                .remove(&[("service", service), ("kind", "rlimit_nproc")]),
        }
        if let Some(cpu) = cpu_cores {
            // OpenTelemetry's process.cpu.utilization: divided by the CPUs available.
            self.cpu.set(&l, cpu / available_cpus());
        }
        self.cpu_time.set(
            &l,
            snap.cpu_ticks as f64 / procfs::ticks_per_second() as f64,
        );
        self.rss.set(&l, snap.rss_bytes as f64);
        match snap.open_fds {
            Some(n) => self.fds.set(&l, n as f64),
            None => self.fds.remove(&l),
        }
        self.start_time.set(&l, snap.start_unix_secs().round());
        if let Some(init) = initializing {
            self.initializing.set(&l, init);
        }
    }

    /// The limits that count more than the service's own threads: the user's tasks against
    /// RLIMIT_NPROC and the cgroup's tasks against its pids.max, and how many processes the
    /// service has.
    pub fn record_limits(
        &self,
        service: &str,
        processes: usize,
        user_tasks: Option<u64>,
        pids: Option<cgroup::PidsLimit>,
    ) {
        self.processes
            .set(&[("service", service)], processes as f64);
        let nproc = [("service", service), ("kind", "rlimit_nproc")];
        match user_tasks {
            Some(n) => self.thread_limit_usage.set(&nproc, n as f64),
            None => self.thread_limit_usage.remove(&nproc),
        }
        let cg = [("service", service), ("kind", "cgroup_pids")];
        match pids {
            Some(p) => {
                self.thread_limit.set(&cg, p.max as f64);
                self.thread_limit_usage.set(&cg, p.current as f64);
            }
            None => {
                self.thread_limit.remove(&cg);
                self.thread_limit_usage.remove(&cg);
            }
        }
    }

    pub fn observe_cold_start(&self, service: &str, seconds: f64) {
        self.cold_start
            .record(seconds, &[KeyValue::new("service", service.to_string())]);
        self.last_cold_start.set(&[("service", service)], seconds);
    }

    /// The service's process is not running: say so, and drop its per-process values rather
    /// than leave the last ones standing.
    pub fn service_absent(&self, service: &str) {
        self.up.set(&[("service", service)], 0.0);
        for g in [
            &self.threads,
            &self.thread_limit,
            &self.thread_limit_usage,
            &self.processes,
            &self.cpu_time,
            &self.cpu,
            &self.rss,
            &self.fds,
            &self.start_time,
            &self.initializing,
        ] {
            g.remove_where("service", service);
        }
    }

    /// The service left the config.
    pub fn forget_service(&self, service: &str) {
        self.service_absent(service);
        self.up.remove_where("service", service);
        self.last_cold_start.remove_where("service", service);
    }
}

/// CPUs available to this process (affinity and cgroup quota included), read once.
fn available_cpus() -> f64 {
    static CPUS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0)
    })
}
