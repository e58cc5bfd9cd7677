//! The host probe: threads against threads-max and pid_max, CPU, memory, load, network and
//! disk traffic (counters), and the agent's own process.

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
            net: s.counter(
                m,
                names::SYSTEM_NETWORK_IO,
                "Host network traffic since boot, all non-loopback interfaces, by direction",
                "By",
            ),
            disk: s.counter(
                m,
                names::SYSTEM_DISK_IO,
                "Host disk traffic since boot, all whole disks, by direction",
                "By",
            ),
            build_info: s.gauge(
                m,
                names::BUILD_INFO,
                "Always 1; the agent's version as a label",
                "",
            ),
            process,
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
        // Totals, as the kernel counts them: PromQL's rate() over any scrape interval, not a
        // 1 s rate that a 15 s scrape would alias.
        if let Some((rx, tx)) = read_net_bytes() {
            self.net.set(&[("direction", "receive")], rx as f64);
            self.net.set(&[("direction", "transmit")], tx as f64);
        }
        if let Some((r, w)) = read_disk_bytes() {
            self.disk.set(&[("direction", "read")], r as f64);
            self.disk.set(&[("direction", "write")], w as f64);
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
