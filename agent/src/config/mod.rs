//! The agent's TOML configuration: its types, the built-in default, and loading with errors
//! that name `PATH:LINE:COL` (syntax, unknown keys, wrong types and invalid values alike).
//!
//! Validation happens while deserializing wherever possible (see [`types`]), because only then
//! does the TOML parser know the span of the offending value.

pub mod types;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;
pub use types::{Duration, HostPort, HttpUrl, Regex};

/// A config that could not be loaded. `Display` is the one line users see.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub agent: AgentConfig,
    #[serde(default)]
    pub export: ExportConfig,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    #[serde(default, rename = "cache")]
    pub caches: Vec<CacheConfig>,
    #[serde(default, rename = "tracker")]
    pub trackers: Vec<TrackerConfig>,
    #[serde(default)]
    pub detectors: DetectorsConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default = "default_listen")]
    pub listen: HostPort,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_host")]
    pub host: String,
    /// Samples kept per series in the in-memory series store.
    #[serde(default = "default_history")]
    pub history: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            interval: default_interval(),
            data_dir: default_data_dir(),
            host: default_host(),
            history: default_history(),
        }
    }
}

fn default_listen() -> HostPort {
    HostPort("127.0.0.1:9464".into())
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_history() -> usize {
    600
}
/// `/var/lib/lookout` when we may write there (root, systemd StateDirectory), else a per-user dir.
pub fn default_data_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("STATE_DIRECTORY") {
        return PathBuf::from(dir);
    }
    let system = PathBuf::from("/var/lib/lookout");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return system;
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("lookout")
}
pub fn default_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    pub otlp: Option<OtlpConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    pub endpoint: Option<HttpUrl>,
    pub protocol: Option<OtlpProtocol>,
    #[serde(default = "default_otlp_interval")]
    pub interval: Duration,
    /// Request body compression; absent = `OTEL_EXPORTER_OTLP_COMPRESSION`, else gzip.
    pub compression: Option<OtlpCompression>,
    /// PEM file of the CA(s) that sign the collector's certificate (https endpoints);
    /// absent = `OTEL_EXPORTER_OTLP_CERTIFICATE`, else the system's trust store.
    pub certificate: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpCompression {
    #[serde(rename = "gzip")]
    Gzip,
    #[serde(rename = "none")]
    None,
}

fn default_otlp_interval() -> Duration {
    Duration::from_secs(15)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: ProcessMatch,
    pub ready: Option<ReadyProbe>,
    pub expected_max_threads: Option<u64>,
    #[serde(default = "default_cold_start_budget")]
    pub cold_start_budget: Duration,
    /// Which processes make the service (beside the oldest match, its main process).
    #[serde(default)]
    pub processes: ServiceProcesses,
}

/// `all` (the default): every matching process and the descendants of each; `tree`: the main
/// process (the oldest match) and its descendants only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceProcesses {
    #[default]
    All,
    Tree,
}

fn default_cold_start_budget() -> Duration {
    Duration::from_secs(60)
}

/// How a watched service's process is found.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawMatch")]
pub enum ProcessMatch {
    /// The basename of `/proc/PID/exe` (or `comm` when exe is unreadable).
    Exe(String),
    /// A regex over the command line, its arguments joined by spaces.
    Cmdline(Regex),
    Pidfile(PathBuf),
}

/// The TOML form of [`ProcessMatch`]: a table with exactly one key. A struct rather than an
/// enum so that a bad value (say, a bad regex) is reported at the value, not at the table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    exe: Option<String>,
    cmdline: Option<Regex>,
    pidfile: Option<PathBuf>,
}

