//! The host limits collector: `kernel.threads-max` and `kernel.pid_max`.

use super::super::names;
use super::super::parse::number;
use super::super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub struct Limits {
    thread_limit: Gauge,
}

impl Limits {
    pub fn new(ctx: &Context) -> Self {
        Self {
            thread_limit: ctx.series.gauge(
                &ctx.meter,
                names::SYSTEM_THREAD_LIMIT,
                "Host-wide thread limits: kernel.threads-max and kernel.pid_max",
                "{thread}",
            ),
        }
    }

    pub fn collect(&mut self, root: &ProcRoot) {
        for (kind, rel) in [
            ("threads_max", "sys/kernel/threads-max"),
            ("pid_max", "sys/kernel/pid_max"),
        ] {
            if let Some(v) = root.read(rel).as_deref().and_then(number) {
                self.thread_limit.set(&[("kind", kind)], v as f64);
            }
        }
    }
}
