//! The `lookout` binary: command-line parsing and process setup around the `lookout_agent`
//! library. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lookout_agent::config::Config;
use lookout_agent::timeout::{DiagnoseOptions, SampleError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lookout",
    version,
    about = "Host agent for observability and AIOps",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Config file (TOML). Without it, a built-in default watches the host and the agent.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file; prints PATH:LINE:COL: message and exits 2 when it is bad.
    CheckConfig { path: PathBuf },
    /// One-shot timeout-bug / hang diagnosis of a running process (needs CAP_SYS_PTRACE).
    Diagnose {
        /// The process to look at.
        pid: i32,
        /// How long to watch it.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Print the JSON object of the CONTRACT instead of the report for people.
        #[arg(long)]
        json: bool,
        /// A wait with no timeout on another party that has sent nothing for this long is a
        /// missing timeout (`--hang-threshold` is its former name).
        #[arg(long, alias = "hang-threshold", default_value = "5s", value_parser = parse_duration)]
        quiet_period: std::time::Duration,
        /// A finite timeout above this on a wait for another party is too large.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        max_timeout: std::time::Duration,
        /// Samples per second.
        #[arg(long, default_value_t = 20.0, hide = true)]
        hz: f64,
    },
    /// Print version and build information.
    Version,
    /// Score every CSV (timestamp,value) under --data with the anomaly detector, offline and
    /// strictly causally; with --labels (NAB windows JSON) also print NAB scores.
    Eval {
        /// Directory of CSV files (searched recursively).
        #[arg(long)]
        data: PathBuf,
        /// Where to write the scored copies (same relative paths).
        #[arg(long)]
        out: PathBuf,
        /// NAB `combined_windows.json`: print NAB scores; the last line is
        /// `nab standard=X reward_low_FP=Y reward_low_FN=Z`.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Write one SVG per file here: values, score, labelled windows, detections.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Which detector: `ensemble` (the daemon's: the larger of the deviation and CAD OSE
        /// scores), `lookout` (the deviation detector alone), `netdata` (the baseline),
        /// `cad-ose` (NAB's CAD OSE, causal: range fixed from the first 256 values, memory
        /// bounded) or `bocpd` (NAB's Bayesian online change-point detector).
        #[arg(long, default_value = "ensemble")]
        detector: lookout_detectors::anomaly::Method,
        /// With `--detector cad-ose`: give it each file's minimum and maximum up front, as NAB
        /// does (NOT causal; for comparison with NAB's scoreboard only).
        #[arg(long)]
        nab_range: bool,
        /// Also print leave-one-category-out cross-validated NAB scores (needs --labels).
        #[arg(long)]
        cv: bool,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 30s, 500ms, 2m)"))
}

fn main() -> ExitCode {
    // Before any HTTP client is built (reqwest has no crypto provider of its own here).
    lookout_common::install_tls_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Version => {
            println!("lookout {}", lookout_agent::telemetry::VERSION);
            println!("commit {}", lookout_agent::telemetry::GIT_COMMIT);
            println!("target {} {}", std::env::consts::ARCH, std::env::consts::OS);
            ExitCode::SUCCESS
        }
        Command::Eval {
            data,
            out,
            labels,
            plot,
            detector,
            nab_range,
            cv,
        } => {
            use lookout_agent::eval::{EvalError, EvalOptions, run};
            let opts = EvalOptions {
                data,
                out,
                labels,
                plot,
                method: detector,
                nab_range,
                cv,
            };
            match run(&opts) {
                Ok(report) => {
                    print!("{}", report.summary(detector));
                    ExitCode::SUCCESS
                }
                Err(e @ EvalError::BadInput(_)) => {
                    eprintln!("lookout eval: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("lookout eval: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Diagnose {
            pid,
            seconds,
            json,
            quiet_period,
            max_timeout,
            hz,
        } => diagnose(
            DiagnoseOptions {
                pid,
                seconds,
                hz,
                quiet_period: quiet_period.as_secs_f64(),
                max_timeout: max_timeout.as_secs_f64(),
            },
            json,
        ),
        Command::CheckConfig { path } => match Config::load(&path) {
            Ok(c) => {
                println!(
                    "{}: ok ({} services, {} caches, {} trackers)",
                    path.display(),
                    c.services.len(),
                    c.caches.len(),
                    c.trackers.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Ok(Config::builtin_default()),
            };
            let cfg = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            init_logging();
            match run_daemon(cfg, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lookout: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn diagnose(opts: DiagnoseOptions, json: bool) -> ExitCode {
    if !(opts.seconds.is_finite() && opts.seconds > 0.0 && opts.seconds <= 3600.0) {
        eprintln!("lookout: --seconds must be between 0 and 3600");
        return ExitCode::from(2);
    }
    match lookout_agent::timeout::diagnose(&opts) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.human());
            }
            ExitCode::SUCCESS
        }
        Err(e @ (SampleError::PermissionDenied(_) | SampleError::NoProcess(_))) => {
            eprintln!("lookout: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("lookout: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_daemon(cfg: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    // glibc gives each thread that allocates its own malloc arena (up to 8 per core); for a
    // small always-on agent those mostly-empty arenas are most of its resident memory. One
    // arena: the agent's allocations are few and short, so lock contention does not show.
    // SAFETY: mallopt only tunes the allocator and is called before any other thread exists.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // linfa's k-means runs its assignment step on rayon's global pool, which would start one
    // thread per CPU (96 on a 96-core host) in an agent that watches thread counts. Training
    // is small and already off the hot path (the blocking pool): one thread is plenty.
    // Built now so that it exists, named, from the start rather than on the first training.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "lookout-kmeans".into())
        .build_global()
    {
        tracing::warn!(error = %e, "cannot cap the k-means thread pool");
    }
    // Every thread of the agent is named after what it is (top, ps -L, /proc/PID/task/*/comm):
    // the tokio workers and blocking pool (tokio starts workers through the blocking pool, so
    // the two cannot be told apart by name). Bounds: 2 workers + 4 blocking threads (one is
    // the timeout sampler's for good, the others are file I/O, DNS and training, seconds at a
    // time) + k-means + main = 8 at most.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(lookout_agent::daemon::MAX_BLOCKING_THREADS)
        .thread_name("lookout-rt")
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(lookout_agent::daemon::run(cfg, path))?;
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    Ok(())
}

/// Logs to stderr; `LOOKOUT_LOG` (or `RUST_LOG`) filters, `LOOKOUT_LOG_FORMAT=json` for JSON lines.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("LOOKOUT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOOKOUT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
