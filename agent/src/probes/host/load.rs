//! The load collector: `/proc/loadavg` — the load averages, and the host's thread count
//! (every kernel scheduling entity), both from the one file.

use super::super::names;
use super::super::parse::load::loadavg;
use super::super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub struct Load {
    threads: Gauge,
    load: Gauge,
}

impl Load {
    pub fn new(ctx: &Context) -> Self {
        let (s, m) = (&ctx.series, &ctx.meter);
        Self {
            threads: s.gauge(
                m,
                names::SYSTEM_THREADS,
                "Threads (kernel tasks) on the host",
                "{thread}",
            ),
            load: s.gauge(m, names::SYSTEM_LOAD, "Host load average", "{thread}"),
        }
    }

    pub fn collect(&mut self, root: &ProcRoot) {
        let Some(l) = root.read("loadavg").as_deref().and_then(loadavg) else {
            return;
        };
        self.threads.set(&[], l.tasks as f64);
        self.load.set(&[("period", "1m")], l.one);
        self.load.set(&[("period", "5m")], l.five);
        self.load.set(&[("period", "15m")], l.fifteen);
    }
}
