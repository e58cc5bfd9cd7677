//! Where and how OTLP goes: the target resolved from `[export.otlp]` and the standard
//! `OTEL_EXPORTER_OTLP_*` variables, and the exporter built for it.
//!
//! Resolution follows the OTLP exporter specification
//! (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>), config first as the spec
//! ranks programmatic settings above the environment:
//! - endpoint: `export.otlp.endpoint`, else `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (used as
//!   is), else `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL: for http/protobuf `v1/metrics` is
//!   appended to whatever path it has), else `http://127.0.0.1:4317` / `:4318/v1/metrics`.
//!   A config endpoint without a path is a base URL too; one with a path is used as is.
//!   grpc ignores paths (the method path comes from the service definition).
//! - protocol: `export.otlp.protocol`, else `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else
//!   `OTEL_EXPORTER_OTLP_PROTOCOL`, else grpc with a config table and http/protobuf (the
//!   spec's default) when only the environment asks for OTLP.
//! - compression: `export.otlp.compression`, else `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION`,
//!   else `OTEL_EXPORTER_OTLP_COMPRESSION`, else gzip. The spec leaves the default to the
//!   exporter; metric batches shrink several times and every receiver that matters (the
//!   Collector, Prometheus' OTLP endpoint) accepts gzip.
//! - TLS for `https://` endpoints (rustls; ring for grpc): the CA file of
//!   `export.otlp.certificate`, `OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE` or
//!   `OTEL_EXPORTER_OTLP_CERTIFICATE`, else the system's trust store; a client certificate
//!   for mutual TLS from `OTEL_EXPORTER_OTLP[_METRICS]_CLIENT_CERTIFICATE` and `_CLIENT_KEY`.
//! - interval: `export.otlp.interval` (default 15 s); with no config table,
//!   `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) or 15 s.
//! - headers and timeout: `OTEL_EXPORTER_OTLP[_METRICS]_HEADERS` and `_TIMEOUT`, read by
//!   opentelemetry-otlp itself.
//!
//! Invalid environment values are warned about and ignored, as the spec asks; invalid config
//! values never get here (the config loader rejects them with their position).

use super::TelemetryError;
use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use std::path::PathBuf;
use std::time::Duration;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where OTLP goes, resolved from config and the standard environment variables.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpTarget {
    /// The URL the exporter sends to: for http/protobuf the full URL of the metrics path.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub interval: Duration,
    pub gzip: bool,
    pub tls: TlsFiles,
}

/// PEM files for TLS; all empty = the system's trust store, no client certificate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// The environment, as a function so that tests need not touch the process' variables.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, key: &str) -> Option<String> {
        self(key)
    }
}

/// The first non-empty of the metrics-specific and the generic variable `OTEL_EXPORTER_OTLP_<suffix>`.
fn env_pair(env: &dyn Env, suffix: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_METRICS_{suffix}"),
        format!("OTEL_EXPORTER_OTLP_{suffix}"),
    ]
    .into_iter()
    .find_map(|k| {
        env.get(&k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| (k, v))
    })
}

impl OtlpTarget {
    /// `None` when neither the config nor the environment asks for OTLP.
    pub fn resolve(config: Option<&OtlpConfig>) -> Option<Self> {
        Self::resolve_with(config, &ProcessEnv)
    }

    pub fn resolve_with(config: Option<&OtlpConfig>, env: &dyn Env) -> Option<Self> {
        let env_protocol = env_pair(env, "PROTOCOL").and_then(|(k, v)| match v.as_str() {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            _ => {
                tracing::warn!(variable = %k, value = %v, "unsupported OTLP protocol (use grpc or http/protobuf); ignored");
                None
            }
        });
        let protocol = match config {
            Some(c) => c.protocol.or(env_protocol).unwrap_or(OtlpProtocol::Grpc),
            None => env_protocol.unwrap_or(OtlpProtocol::HttpProtobuf),
        };
        let endpoint = match config.and_then(|c| c.endpoint.as_ref()) {
            Some(url) => Some(config_endpoint(url.as_str(), protocol)),
            None => env_endpoint(env, protocol),
        };
        if config.is_none() && endpoint.is_none() {
            return None;
        }
        let endpoint = endpoint.unwrap_or_else(|| match protocol {
            OtlpProtocol::Grpc => "http://127.0.0.1:4317".into(),
            OtlpProtocol::HttpProtobuf => "http://127.0.0.1:4318/v1/metrics".into(),
        });
        let compression = config.and_then(|c| c.compression).or_else(|| {
            env_pair(env, "COMPRESSION").and_then(|(k, v)| match v.as_str() {
                "gzip" => Some(OtlpCompression::Gzip),
                "none" => Some(OtlpCompression::None),
                _ => {
                    tracing::warn!(variable = %k, value = %v, "unsupported OTLP compression (use gzip or none); ignored");
                    None
                }
            })
        });
        let path = |suffix: &str| env_pair(env, suffix).map(|(_, v)| PathBuf::from(v));
        let tls = TlsFiles {
            ca: config
                .and_then(|c| c.certificate.clone())
                .or_else(|| path("CERTIFICATE")),
            client_cert: path("CLIENT_CERTIFICATE"),
            client_key: path("CLIENT_KEY"),
        };
        Some(Self {
            endpoint,
            protocol,
            interval: match config {
                Some(c) => c.interval.get(),
                None => env_interval(env).unwrap_or(Duration::from_secs(15)),
            },
            gzip: compression != Some(OtlpCompression::None),
            tls,
        })
    }

