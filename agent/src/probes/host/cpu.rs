//! The host CPU collector: the busy share of all CPUs since the previous read of
//! `/proc/stat`.

use super::super::names;
use super::super::parse::cpu::{CpuTimes, cpu_times, utilization};
use super::super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub struct Cpu {
    cpu: Gauge,
    /// The previous read: the first share is over the time since the probe was made.
    last: Option<CpuTimes>,
}

impl Cpu {
    pub fn new(ctx: &Context, root: &ProcRoot) -> Self {
        let last = root.read("stat").as_deref().and_then(cpu_times);
        if last.is_none() {
            tracing::warn!(root = %root.proc_path().display(), "stat unreadable: no host CPU series");
        }
        Self {
            cpu: ctx.series.gauge(
                &ctx.meter,
                names::SYSTEM_CPU_UTILIZATION,
                "Host CPU busy share, 0..1",
                "1",
            ),
            last,
        }
    }

    pub fn collect(&mut self, root: &ProcRoot) {
        let Some(now) = root.read("stat").as_deref().and_then(cpu_times) else {
            return;
        };
        if let Some(before) = self.last.replace(now) {
            self.cpu.set(&[], utilization(before, now));
        }
    }
}