impl TryFrom<RawMatch> for ProcessMatch {
    type Error = String;
    fn try_from(r: RawMatch) -> Result<Self, String> {
        match (r.exe, r.cmdline, r.pidfile) {
            (Some(e), None, None) => Ok(Self::Exe(e)),
            (None, Some(c), None) => Ok(Self::Cmdline(c)),
            (None, None, Some(p)) => Ok(Self::Pidfile(p)),
            _ => Err("match needs exactly one of `exe`, `cmdline`, `pidfile`".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawReady")]
pub enum ReadyProbe {
    Tcp(HostPort),
    Http(HttpUrl),
    Exec(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    tcp: Option<HostPort>,
    http: Option<HttpUrl>,
    exec: Option<Vec<String>>,
}

impl TryFrom<RawReady> for ReadyProbe {
    type Error = String;
    fn try_from(r: RawReady) -> Result<Self, String> {
        match (r.tcp, r.http, r.exec) {
            (Some(t), None, None) => Ok(Self::Tcp(t)),
            (None, Some(h), None) => Ok(Self::Http(h)),
            (None, None, Some(e)) => Ok(Self::Exec(e)),
            _ => Err("ready needs exactly one of `tcp`, `http`, `exec`".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub name: String,
    pub source: CacheSource,
    /// Blob URL; default `file://<data_dir>/blob`.
    pub blob: Option<String>,
    #[serde(default)]
    pub blob_options: BTreeMap<String, String>,
    #[serde(default = "default_check_interval")]
    pub check_interval: Duration,
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Duration,
    /// Largest document accepted, in bytes.
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    /// How long a refresh claim is honoured by others; default 3 × source timeout.
    pub claim_ttl: Option<Duration>,
    #[serde(default = "default_source_timeout")]
    pub source_timeout: Duration,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_refresh_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_max_size() -> u64 {
    256 * 1024 * 1024
}
fn default_source_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawSource")]
pub enum CacheSource {
    File {
        file: PathBuf,
    },
    Http {
        http: HttpUrl,
    },
    Command {
        command: Vec<String>,
    },
    /// Through the primary tracker of service `primary`, GET `path`.
    Primary {
        primary: String,
        path: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    file: Option<PathBuf>,
    http: Option<HttpUrl>,
    command: Option<Vec<String>>,
    primary: Option<String>,
    path: Option<String>,
}

impl TryFrom<RawSource> for CacheSource {
    type Error = String;
    fn try_from(r: RawSource) -> Result<Self, String> {
        match (r.file, r.http, r.command, r.primary, r.path) {
            (Some(file), None, None, None, None) => Ok(Self::File { file }),
            (None, Some(http), None, None, None) => Ok(Self::Http { http }),
            (None, None, Some(command), None, None) => Ok(Self::Command { command }),
            (None, None, None, Some(primary), Some(path)) if path.starts_with('/') => {
                Ok(Self::Primary { primary, path })
            }
            (None, None, None, Some(_), _) => {
                Err("source.primary needs a `path` starting with '/'".into())
            }
            _ => Err(
                "source needs exactly one of `file`, `http`, `command`, or `primary` with `path`"
                    .into(),
            ),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    pub service: String,
    pub discovery: Discovery,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    #[serde(default = "default_discovery_timeout")]
    pub discovery_timeout: Duration,
    /// How long a request may wait for a free slot before it gets 429.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Duration,
    /// Attempts for idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS), first one included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Status codes from a replica that also mean "not the primary any more".
    #[serde(default = "default_failover_statuses")]
    pub failover_statuses: Vec<u16>,
}

fn default_max_in_flight() -> usize {
    64
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_discovery_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_queue_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_max_attempts() -> u32 {
    4
}
fn default_failover_statuses() -> Vec<u16> {
    vec![421, 503]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawDiscovery")]
pub enum Discovery {
    /// Ask any of these replicas `GET /primary`.
    Http(Vec<HttpUrl>),
    /// The value of the etcd v3 election leader key.
    Etcd(EtcdDiscovery),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    http: Option<Vec<HttpUrl>>,
    etcd: Option<EtcdDiscovery>,
}

impl TryFrom<RawDiscovery> for Discovery {
    type Error = String;
    fn try_from(r: RawDiscovery) -> Result<Self, String> {
        match (r.http, r.etcd) {
            (Some(h), None) => Ok(Self::Http(h)),
            (None, Some(e)) => Ok(Self::Etcd(e)),
            _ => Err("discovery needs exactly one of `http`, `etcd`".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdDiscovery {
    pub endpoints: Vec<HttpUrl>,
    pub election: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {
    #[serde(default)]
    pub anomaly: AnomalyConfig,
    #[serde(default)]
    pub timeout: TimeoutConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_sample_hz")]
    pub sample_hz: u32,
    /// A wait with no timeout on another party that has sent nothing for this long is a
    /// missing timeout (the verdict; how long before it alerts is the alert rule's `for`).
    #[serde(default = "default_quiet_period")]
    pub quiet_period: Duration,
    /// The former hang threshold: rejected with a pointer to what replaced it.
    #[serde(default)]
    pub hang_threshold: Option<Duration>,
    /// A finite timeout above this on a wait for another party is too large.
    #[serde(default = "default_max_timeout")]
    pub max_timeout: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_hz: default_sample_hz(),
            quiet_period: default_quiet_period(),
            hang_threshold: None,
            max_timeout: default_max_timeout(),
        }
    }
}

fn default_sample_hz() -> u32 {
    10
}
fn default_quiet_period() -> Duration {
    Duration::from_secs(5)
}
fn default_max_timeout() -> Duration {
    Duration::from_secs(60)
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub alertmanager: Vec<HttpUrl>,
    #[serde(default)]
    pub runbook_base_url: String,
    #[serde(default = "default_resend")]
    pub resend_interval: Duration,
    /// Largest number of notifications kept on disk while no Alertmanager answers.
    #[serde(default = "default_spool_max")]
    pub spool_max: usize,
    #[serde(default)]
    pub rules: BTreeMap<String, AlertRuleConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            alertmanager: Vec::new(),
            runbook_base_url: String::new(),
            resend_interval: default_resend(),
            spool_max: default_spool_max(),
            rules: BTreeMap::new(),
        }
    }
}

fn default_resend() -> Duration {
    Duration::from_secs(60)
}
fn default_spool_max() -> usize {
    10_000
}

/// Per-alert overrides; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    #[serde(rename = "for")]
    pub for_: Option<Duration>,
    pub severity: Option<Severity>,
    pub enabled: Option<bool>,
    /// Rule-specific threshold (its meaning is documented per rule in the runbook).
    pub threshold: Option<f64>,
    /// How long the condition must stay false before a firing alert resolves.
    pub keep_firing_for: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

impl Config {
    /// Parse `text` read from `path`; errors carry `path:line:col`.
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, col) = line_col(text, offset);
            ConfigError::Invalid {
                path: path.to_string(),
                line,
                col,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate(path, text)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    /// The config used without `--config`: host and self monitoring, detectors and alerts.
    pub fn builtin_default() -> Self {
        Self::parse("<built-in>", "").expect("the empty config is valid")
    }

    /// Cross-field checks that serde cannot express. Errors point at the first line that
    /// mentions the offending value, which is where a person would look.
    fn validate(&self, path: &str, text: &str) -> Result<(), ConfigError> {
        let fail = |needle: &str, message: String| {
            let offset = text.find(needle).unwrap_or(0);
            let (line, col) = line_col(text, offset);
            Err(ConfigError::Invalid {
                path: path.to_string(),
                line,
                col,
                message,
            })
        };
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            if s.name.is_empty() {
                return fail("[[service]]", "service name must not be empty".into());
            }
            if !seen.insert(&s.name) {
                return fail(
                    &format!("\"{}\"", s.name),
                    format!("duplicate service name {:?}", s.name),
                );
            }
            if let ProcessMatch::Exe(e) = &s.matcher
                && e.is_empty()
            {
                return fail("exe", "match.exe must not be empty".into());
            }
            if let Some(ReadyProbe::Exec(argv)) = &s.ready
                && argv.is_empty()
            {
                return fail("exec", "ready.exec needs a command".into());
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.caches {
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return fail(
                    &format!("\"{}\"", c.name),
                    format!(
                        "cache name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                        c.name
                    ),
                );
            }
            if !seen.insert(&c.name) {
                return fail(
                    &format!("\"{}\"", c.name),
                    format!("duplicate cache name {:?}", c.name),
                );
            }
            if let CacheSource::Command { command } = &c.source
                && command.is_empty()
            {
                return fail("command", "source.command needs a program".into());
            }
            if let CacheSource::Primary { primary, .. } = &c.source
                && !self.trackers.iter().any(|t| &t.service == primary)
            {
                return fail(
                    &format!("\"{primary}\""),
                    format!("source.primary names {primary:?}, which no [[tracker]] defines"),
                );
            }
            if c.max_size == 0 {
                return fail("max_size", "max_size must be greater than zero".into());
            }
            if let Some(blob) = &c.blob
                && let Err(message) = validate_blob_url(blob)
            {
                return fail(blob, message);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.trackers {
            if !seen.insert(&t.service) {
                return fail(
                    &format!("\"{}\"", t.service),
                    format!("duplicate tracker {:?}", t.service),
                );
            }
            if t.max_in_flight == 0 {
                return fail("max_in_flight", "max_in_flight must be at least 1".into());
            }
            if t.max_attempts == 0 {
                return fail("max_attempts", "max_attempts must be at least 1".into());
            }
            match &t.discovery {
                Discovery::Http(urls) if urls.is_empty() => {
                    return fail(
                        "discovery",
                        "discovery.http needs at least one replica URL".into(),
                    );
                }
                Discovery::Etcd(e) if e.endpoints.is_empty() || e.election.is_empty() => {
                    return fail(
                        "discovery",
                        "discovery.etcd needs endpoints and an election name".into(),
                    );
                }
                _ => {}
            }
        }
        if self.detectors.timeout.hang_threshold.is_some() {
            return fail(
                "hang_threshold",
                "hang_threshold is gone: the timeout detector judges a wait after quiet_period \
                 (default 5s) of silence, and how long it may last before an alert is the `for` \
                 of [alerts.rules.TimeoutBugSuspected]"
                    .into(),
            );
        }
        if self.detectors.timeout.sample_hz == 0 || self.detectors.timeout.sample_hz > 1000 {
            return fail("sample_hz", "sample_hz must be between 1 and 1000".into());
        }
        if self.agent.history < 16 {
            return fail("history", "history must be at least 16 samples".into());
        }
        for name in self.alerts.rules.keys() {
            if !crate::alerting::names::ALL.contains(&name.as_str()) {
                return fail(
                    &format!("rules.{name}"),
                    format!("unknown alert name {name:?} in [alerts.rules]"),
                );
            }
        }
        if !self.alerts.runbook_base_url.is_empty()
            && url::Url::parse(&self.alerts.runbook_base_url).is_err()
        {
            return fail(
                "runbook_base_url",
                "runbook_base_url must be an absolute URL".into(),
            );
        }
        Ok(())
    }
}

/// Blob URL schemes the cache understands.
pub fn validate_blob_url(blob: &str) -> Result<(), String> {
    let url = url::Url::parse(blob).map_err(|e| format!("invalid blob URL {blob:?}: {e}"))?;
    match url.scheme() {
        "file" | "memory" | "az" | "azure" | "s3" | "gs" => Ok(()),
        other => Err(format!(
            "blob URL scheme {other:?} is not one of file, az, s3, gs, memory"
        )),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse("c.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn empty_is_the_default() {
        let c = Config::parse("c.toml", "").unwrap();
        assert_eq!(c.agent.listen.0, "127.0.0.1:9464");
        assert_eq!(c.agent.interval.get(), std::time::Duration::from_secs(1));
        assert!(c.detectors.anomaly.enabled);
    }

    #[test]
    fn full_example_parses() {
        let text = include_str!("../../examples/local.toml");
        Config::parse("local.toml", text).unwrap();
        let text = include_str!("../../examples/full.toml");
        Config::parse("full.toml", text).unwrap();
    }

    #[test]
    fn errors_name_line_and_column() {
        assert!(
            err("[agent]\nlisten = \"127.0.0.1:9464\"\nbogus = 1\n").starts_with("c.toml:3:1: ")
        );
        assert!(err("[agent]\ninterval = \"0s\"\n").starts_with("c.toml:2:12: "));
        let e = err("[[service]]\nname = \"a\"\nmatch = { cmdline = \"(\" }\n");
        assert!(e.starts_with("c.toml:3:21: invalid regex"), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
