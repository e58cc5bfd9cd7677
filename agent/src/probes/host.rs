//! The host probe: threads against threads-max and pid_max, CPU, memory, load, network and
//! disk throughput (series for the anomaly detector), and the agent's own process.

use super::ProbeMetrics;
use super::procinfo::ProcSnapshot;
use crate::context::Context;
use crate::series::Gauge;
use std::time::Instant;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::names;
pub use super::names::SELF_SERVICE;

pub struct HostProbe {
    /// None when sysinfo cannot read this kernel's counters; the /proc readers still run.
    system: Option<System>,
    threads: Gauge,
    thread_limit: Gauge,
    cpu: Gauge,
    mem_used: Gauge,
    mem_util: Gauge,
    load: Gauge,
    net: Gauge,
    disk: Gauge,
    build_info: Gauge,
    process: ProbeMetrics,
    net_rate: PairRate,
    disk_rate: PairRate,
    last_self_cpu: Option<(u64, Instant)>,
}

impl HostProbe {
    pub fn new(ctx: &Context, process: ProbeMetrics) -> Self {
        let s = &ctx.series;
        let m = &ctx.meter;
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .map_err(|e| tracing::warn!(error = %e, "sysinfo unavailable: no CPU and memory series"))
        .ok();
        Self {
            system,
            threads: s.gauge(
                m,
                names::SYSTEM_THREADS,
                "Threads (kernel tasks) on the host",
                "{thread}",
            ),
            thread_limit: s.gauge(
                m,
                names::SYSTEM_THREAD_LIMIT,
                "Host-wide thread limits: kernel.threads-max and kernel.pid_max",
                "{thread}",
            ),
            cpu: s.gauge(
                m,
                names::SYSTEM_CPU_UTILIZATION,
                "Host CPU busy share, 0..1",
                "1",
            ),
            mem_used: s.gauge(
                m,
                names::SYSTEM_MEMORY_USED,
                "Host memory in use (total minus available)",
                "By",
            ),
            mem_util: s.gauge(
                m,
                names::SYSTEM_MEMORY_UTILIZATION,
                "Host memory in use, 0..1",
                "1",
            ),
            load: s.gauge(m, names::SYSTEM_LOAD, "Host load average", "{thread}"),
            net: s.gauge(
                m,
                names::SYSTEM_NETWORK_RATE,
                "Host network throughput, all non-loopback interfaces",
                "By/s",
            ),
            disk: s.gauge(
                m,
                names::SYSTEM_DISK_RATE,
                "Host disk throughput, all whole disks",
                "By/s",
            ),
            build_info: s.gauge(
                m,
                names::BUILD_INFO,
                "Always 1; the agent's version as a label",
                "",
            ),
            process,
            net_rate: PairRate::default(),
            disk_rate: PairRate::default(),
            last_self_cpu: None,
        }
    }

    pub fn tick(&mut self) {
        self.build_info
            .set(&[("version", crate::telemetry::VERSION)], 1.0);
        if let Some(n) = read_running_tasks() {
            self.threads.set(&[], n as f64);
        }
        for (kind, path) in [
            ("threads_max", "/proc/sys/kernel/threads-max"),
            ("pid_max", "/proc/sys/kernel/pid_max"),
        ] {
            if let Some(v) = read_u64(path) {
                self.thread_limit.set(&[("kind", kind)], v as f64);
            }
        }
        if let Some(system) = self.system.as_mut() {
            system.refresh_cpu_usage();
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            self.cpu
                .set(&[], f64::from(system.global_cpu_usage()) / 100.0);
            let total = system.total_memory();
            let used = total.saturating_sub(system.available_memory());
            self.mem_used.set(&[], used as f64);
            if total > 0 {
                self.mem_util.set(&[], used as f64 / total as f64);
            }
        }
        if let Ok(load) = System::load_average() {
            self.load.set(&[("period", "1m")], load.one);
            self.load.set(&[("period", "5m")], load.five);
            self.load.set(&[("period", "15m")], load.fifteen);
        }
        if let Some(bytes) = read_net_bytes() {
            self.net_rate
                .update(&self.net, ["receive", "transmit"], bytes);
        }
        if let Some(bytes) = read_disk_bytes() {
            self.disk_rate.update(&self.disk, ["read", "write"], bytes);
        }
        self.tick_self();
    }

    fn tick_self(&mut self) {
        let Some(snap) = ProcSnapshot::read(std::process::id() as i32) else {
            return;
        };
        let now = Instant::now();
        let cpu = self.last_self_cpu.and_then(|(ticks, at)| {
            let dt = now.duration_since(at).as_secs_f64();
            (dt > 0.0 && snap.cpu_ticks >= ticks)
                .then(|| (snap.cpu_ticks - ticks) as f64 / procfs::ticks_per_second() as f64 / dt)
        });
        self.last_self_cpu = Some((snap.cpu_ticks, now));
        self.process
            .record_process(SELF_SERVICE, &snap, cpu, None, None);
    }
}

/// Per-second rates of two byte counters read together (in/out), labelled by direction.
/// A counter that went backwards (a reset) skips one sample rather than report a negative rate.
#[derive(Default)]
struct PairRate {
    last: Option<((u64, u64), Instant)>,
}

impl PairRate {
    fn update(&mut self, gauge: &Gauge, directions: [&str; 2], now_bytes: (u64, u64)) {
        let now = Instant::now();
        if let Some(((a0, b0), at)) = self.last {
            let dt = now.duration_since(at).as_secs_f64();
            if dt > 0.0 && now_bytes.0 >= a0 && now_bytes.1 >= b0 {
                gauge.set(
                    &[("direction", directions[0])],
                    (now_bytes.0 - a0) as f64 / dt,
                );
                gauge.set(
                    &[("direction", directions[1])],
                    (now_bytes.1 - b0) as f64 / dt,
                );
            }
        }
        self.last = Some((now_bytes, now));
    }
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The total of kernel scheduling entities (all threads of all processes), from /proc/loadavg:
/// one read instead of a walk over every /proc/PID.
fn read_running_tasks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

fn read_net_bytes() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    let (mut rx, mut tx) = (0u64, 0u64);
    for line in text.lines().skip(2) {
        let (iface, rest) = line.split_once(':')?;
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    Some((rx, tx))
}

/// Sectors read and written by whole disks (not partitions, not loop/ram devices), in bytes.
fn read_disk_bytes() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/diskstats").ok()?;
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let name = f[2];
        if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("dm-") {
            continue;
        }
        if !std::path::Path::new(&format!("/sys/block/{name}")).exists() {
            continue;
        }
        r += f[5].parse::<u64>().unwrap_or(0) * 512;
        w += f[9].parse::<u64>().unwrap_or(0) * 512;
    }
    Some((r, w))
}
