//! The OpenTelemetry resource the agent's metrics carry over OTLP (and in `target_info` on
//! `/metrics`).
//!
//! Built from the agent's own facts, then the SDK's detectors on top, so that what an
//! operator sets wins: `OTEL_RESOURCE_ATTRIBUTES` (any attribute, `service.instance.id` and
//! `host.name` included) and `OTEL_SERVICE_NAME` (which the spec ranks above a
//! `service.name` in `OTEL_RESOURCE_ATTRIBUTES`).
//!
//! `service.instance.id` is what keeps hosts apart in a backend: Prometheus' OTLP ingestion
//! turns it into `instance` (and `service.namespace/service.name` into `job`), so without it
//! every host's series would be one series. It is a UUID v5, as the semantic conventions
//! recommend, over the host name and the machine id: stable across restarts (no series churn
//! when the agent restarts), different for two hosts, even clones of one image that kept the
//! same machine id.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, SdkProvidedResourceDetector, TelemetryResourceDetector,
};

/// The namespace the semantic conventions give for `service.instance.id` UUIDs
/// (`4d63009a-8d0f-11ee-aad7-4c796ed8e320`).
const INSTANCE_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("4d63009a-8d0f-11ee-aad7-4c796ed8e320");

/// `service.instance.id` of the agent on `host` with machine id `machine_id` (empty when the
/// machine has none).
pub fn instance_id(host: &str, machine_id: &str) -> String {
    let name = format!("lookout/{host}/{}", machine_id.trim());
    uuid::Uuid::new_v5(&INSTANCE_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// `/etc/machine-id` (systemd), else dbus' copy, else empty.
fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_default()
}

/// The agent's resource: its defaults, overridden by the standard variables.
pub fn build(host: &str, version: &str) -> Resource {
    let defaults = [
        KeyValue::new("service.name", "lookout"),
        KeyValue::new("service.version", version.to_string()),
        KeyValue::new("service.instance.id", instance_id(host, &machine_id())),
        KeyValue::new("host.name", host.to_string()),
        KeyValue::new("host.arch", host_arch()),
        KeyValue::new("os.type", std::env::consts::OS),
    ];
    let mut detectors: Vec<Box<dyn ResourceDetector>> = vec![
        Box::new(TelemetryResourceDetector),
        Box::new(EnvResourceDetector::new()),
    ];
    // The SDK's service-name detector falls back on `unknown_service:<exe>`, which would
    // replace our "lookout"; run it only when the operator named the service.
    if std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty()) {
        detectors.push(Box::new(SdkProvidedResourceDetector));
    }
    Resource::builder_empty()
        .with_attributes(defaults)
        .with_detectors(&detectors)
        .build()
}

/// `host.arch` in the semantic conventions' spelling.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "arm" => "arm32",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_stable_and_differ_per_host_and_machine() {
        let a = instance_id("web-1", "0123456789abcdef0123456789abcdef");
        assert_eq!(
            a,
            instance_id("web-1", "0123456789abcdef0123456789abcdef\n")
        );
        assert_ne!(a, instance_id("web-2", "0123456789abcdef0123456789abcdef"));
        assert_ne!(a, instance_id("web-1", "fedcba9876543210fedcba9876543210"));
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 5);
    }
}