    /// The exporter for this target. Reads the TLS files; must run inside a tokio runtime.
    pub fn exporter(&self) -> Result<opentelemetry_otlp::MetricExporter, TelemetryError> {
        let tls = self.tls.load()?;
        let built = match self.protocol {
            OtlpProtocol::Grpc => {
                let mut b = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(self.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT);
                if self.gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                if self.endpoint.starts_with("https://") {
                    b = b.with_tls_config(tls.tonic());
                }
                b.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(tls.reqwest()?)
                    .with_endpoint(self.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT);
                if self.gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build()
            }
        };
        built.map_err(|e| TelemetryError::Otlp(e.to_string()))
    }
}

/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds), for an OTLP set up by the environment alone.
fn env_interval(env: &dyn Env) -> Option<Duration> {
    let v = env.get("OTEL_METRIC_EXPORT_INTERVAL")?;
    match v.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => {
            tracing::warn!(variable = "OTEL_METRIC_EXPORT_INTERVAL", value = %v, "not a positive number of milliseconds; ignored");
            None
        }
    }
}

/// A config endpoint: a URL without a path is the collector's base URL.
fn config_endpoint(url: &str, protocol: OtlpProtocol) -> String {
    let trimmed = url.trim_end_matches('/');
    match (protocol, url::Url::parse(url)) {
        (OtlpProtocol::HttpProtobuf, Ok(u)) if u.path() == "/" || u.path().is_empty() => {
            format!("{trimmed}/v1/metrics")
        }
        _ => trimmed.to_string(),
    }
}

fn env_endpoint(env: &dyn Env, protocol: OtlpProtocol) -> Option<String> {
    let valid = |k: &str| {
        let v = env
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())?;
        match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(v),
            _ => {
                tracing::warn!(variable = k, value = %lookout_common::redact_url(&v), "not an http(s) URL; ignored");
                None
            }
        }
    };
    if let Some(v) = valid("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        return Some(v);
    }
    let base = valid("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    Some(match protocol {
        OtlpProtocol::Grpc => base,
        OtlpProtocol::HttpProtobuf => append_path(&base, "v1/metrics"),
    })
}

/// `base` with `/v1/metrics` after its path (query and fragment kept where they were).
fn append_path(base: &str, signal_path: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            let path = format!("{}/{signal_path}", u.path().trim_end_matches('/'));
            u.set_path(&path);
            u.to_string()
        }
        Err(_) => format!("{}/{signal_path}", base.trim_end_matches('/')),
    }
}

/// The contents of the TLS files.
struct TlsPem {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    fn load(&self) -> Result<TlsPem, TelemetryError> {
        let read = |what: &str, p: &PathBuf| {
            std::fs::read(p).map_err(|e| {
                TelemetryError::Otlp(format!("cannot read the OTLP {what} {}: {e}", p.display()))
            })
        };
        let ca = self
            .ca
            .as_ref()
            .map(|p| read("CA certificate", p))
            .transpose()?;
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => Some((read("client certificate", c)?, read("client key", k)?)),
            (None, None) => None,
            _ => {
                return Err(TelemetryError::Otlp(
                    "OTLP mutual TLS needs both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY".into(),
                ));
            }
        };
        Ok(TlsPem { ca, identity })
    }
}

impl TlsPem {
    /// tonic's TLS (rustls with ring): the given CA only, else the system's roots.
    fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        tls = match &self.ca {
            Some(pem) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        tls
    }

