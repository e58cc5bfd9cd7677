//! The host disk collector: `/proc/diskstats`, bytes since boot by direction, whole disks
//! only (those `SYS/block` lists).

use super::super::names;
use super::super::parse::disk::disk_bytes;
use super::super::root::ProcRoot;
use crate::context::Context;
use crate::series::Gauge;

pub struct Disk {
    io: Gauge,
}

impl Disk {
    pub fn new(ctx: &Context) -> Self {
        Self {
            io: ctx.series.counter(
                &ctx.meter,
                names::SYSTEM_DISK_IO,
                "Host disk traffic since boot, all whole disks, by direction",
                "By",
            ),
        }
    }

    pub fn collect(&mut self, root: &ProcRoot) {
        let Some(text) = root.read("diskstats") else {
            return;
        };
        let block = root.sys_path().join("block");
        let (r, w) = disk_bytes(&text, |name| block.join(name).exists());
        self.io.set(&[("direction", "read")], r as f64);
        self.io.set(&[("direction", "write")], w as f64);
    }
}
