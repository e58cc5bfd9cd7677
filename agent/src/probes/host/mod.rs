//! The host probe: threads against threads-max and pid_max, CPU, memory, load, network and
//! disk traffic (counters), and the agent's own process — one collector per file, each
//! reading through the probe's [`ProcRoot`].

mod agent;
mod cpu;
mod disk;
mod limits;
mod load;
mod memory;
mod network;

use super::ProbeMetrics;
use super::names;
use super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub use super::names::SELF_SERVICE;

pub struct HostProbe {
    root: ProcRoot,
    load: load::Load,
    limits: limits::Limits,
    cpu: cpu::Cpu,
    memory: memory::Memory,
    network: network::Network,
    disk: disk::Disk,
    build_info: Gauge,
    agent: agent::Agent,
}

impl HostProbe {
    /// The host under `/proc` and `/sys`.
    pub fn new(ctx: &Context, process: ProbeMetrics) -> Self {
        Self::with_root(ctx, process, ProcRoot::default())
    }

    pub fn with_root(ctx: &Context, process: ProbeMetrics, root: ProcRoot) -> Self {
        Self {
            load: load::Load::new(ctx),
            limits: limits::Limits::new(ctx),
            cpu: cpu::Cpu::new(ctx, &root),
            memory: memory::Memory::new(ctx),
            network: network::Network::new(ctx),
            disk: disk::Disk::new(ctx),
            build_info: ctx.series.gauge(
                &ctx.meter,
                names::BUILD_INFO,
                "Always 1; the agent's version as a label",
                "",
            ),
            agent: agent::Agent::new(process),
            root,
        }
    }

    pub fn tick(&mut self) {
        self.build_info
            .set(&[("version", crate::telemetry::VERSION)], 1.0);
        let root = &self.root;
        self.load.collect(root);
        self.limits.collect(root);
        self.cpu.collect(root);
        self.memory.collect(root);
        self.network.collect(root);
        self.disk.collect(root);
        self.agent.collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::SeriesKey;

    /// One tick over the fixture host (copied from a real one): every collector finds its
    /// file under the root and reports the value the file holds.
    #[test]
    fn one_tick_over_the_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path().to_path_buf());
        let root = ProcRoot::under(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc/v1"),
        );
        let mut probe = HostProbe::with_root(&ctx, ProbeMetrics::new(&ctx), root);
        probe.tick();
        let get =
            |name: &str, labels: &[(&str, &str)]| ctx.series.latest(&SeriesKey::new(name, labels));
        assert_eq!(get(names::SYSTEM_THREADS, &[]), Some(192.0));
        assert_eq!(get(names::SYSTEM_LOAD, &[("period", "5m")]), Some(4.60));
        assert_eq!(
            get(names::SYSTEM_THREAD_LIMIT, &[("kind", "threads_max")]),
            Some(192726.0)
        );
        assert_eq!(
            get(names::SYSTEM_THREAD_LIMIT, &[("kind", "pid_max")]),
            Some(32768.0)
        );
        assert_eq!(
            get(names::SYSTEM_MEMORY_USED, &[]),
            Some(((24683584u64 - 22210716) * 1024) as f64)
        );
        assert_eq!(
            get(names::SYSTEM_NETWORK_IO, &[("direction", "receive")]),
            Some(595279832.0)
        );
        assert_eq!(
            get(names::SYSTEM_DISK_IO, &[("direction", "write")]),
            Some((328001432u64 * 512) as f64)
        );
        // The fixture's stat does not change between reads: no tick passed, a share of 0.
        assert_eq!(get(names::SYSTEM_CPU_UTILIZATION, &[]), Some(0.0));
        // The agent itself is read from /proc/self, not from the fixture.
        assert_eq!(
            get(names::SERVICE_UP, &[("service", SELF_SERVICE)]),
            Some(1.0)
        );
    }
}
