//! The daemon: builds the telemetry and the shared context, serves HTTP, runs one *generation*
//! of components per loaded config, and handles signals — SIGTERM/SIGINT stop it after a final
//! OTLP flush, SIGHUP re-reads the config and swaps generations (a bad file is rejected with
//! one log line and the running generation kept).

use crate::components::Components;
use crate::config::Config;
use crate::context::{Context, Findings, Readiness};
use crate::probes::procinfo;
use crate::series::SeriesStore;
use crate::systemd::Notifier;
use crate::telemetry::{OtlpTarget, Telemetry};
use lookout_common::redact_url;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a stopping generation may take before its tasks are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The tokio blocking pool's bound (`main.rs`): one thread is the timeout sampler's for good,
/// the rest serve short file I/O, DNS lookups and model training.
pub const MAX_BLOCKING_THREADS: usize = 4;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error("{0}")]
    Listen(std::io::Error),
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Token(String),
}

/// One running config: its token and tasks.
struct Generation {
    token: CancellationToken,
    tasks: JoinSet<()>,
}

impl Generation {
    async fn stop(mut self) {
        self.token.cancel();
        let drained = tokio::time::timeout(STOP_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some components did not stop in time; abandoning them");
            self.tasks.abort_all();
        }
    }
}

/// Run until SIGTERM/SIGINT. `config_path` is re-read on SIGHUP.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    let host = config.agent.host.clone();
    std::fs::create_dir_all(&config.agent.data_dir).map_err(|source| DaemonError::DataDir {
        path: config.agent.data_dir.display().to_string(),
        source,
    })?;
    let otlp = OtlpTarget::resolve(config.export.otlp.as_ref());
    let telemetry = Arc::new(Telemetry::new(&host, otlp.clone())?);
    if let Some(t) = &otlp {
        tracing::info!(endpoint = %redact_url(&t.endpoint), protocol = ?t.protocol, interval = ?t.interval, "OTLP export on");
    }
    let root = CancellationToken::new();
    let ctx = Context {
        host: host.clone(),
        data_dir: config.agent.data_dir.clone(),
        meter: telemetry.meter(),
        series: SeriesStore::new(config.agent.history),
        findings: Arc::new(Findings::new(1000)),
        readiness: Arc::new(Readiness::default()),
        shutdown: root.clone(),
        stopping: CancellationToken::new(),
        heartbeat: Arc::new(crate::context::Heartbeat::default()),
    };
    let components = Arc::new(Components::default());

    let fds = raise_nofile_limit();
    let listener = crate::http::bind(&config.agent.listen.0)
        .await
        .map_err(DaemonError::Listen)?;
    let local = listener.local_addr().map_err(DaemonError::Listen)?;
    tracing::info!(listen = %local, host = %host, version = crate::telemetry::VERSION, commit = crate::telemetry::GIT_COMMIT, "lookout starting");
    let listen_host = config
        .agent
        .listen
        .0
        .rsplit_once(':')
        .map_or("", |(h, _)| h);
    let guard = Arc::new(crate::http::guard::Guard::new(
        local,
        listen_host,
        &host,
        &config.agent.allowed_hosts,
    ));
    load_token(&guard, &config).map_err(DaemonError::Token)?;
    if !guard.has_token() && !local.ip().is_loopback() {
        tracing::warn!(listen = %local, "the /v1/ API is open to the network: set agent.api_token_file");
    }
    let app = crate::http::router(crate::http::AppState {
        telemetry: telemetry.clone(),
        ctx: ctx.clone(),
        components: components.clone(),
        guard: guard.clone(),
    });
    // Connections beyond what the fd budget leaves room for would fail at accept and starve
    // everything else that needs an fd (caches, the sampler, probes). The timeout sampler keeps
    // two fds per thread it follows: it gets what connections and the reserve leave, and at
    // least a quarter of what is above the reserve (connections get the rest), so that a
    // service with thousands of threads cannot exhaust the agent, nor a low limit blind it.
    let above_reserve = fds.saturating_sub(FD_RESERVE);
    let sampler_fds = above_reserve
        .saturating_sub(config.agent.max_connections as u64)
        .max(above_reserve / 4);
    crate::timeout::sampler::set_fd_budget(sampler_fds);
    let limits = crate::http::serve::Limits {
        max_connections: config
            .agent
            .max_connections
            .min(above_reserve.saturating_sub(sampler_fds) as usize)
            .max(16),
        header_timeout: config.agent.header_timeout.get(),
    };
    if limits.max_connections < config.agent.max_connections {
        tracing::warn!(
            configured = config.agent.max_connections,
            used = limits.max_connections,
            nofile = fds,
            "agent.max_connections lowered to what RLIMIT_NOFILE leaves room for"
        );
    }
    let stats = Arc::new(crate::http::serve::ServerStats::default());
    spawn_connection_gauge(&ctx, stats.clone());
    let server_token = root.clone();
    // Closed before the server answers its first /readyz, so that no request can find the
    // agent ready before its first probe cycle; start_generation opens it.
    ctx.readiness
        .wait_for("probes", "the first probe cycle has not finished");
    let mut server = tokio::spawn(async move {
        crate::http::serve::serve(listener, app, limits, stats, server_token).await
    });

    spawn_agent_cold_start(&ctx);
    spawn_heap_trim(&ctx);
    let notifier = Notifier::from_env().map(Arc::new);
    if let Some(n) = &notifier {
        // A few probe intervals of silence (one interval may be long) before pings stop.
        let stale_after = (config.agent.interval.get() * 3).max(Duration::from_secs(10));
        crate::systemd::spawn(
            n.clone(),
            ctx.readiness.clone(),
            ctx.heartbeat.clone(),
            stale_after,
            root.clone(),
        );
    }
    let notify = |msg: &str| {
        if let Some(n) = &notifier {
            n.send(msg);
        }
    };
    let mut current = Some(start_generation(&ctx, &config, &components));
    let mut running_config = config;

    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                let Some(path) = &config_path else {
                    tracing::warn!("SIGHUP: running on the built-in config, nothing to re-read");
                    continue;
                };
                match Config::load(path) {
                    Err(e) => tracing::error!("config reload rejected, keeping the running config: {e}"),
                    Ok(new) if let Err(e) = load_token(&guard, &new) => {
                        tracing::error!("config reload rejected, keeping the running config: {e}");
                    }
                    Ok(new) => {
                        notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", crate::systemd::monotonic_usec()));
                        if new.agent.listen != running_config.agent.listen || new.agent.data_dir != running_config.agent.data_dir {
                            tracing::warn!("agent.listen and agent.data_dir changes take effect at the next restart");
                        }
                        if let Some(old) = current.take() { old.stop().await; }
                        current = Some(start_generation(&ctx, &new, &components));
                        notify("READY=1");
                        tracing::info!(path = %path.display(), services = new.services.len(), caches = new.caches.len(), trackers = new.trackers.len(), "config reloaded");
                        running_config = new;
                    }
                }
            }
            res = &mut server => {
                let err = match res {
                    Ok(Err(e)) => e,
                    _ => std::io::Error::other("the HTTP server stopped unexpectedly"),
                };
                return Err(DaemonError::Serve(err));
            }
        }
    }

    // Stop: components first (they may record final values), then flush, then HTTP.
    notify("STOPPING=1");
    let stop_started = std::time::Instant::now();
    // Said before the generation stops, so that its alerts resolve rather than wait for the
    // next generation (there is none).
    ctx.stopping.cancel();
    if let Some(gen_) = current.take() {
        gen_.stop().await;
    }
    let flusher = telemetry.clone();
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::task::spawn_blocking(move || flusher.flush()),
    )
    .await;
    root.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    telemetry.shutdown();
    tracing::info!(
        took_ms = stop_started.elapsed().as_millis() as u64,
        "lookout stopped"
    );
    Ok(())
}

