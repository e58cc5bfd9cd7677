//! The host memory collector: `/proc/meminfo`, memory in use (total minus available).

use super::super::names;
use super::super::parse::memory::meminfo;
use super::super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub struct Memory {
    used: Gauge,
    utilization: Gauge,
}

impl Memory {
    pub fn new(ctx: &Context) -> Self {
        let (s, m) = (&ctx.series, &ctx.meter);
        Self {
            used: s.gauge(
                m,
                names::SYSTEM_MEMORY_USED,
                "Host memory in use (total minus available)",
                "By",
            ),
            utilization: s.gauge(
                m,
                names::SYSTEM_MEMORY_UTILIZATION,
                "Host memory in use, 0..1",
                "1",
            ),
        }
    }

    pub fn collect(&mut self, root: &ProcRoot) {
        let Some(mem) = root.read("meminfo").as_deref().and_then(meminfo) else {
            return;
        };
        self.used.set(&[], mem.used() as f64);
        if mem.total > 0 {
            self.utilization
                .set(&[], mem.used() as f64 / mem.total as f64);
        }
    }
}