    /// The HTTP client of the http/protobuf exporter: the given CA only, else the system's.
    fn reqwest(&self) -> Result<reqwest::Client, TelemetryError> {
        let bad = |what: &str, e: reqwest::Error| TelemetryError::Otlp(format!("OTLP {what}: {e}"));
        lookout_common::install_tls_provider();
        let mut b = reqwest::Client::builder();
        if let Some(pem) = &self.ca {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| bad("CA certificate", e))?;
            b = b.tls_certs_only(certs);
        }
        if let Some((cert, key)) = &self.identity {
            let mut pem = key.clone();
            pem.push(b'\n');
            pem.extend_from_slice(cert);
            b = b.identity(
                reqwest::Identity::from_pem(&pem).map_err(|e| bad("client certificate", e))?,
            );
        }
        b.build().map_err(|e| bad("HTTP client", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn config(toml_text: &str) -> OtlpConfig {
        toml::from_str(toml_text).expect("valid [export.otlp]")
    }

    #[test]
    fn nothing_configured_means_no_otlp() {
        assert_eq!(OtlpTarget::resolve_with(None, &env(&[])), None);
    }

    #[test]
    fn the_generic_variable_is_a_base_url_and_gets_the_signal_path() {
        let t = OtlpTarget::resolve_with(
            None,
            &env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector:4318/otlp/",
            )]),
        )
        .unwrap();
        assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.endpoint, "https://collector:4318/otlp/v1/metrics");
        let t = OtlpTarget::resolve_with(
            None,
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
        )
        .unwrap();
        assert_eq!(t.endpoint, "http://collector:4318/v1/metrics");
        assert_eq!(t.interval, Duration::from_secs(15));
        let t = OtlpTarget::resolve_with(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ]),
        )
        .unwrap();
        assert_eq!(t.interval, Duration::from_millis(1500));
    }

    #[test]
    fn the_metrics_variable_is_used_as_is() {
        let t = OtlpTarget::resolve_with(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "http://c:9999/custom",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(t.endpoint, "http://c:9999/custom");
    }

    #[test]
    fn grpc_keeps_the_endpoint_whole() {
        let t = OtlpTarget::resolve_with(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]),
        )
        .unwrap();
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.endpoint, "https://collector:4317");
    }

    #[test]
    fn a_config_endpoint_without_a_path_is_a_base_url_and_with_one_is_whole() {
        let c = config("endpoint = \"http://127.0.0.1:4318\"\nprotocol = \"http/protobuf\"");
        let t = OtlpTarget::resolve_with(Some(&c), &env(&[])).unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:4318/v1/metrics");
        let c = config("endpoint = \"http://127.0.0.1:4318/ingest\"\nprotocol = \"http/protobuf\"");
        let t = OtlpTarget::resolve_with(Some(&c), &env(&[])).unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:4318/ingest");
        let c = config("endpoint = \"http://127.0.0.1:4317\"");
        let t = OtlpTarget::resolve_with(Some(&c), &env(&[])).unwrap();
        assert_eq!(
            (t.protocol, t.endpoint.as_str()),
            (OtlpProtocol::Grpc, "http://127.0.0.1:4317")
        );
    }

    #[test]
    fn config_wins_over_the_environment() {
        let c = config(
            "endpoint = \"http://a:4317\"\nprotocol = \"grpc\"\ncompression = \"none\"\ncertificate = \"/etc/ca.pem\"",
        );
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/other.pem"),
        ]);
        let t = OtlpTarget::resolve_with(Some(&c), &e).unwrap();
        assert_eq!(t.endpoint, "http://a:4317");
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert!(!t.gzip);
        assert_eq!(t.tls.ca, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn gzip_by_default_and_none_from_the_environment() {
        let c = config("");
        assert!(OtlpTarget::resolve_with(Some(&c), &env(&[])).unwrap().gzip);
        let t = OtlpTarget::resolve_with(
            Some(&c),
            &env(&[("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none")]),
        )
        .unwrap();
        assert!(!t.gzip);
        // Unknown values are ignored (the spec: warn, keep the default).
        let t = OtlpTarget::resolve_with(
            Some(&c),
            &env(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")]),
        )
        .unwrap();
        assert!(t.gzip);
    }

    #[test]
    fn bad_environment_values_are_ignored() {
        let t = OtlpTarget::resolve_with(
            Some(&config("")),
            &env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ]),
        )
        .unwrap();
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.endpoint, "http://127.0.0.1:4317");
        // Only a bad endpoint in the environment, no config: no OTLP at all.
        assert_eq!(
            OtlpTarget::resolve_with(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "nope")])),
            None
        );
    }

    #[test]
    fn tls_files_come_from_the_standard_variables() {
        let t = OtlpTarget::resolve_with(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
                ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", "/me.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/me.key"),
            ]),
        )
        .unwrap();
        assert_eq!(
            t.tls,
            TlsFiles {
                ca: Some("/ca.pem".into()),
                client_cert: Some("/me.pem".into()),
                client_key: Some("/me.key".into()),
            }
        );
    }

    #[test]
    fn a_half_configured_client_certificate_is_an_error() {
        let files = TlsFiles {
            ca: None,
            client_cert: Some("/me.pem".into()),
            client_key: None,
        };
        let err = files.load().err().expect("an error");
        assert!(err.to_string().contains("CLIENT_KEY"), "{err}");
    }
}
