//! The names of what the probes (and the agent's own cold-start timer) produce, defined once:
//! the alert rules, the anomaly detector's exclusion list, the status page and the tests
//! import them from here. Constants only: this module imports nothing, so anyone may use it.

/// The service name the agent reports itself under in the per-service metrics.
pub const SELF_SERVICE: &str = "lookout";

/// Threads of a watched service (OTel semantic-convention name).
pub const THREAD_COUNT: &str = "process.thread.count";
/// [`THREAD_COUNT`] as Prometheus exposes it.
pub const THREAD_COUNT_PROMETHEUS: &str = "process_thread_count";
/// Limits that apply to a service's threads, label `kind`.
pub const THREAD_LIMIT: &str = "lookout_service_thread_limit";
/// What counts against each limit, label `kind`.
pub const THREAD_LIMIT_USAGE: &str = "lookout_service_thread_limit_usage";
/// Counter kept in the series store (all processes of a service).
pub const CPU_TIME_TOTAL: &str = "process_cpu_time_seconds_total";
pub const PROCESSES: &str = "lookout_service_processes";
/// CPU time per second over the CPUs available to the agent, 0..1.
pub const CPU_UTILIZATION: &str = "process_cpu_utilization_ratio";
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const OPEN_FDS: &str = "process_open_fds";
pub const START_TIME: &str = "process_start_time_seconds";
pub const SERVICE_UP: &str = "lookout_service_up";
pub const INITIALIZING: &str = "lookout_service_initializing_seconds";
pub const LAST_COLD_START: &str = "lookout_service_last_cold_start_seconds";
/// Histogram: process start to the first ready probe.
pub const COLD_START: &str = "lookout_service_cold_start_seconds";
/// Counter: new instances of a service after the first.
pub const RESTARTS: &str = "lookout_service_restarts";
/// [`RESTARTS`] as Prometheus exposes it.
pub const RESTARTS_TOTAL: &str = "lookout_service_restarts_total";

pub const SYSTEM_THREADS: &str = "system_thread_count";
pub const SYSTEM_THREAD_LIMIT: &str = "system_thread_limit";
pub const SYSTEM_CPU_UTILIZATION: &str = "system_cpu_utilization_ratio";
pub const SYSTEM_MEMORY_USED: &str = "system_memory_used_bytes";
pub const SYSTEM_MEMORY_UTILIZATION: &str = "system_memory_utilization_ratio";
pub const SYSTEM_LOAD: &str = "system_load_average";
/// Counter (bytes since boot), label `direction`.
pub const SYSTEM_NETWORK_IO: &str = "system_network_io_bytes_total";
/// Counter (bytes since boot), label `direction`.
pub const SYSTEM_DISK_IO: &str = "system_disk_io_bytes_total";
pub const BUILD_INFO: &str = "lookout_build_info";

/// The agent's own exec → ready (set by the daemon).
pub const AGENT_COLD_START: &str = "lookout_agent_cold_start_seconds";
