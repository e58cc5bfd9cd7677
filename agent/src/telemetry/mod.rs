//! Telemetry: the one OpenTelemetry meter provider of the agent and its two exporters,
//! Prometheus text for `/metrics` (pull) and OTLP over grpc or http/protobuf (push).
//!
//! Instrument names are the Prometheus names of CONTRACT.md (OpenTelemetry semantic-convention
//! names where one exists, such as `process.thread.count`); the Prometheus exporter runs
//! without unit suffixes so that the names come out exactly as written, and adds `_total` to
//! counters, which are therefore named without it.

use crate::config::{OtlpConfig, OtlpProtocol};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};
use thiserror::Error;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Histogram buckets for latencies in seconds, 100 µs to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets for start-up times in seconds, 50 ms to 30 min.
pub const STARTUP_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
    1800.0,
];

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("prometheus exporter: {0}")]
    Prometheus(String),
    #[error("OTLP exporter: {0}")]
    Otlp(String),
}

/// Where OTLP goes, resolved from config and the standard environment variables.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpTarget {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub interval: std::time::Duration,
}

impl OtlpTarget {
    /// Config first, then `OTEL_EXPORTER_OTLP_*`; `None` when neither asks for OTLP.
    pub fn resolve(config: Option<&OtlpConfig>) -> Option<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let env_protocol = env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .and_then(|p| match p.trim() {
                "grpc" => Some(OtlpProtocol::Grpc),
                "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
                _ => None,
            });
        let env_endpoint = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let (endpoint, protocol, interval) = match config {
            Some(c) => (
                c.endpoint
                    .as_ref()
                    .map(|u| u.as_str().to_string())
                    .or(env_endpoint),
                c.protocol.or(env_protocol).unwrap_or(OtlpProtocol::Grpc),
                c.interval.get(),
            ),
            None => (
                env_endpoint.clone(),
                env_protocol.unwrap_or(OtlpProtocol::HttpProtobuf),
                std::time::Duration::from_secs(15),
            ),
        };
        if config.is_none() && endpoint.is_none() {
            return None;
        }
        let endpoint = endpoint.unwrap_or_else(|| match protocol {
            OtlpProtocol::Grpc => "http://127.0.0.1:4317".into(),
            OtlpProtocol::HttpProtobuf => "http://127.0.0.1:4318".into(),
        });
        Some(Self {
            endpoint,
            protocol,
            interval,
        })
    }

    /// The URL the http/protobuf exporter posts to: a bare base gets `/v1/metrics`.
    fn http_url(&self) -> String {
        let trimmed = self.endpoint.trim_end_matches('/');
        match url::Url::parse(trimmed) {
            Ok(u) if u.path() == "/" || u.path().is_empty() => format!("{trimmed}/v1/metrics"),
            _ => trimmed.to_string(),
        }
    }
}

/// Label sets an instrument may have before the SDK folds new ones into one
/// `otel.metric.overflow` series. The SDK sizes each instrument's table for its limit up front
/// (about 70 bytes per label set, per reader): its default of 2000 costs ~135 KiB per
/// instrument, most of a small agent's heap, for instruments whose label sets are the watched
/// services. 512 covers far more services than one host runs.
pub const LABEL_SETS_PER_INSTRUMENT: usize = 512;

/// The instruments whose label sets are not bounded by the number of services.
fn label_set_limit(
    instrument: &opentelemetry_sdk::metrics::Instrument,
) -> Option<opentelemetry_sdk::metrics::Stream> {
    let limit = match instrument.name() {
        // One series per scored metric, capped by the scorer itself.
        "lookout_anomaly_score" => crate::anomaly::MAX_SERIES,
        // Services × blocking calls × finite/infinite.
        "lookout_blocked_threads" => 4 * LABEL_SETS_PER_INSTRUMENT,
        _ => LABEL_SETS_PER_INSTRUMENT,
    };
    opentelemetry_sdk::metrics::Stream::builder()
        .with_cardinality_limit(limit)
        .build()
        .ok()
}

/// The meter provider and the Prometheus registry that `/metrics` encodes.
pub struct Telemetry {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    meter: Meter,
    pub otlp: Option<OtlpTarget>,
}

impl Telemetry {
    /// Build the provider. Must run inside a tokio runtime when OTLP is on.
    pub fn new(host: &str, otlp: Option<OtlpTarget>) -> Result<Self, TelemetryError> {
        let resource = Resource::builder_empty()
            .with_service_name("lookout")
            .with_attributes([
                KeyValue::new("service.version", VERSION),
                KeyValue::new("host.name", host.to_string()),
            ])
            .build();
        let registry = prometheus::Registry::new();
        let prom = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_view(label_set_limit)
            .with_reader(prom);
        if let Some(target) = &otlp {
            let exporter = match target.protocol {
                OtlpProtocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(target.endpoint.clone())
                    .with_timeout(std::time::Duration::from_secs(5))
                    .build(),
                OtlpProtocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(reqwest::Client::new())
                    .with_endpoint(target.http_url())
                    .with_timeout(std::time::Duration::from_secs(5))
                    .build(),
            }
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
            let reader = opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .with_interval(target.interval)
            .build();
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("lookout");
        Ok(Self {
            provider,
            registry,
            meter,
            otlp,
        })
    }

    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }

    /// The Prometheus text exposition of every instrument.
    pub fn encode_prometheus(&self) -> Vec<u8> {
        let families = self.registry.gather();
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "encoding /metrics failed");
        }
        out
    }

    /// Push what is pending over OTLP; used on shutdown.
    pub fn flush(&self) {
        if self.otlp.is_some()
            && let Err(e) = self.provider.force_flush()
        {
            tracing::warn!(error = %e, "final OTLP flush failed");
        }
    }

    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "meter provider shutdown");
        }
    }
}
