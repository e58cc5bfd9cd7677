//! Pure parsers of what the probes read: text in, values out, no I/O (the architecture test
//! holds them to it), so that each is tested on the real files copied into
//! `tests/fixtures/proc`. procfs (`procfs-core`) does the parsing where it parses the file;
//! what is written here is the selection and arithmetic the metrics need on top.

pub mod cgroup;
pub mod cpu;
pub mod disk;
pub mod load;
pub mod memory;
pub mod network;

/// A file holding one number (`/proc/sys/kernel/threads-max`, `pids.current`).
pub fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The fixture tree's copy of `rel`, at compile time (no file system at run time).
#[cfg(test)]
macro_rules! fixture {
    ($rel:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/proc/",
            $rel
        ))
    };
}
#[cfg(test)]
pub(crate) use fixture;

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_of_one_line_files() {
        assert_eq!(
            super::number(fixture!("v1/proc/sys/kernel/pid_max")),
            Some(32768)
        );
        assert_eq!(super::number("max\n"), None);
        assert_eq!(super::number(""), None);
    }
}
