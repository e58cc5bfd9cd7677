//! The `lookout` binary: command-line parsing and process setup around the `lookout_agent`
//! library. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lookout_agent::config::Config;
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
        /// Which detector: `lookout` (the daemon's) or `netdata` (the baseline).
        #[arg(long, default_value = "lookout")]
        detector: lookout_detectors::anomaly::Method,
    },
}

fn main() -> ExitCode {
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
            println!("target {} {}", std::env::consts::ARCH, std::env::consts::OS);
            ExitCode::SUCCESS
        }
        Command::Eval {
            data,
            out,
            labels,
            plot,
            detector,
        } => {
            use lookout_agent::eval::{EvalError, EvalOptions, run};
            let opts = EvalOptions {
                data,
                out,
                labels,
                plot,
                method: detector,
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

fn run_daemon(cfg: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("lookout")
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
