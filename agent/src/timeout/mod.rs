//! Timeout-bug detection on live processes, from `/proc` alone, and `lookout diagnose`.
//!
//! The sampler ([`sampler`]) reads each thread's `/proc/PID/task/TID/{schedstat,syscall}` (and
//! `sched`, `io` when needed), decodes the timeout of the call it is blocked in ([`decode`]):
//! integer arguments, timespec/timeval pointers read from the target's memory with
//! `process_vm_readv`, `SO_RCVTIMEO`/`SO_SNDTIMEO` of a socket through a `pidfd_getfd` copy
//! closed at once; and maps the awaited descriptors to what they are ([`target`]): TCP socket
//! → state, peer and direction from the target's `/proc/PID/net/tcp{,6}`, epoll members from
//! `fdinfo`, file-lock holders from `/proc/locks`, mutex owners from the mutex word. The pure
//! classification lives in `lookout_detectors::timeout`.
//!
//! It never sends SIGSTOP or attaches with ptrace: either would rewrite the very calls it
//! measures (a stopped thread resumes in `restart_syscall`, or fails with EINTR).
//!
//! **Rights: the one capability needed is `CAP_SYS_PTRACE`** (or running as root). Reading
//! another process's `syscall` file, its memory and its descriptors all require
//! PTRACE_MODE_ATTACH. Without it `lookout diagnose` exits 2 naming the capability, and the
//! daemon warns once per service, counts `lookout_timeout_sample_errors_total{reason=
//! "permission"}` and keeps running. A systemd unit grants it with
//! `AmbientCapabilities=CAP_SYS_PTRACE` and `CapabilityBoundingSet=CAP_SYS_PTRACE`.

pub mod decode;
pub mod diagnose;
pub mod names;
pub mod sampler;
pub mod target;
pub mod watch;

pub use diagnose::{DiagnoseOptions, Report, diagnose};
pub use sampler::{ProcessSampler, SampleError};

use crate::config::Config;
use crate::context::Context;
use tokio::task::JoinSet;

/// Start the timeout detector for the configured services when `[detectors.timeout]` is on.
pub fn start(ctx: &Context, config: &Config, tasks: &mut JoinSet<()>) {
    let services = config
        .services
        .iter()
        .map(|s| (s.name.clone(), s.matcher.clone()))
        .collect();
    watch::start(ctx, &config.detectors.timeout, services, tasks);
}
