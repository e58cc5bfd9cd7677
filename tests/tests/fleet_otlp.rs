//! OTLP a backend can use (issue 17): the built agent exporting over TLS into real receivers
//! (tonic's gRPC server and an HTTP server over rustls) with a certificate of a throwaway CA;
//! the resource carries `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME` and a
//! `service.instance.id` that tells two hosts apart; bodies are gzip-compressed; an endpoint
//! from `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/metrics`; an unknown CA gets nothing through.

use lookout_e2e::otlp::{Receiver, ServerTls};
use lookout_e2e::tls::TestCa;
use lookout_e2e::{Agent, free_port, wait_for};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::BTreeMap;
use std::time::Duration;

fn server_tls(ca: &TestCa) -> ServerTls {
    ServerTls {
        cert_pem: ca.server_cert(),
        key_pem: ca.server_key(),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

/// Every distinct resource the receiver saw, by `host.name`.
fn resources_by_host(receiver: &Receiver) -> BTreeMap<String, BTreeMap<String, String>> {
    receiver
        .received
        .all()
        .iter()
        .flat_map(|r| r.resource_metrics.iter())
        .filter_map(|rm| {
            rm.resource
                .as_ref()
                .map(|r: &Resource| attrs(&r.attributes))
        })
        .filter_map(|a| Some((a.get("host.name")?.clone(), a)))
        .collect()
}

/// An agent on `host` whose config is `extra` below its `[agent]` table.
fn agent_on(host: &str, extra: &str, env: &[(&str, &str)]) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"{host}\"\n\n{extra}",
        dir.path().join("data").display()
    );
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, config).unwrap();
    Agent::spawn(dir, port, path, env)
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn grpc_over_tls_carries_the_standard_resource_and_tells_two_hosts_apart() {
    let ca = TestCa::new();
    let receiver = Receiver::grpc_tls(server_tls(&ca));
    let otlp = format!(
        "[export.otlp]\nendpoint = \"https://localhost:{}\"\nprotocol = \"grpc\"\ninterval = \"1s\"\ncertificate = \"{}\"\n",
        receiver.port,
        ca.ca_pem().display()
    );
    let env = [(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment.name=staging,service.namespace=fleet",
    )];
    let a = agent_on("web-1", &otlp, &env);
    let b = agent_on("web-2", &otlp, &env);
    let seen = wait_for(
        "exports from both agents over TLS",
        Duration::from_secs(30),
        || {
            let r = resources_by_host(&receiver);
            (r.contains_key("web-1") && r.contains_key("web-2")).then_some(r)
        },
    );
    for (host, res) in &seen {
        let agent = if host == "web-1" { &a } else { &b };
        assert_eq!(
            res.get("service.name").map(String::as_str),
            Some("lookout"),
            "{res:?}"
        );
        assert_eq!(
            res.get("deployment.environment.name").map(String::as_str),
            Some("staging"),
            "OTEL_RESOURCE_ATTRIBUTES missing on {host}: {res:?}\n{}",
            agent.log()
        );
        assert_eq!(
            res.get("service.namespace").map(String::as_str),
            Some("fleet")
        );
        assert!(res.contains_key("service.version"), "{res:?}");
        assert!(
            res.contains_key("telemetry.sdk.name"),
            "SDK detector missing: {res:?}"
        );
        let id = res.get("service.instance.id").expect("service.instance.id");
        assert!(is_uuid(id), "service.instance.id {id:?} is not a UUID");
    }
    assert_ne!(
        seen["web-1"]["service.instance.id"], seen["web-2"]["service.instance.id"],
        "two hosts, one service.instance.id: their series would collide"
    );
    assert_ne!(seen["web-1"], seen["web-2"]);
    let encodings = receiver.received.encodings();
    assert!(
        !encodings.is_empty() && encodings.iter().all(|e| e == "gzip"),
        "exports not gzip-compressed: {encodings:?}"
    );

    // Stable across a restart: the same host keeps its instance id (no series churn).
    let first_id = seen["web-1"]["service.instance.id"].clone();
    drop(a);
    let before = receiver.received.count();
    let _a2 = agent_on("web-1", &otlp, &env);
    wait_for("exports after the restart", Duration::from_secs(30), || {
        (receiver.received.count() >= before + 4).then_some(())
    });
    let ids: Vec<String> = receiver.received.all()[before..]
        .iter()
        .flat_map(|r| r.resource_metrics.iter())
        .filter_map(|rm| rm.resource.as_ref().map(|r| attrs(&r.attributes)))
        .filter(|a| a.get("host.name").map(String::as_str) == Some("web-1"))
        .filter_map(|a| a.get("service.instance.id").cloned())
        .collect();
    assert!(!ids.is_empty(), "no export from the restarted agent");
    assert!(
        ids.iter().all(|id| *id == first_id),
        "{ids:?} vs {first_id}"
    );
}

#[test]
fn http_protobuf_over_tls_from_the_environment_alone() {
    let ca = TestCa::new();
    let receiver = Receiver::http_tls(server_tls(&ca));
    let endpoint = format!("https://localhost:{}", receiver.port);
    let ca_path = ca.ca_pem().display().to_string();
    // No [export.otlp] at all: the standard variables alone. The base URL has no path: the
    // receiver only answers /v1/metrics, so only a spec-conformant path gets through.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_path.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ("OTEL_SERVICE_NAME", "edge-agent"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=overridden,team=sre",
        ),
    ];
    let agent = agent_on("edge-1", "", &env);
    let seen = wait_for("an export over https", Duration::from_secs(30), || {
        resources_by_host(&receiver).remove("edge-1")
    });
    assert_eq!(
        seen.get("service.name").map(String::as_str),
        Some("edge-agent"),
        "OTEL_SERVICE_NAME must win over OTEL_RESOURCE_ATTRIBUTES: {seen:?}\n{}",
        agent.log()
    );
    assert_eq!(seen.get("team").map(String::as_str), Some("sre"));
    assert!(
        seen.get("service.instance.id")
            .is_some_and(|id| is_uuid(id))
    );
    let encodings = receiver.received.encodings();
    assert!(encodings.iter().all(|e| e == "gzip"), "{encodings:?}");
}

#[test]
fn a_collector_with_an_unknown_ca_gets_nothing() {
    let ca = TestCa::new();
    let receiver = Receiver::grpc_tls(server_tls(&ca));
    // No certificate: the system's trust store, which does not know the test CA.
    let otlp = format!(
        "[export.otlp]\nendpoint = \"https://localhost:{}\"\nprotocol = \"grpc\"\ninterval = \"500ms\"\n",
        receiver.port
    );
    let agent = agent_on("web-3", &otlp, &[]);
    agent.wait_ready(Duration::from_secs(20));
    // Six export periods: a verifying client never completes a handshake.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        receiver.received.count(),
        0,
        "an unverified server received exports\n{}",
        agent.log()
    );
    assert!(agent.get("/healthz").is_some_and(|(s, _)| s == 200));
}