/// File descriptors kept for everything but HTTP connections.
const FD_RESERVE: u64 = 512;

/// Raise RLIMIT_NOFILE's soft limit to its hard limit and return the limit now in force. The
/// default soft limit (1,024) is what select(2) needs, which the agent does not use; every
/// connection, cache file and sampled thread takes one fd.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let before = lim.rlim_cur;
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                tracing::debug!(from = before, to = lim.rlim_max, "RLIMIT_NOFILE raised");
                lim.rlim_cur = lim.rlim_max;
            } else {
                tracing::warn!(
                    soft = before,
                    hard = lim.rlim_max,
                    "cannot raise RLIMIT_NOFILE: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    lim.rlim_cur
}

/// Read `agent.api_token_file` (if set) into the guard; a token that cannot be read is an
/// error, never an open API.
fn load_token(guard: &crate::http::guard::Guard, config: &Config) -> Result<(), String> {
    match &config.agent.api_token_file {
        None => guard.set_token(None),
        Some(path) => guard.set_token(Some(&crate::http::guard::read_token(path)?)),
    }
    Ok(())
}

/// `lookout_http_connections`: open API connections, once a second.
fn spawn_connection_gauge(ctx: &Context, stats: Arc<crate::http::serve::ServerStats>) {
    let gauge = ctx.series.gauge(
        &ctx.meter,
        crate::http::names::CONNECTIONS,
        "Open connections to the agent's HTTP API",
        "{connection}",
    );
    let token = ctx.shutdown.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = every.tick() => {}
            }
            gauge.set(
                &[],
                stats.open.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
        }
    });
}

/// Start every component a config asks for, under a fresh child token.
fn start_generation(root: &Context, config: &Config, components: &Arc<Components>) -> Generation {
    let ctx = root.child();
    let token = ctx.shutdown.clone();
    let mut tasks = JoinSet::new();
    crate::components::start(&ctx, config, components, &mut tasks);
    Generation { token, tasks }
}

/// Record `lookout_agent_cold_start_seconds` (exec → every readiness gate open) once.
fn spawn_agent_cold_start(ctx: &Context) {
    let gauge = ctx.series.gauge(
        &ctx.meter,
        crate::probes::names::AGENT_COLD_START,
        "The agent's own cold start: exec to ready (/readyz 200)",
        "s",
    );
    let readiness = ctx.readiness.clone();
    let token = ctx.shutdown.clone();
    tokio::spawn(async move {
        let me = procinfo::ProcSnapshot::read(std::process::id() as i32);
        loop {
            if readiness.blocking().is_empty() {
                break;
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        if let Some(me) = me {
            let secs = me.age().as_secs_f64();
            gauge.set(&[], secs);
            tracing::info!(seconds = secs, "lookout ready");
        }
    });
}

/// Give freed heap pages back to the kernel now and then. glibc returns memory only from the
/// top of the heap, and only past a threshold; the agent's churn (scrapes, /proc reads,
/// training copies) leaves free pages in the middle that would otherwise stay resident for
/// good. One `malloc_trim` over a few MiB of heap costs well under a millisecond.
fn spawn_heap_trim(ctx: &Context) {
    #[cfg(target_env = "gnu")]
    {
        let token = ctx.shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEAP_TRIM_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = every.tick() => {}
                }
                // SAFETY: malloc_trim only releases free memory of the allocator; it is
                // thread-safe (it takes each arena's lock).
                unsafe { libc::malloc_trim(0) };
            }
        });
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = ctx;
}

/// How often [`spawn_heap_trim`] runs.
const HEAP_TRIM_EVERY: Duration = Duration::from_secs(10);
