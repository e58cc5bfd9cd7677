//! The agent's own process, reported as the service `lookout` with the per-service metrics;
//! read at `/proc/self` whatever the probes' root.

use super::super::ProbeMetrics;
use super::super::names::SELF_SERVICE;
use super::super::procinfo::ProcSnapshot;
use std::time::Instant;

pub struct Agent {
    process: ProbeMetrics,
    last_cpu: Option<(u64, Instant)>,
}

impl Agent {
    pub fn new(process: ProbeMetrics) -> Self {
        Self {
            process,
            last_cpu: None,
        }
    }

    pub fn collect(&mut self) {
        let Some(snap) = ProcSnapshot::myself() else {
            return;
        };
        let now = Instant::now();
        let cpu = self.last_cpu.and_then(|(ticks, at)| {
            let dt = now.duration_since(at).as_secs_f64();
            (dt > 0.0 && snap.cpu_ticks >= ticks)
                .then(|| (snap.cpu_ticks - ticks) as f64 / procfs::ticks_per_second() as f64 / dt)
        });
        self.last_cpu = Some((snap.cpu_ticks, now));
        self.process
            .record_process(SELF_SERVICE, &snap, cpu, None, None);
    }
}
