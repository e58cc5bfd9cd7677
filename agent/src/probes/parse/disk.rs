//! `/proc/diskstats`: bytes read and written by whole disks.

/// Sectors (512 bytes, whatever the device's block size) read and written, in bytes, summed
/// over the devices `is_disk` accepts — the collector asks `/sys/block`, which lists whole
/// disks and not partitions — leaving out loop, ram and device-mapper devices, whose traffic
/// is the traffic of the disks below them. Lines procfs cannot parse are skipped.
pub fn disk_bytes(text: &str, is_disk: impl Fn(&str) -> bool) -> (u64, u64) {
    let (mut read, mut written) = (0u64, 0u64);
    for d in text
        .lines()
        .filter_map(|l| procfs::DiskStat::from_line(l).ok())
    {
        let name = d.name.as_str();
        if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("dm-") {
            continue;
        }
        if !is_disk(name) {
            continue;
        }
        read += d.sectors_read * 512;
        written += d.sectors_written * 512;
    }
    (read, written)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn the_fixture_host() {
        // vda: 100568226 sectors read, 328001432 written; loop* and zram0 read nothing.
        assert_eq!(
            disk_bytes(fixture!("v1/proc/diskstats"), |_| true),
            (100568226 * 512, 328001432 * 512)
        );
    }

    #[test]
    fn partitions_and_stacked_devices_are_not_counted_twice() {
        let text = "\
 259       0 nvme0n1 10 0 800 1 20 0 1600 2 0 3 3 0 0 0 0 0 0
 259       1 nvme0n1p1 10 0 800 1 20 0 1600 2 0 3 3 0 0 0 0 0 0
 252       0 dm-0 10 0 800 1 20 0 1600 2 0 3 3 0 0 0 0 0 0
   1       0 ram0 10 0 800 1 20 0 1600 2 0 3 3 0 0 0 0 0 0
 short line
";
        let whole = |n: &str| n == "nvme0n1" || n == "dm-0" || n == "ram0";
        assert_eq!(disk_bytes(text, whole), (800 * 512, 1600 * 512));
    }
}
