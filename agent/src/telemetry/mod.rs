//! Telemetry: the one OpenTelemetry meter provider of the agent and its two exporters,
//! Prometheus text for `/metrics` (pull) and OTLP over grpc or http/protobuf (push).
//!
//! Instrument names are the Prometheus names of CONTRACT.md (OpenTelemetry semantic-convention
//! names where one exists, such as `process.thread.count`); the Prometheus exporter runs
//! without unit suffixes so that the names come out exactly as written, and adds `_total` to
//! counters, which are therefore named without it.

pub mod otlp;
pub mod resource;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
pub use otlp::OtlpTarget;
use prometheus::{Encoder, TextEncoder};
use thiserror::Error;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`unknown` outside a git checkout); see build.rs.
pub const GIT_COMMIT: &str = env!("LOOKOUT_GIT_COMMIT");

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
        let resource = resource::build(host, VERSION);
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
            let exporter = target.exporter()?;
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
