//! The host network collector: `/proc/net/dev`, bytes since boot by direction.

use super::super::names;
use super::super::parse::network::net_bytes;
use super::super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub struct Network {
    io: Gauge,
}

impl Network {
    pub fn new(ctx: &Context) -> Self {
        Self {
            io: ctx.series.counter(
                &ctx.meter,
                names::SYSTEM_NETWORK_IO,
                "Host network traffic since boot, all non-loopback interfaces, by direction",
                "By",
            ),
        }
    }

    pub fn collect(&mut self, root: &ProcRoot) {
        // Totals, as the kernel counts them: PromQL's rate() over any scrape interval, not a
        // 1 s rate that a 15 s scrape would alias.
        if let Some((rx, tx)) = root.read("net/dev").as_deref().and_then(net_bytes) {
            self.io.set(&[("direction", "receive")], rx as f64);
            self.io.set(&[("direction", "transmit")], tx as f64);
        }
    }
}
