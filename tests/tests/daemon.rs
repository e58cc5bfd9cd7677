//! End-to-end tests of the daemon (issue: the lookout daemon): the built binary watching real
//! child processes, scraped by a real Prometheus, exporting OTLP to real receivers, rejecting
//! bad configs with exact messages, and handling SIGTERM and SIGHUP.

use lookout_e2e::otlp::Receiver;
use lookout_e2e::prometheus::Prometheus;
use lookout_e2e::{
    Agent, KillOnDrop, free_port, lookout_bin, metric_value, spawn_test_child, wait_for,
};
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = env!("CARGO_BIN_EXE_lookout-test-child");

fn spawn_child(threads: usize, ready_after: f64, port: u16) -> KillOnDrop {
    spawn_test_child(CHILD, threads, ready_after, port)
}

fn service_toml(name: &str, port: u16, expected: u64) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nmatch = {{ cmdline = 'lookout-test-child .*--port {port}$' }}\nready = {{ tcp = \"127.0.0.1:{port}\" }}\nexpected_max_threads = {expected}\ncold_start_budget = \"30s\"\n"
    )
}

/// Histogram count and sum of the cold start of `service`.
fn cold_start(agent: &Agent, service: &str) -> (f64, f64) {
    let text = agent.metrics();
    let l = [("service", service)];
    (
        metric_value(&text, "lookout_service_cold_start_seconds_count", &l).unwrap_or(0.0),
        metric_value(&text, "lookout_service_cold_start_seconds_sum", &l).unwrap_or(0.0),
    )
}

#[test]
fn watches_threads_cold_start_and_restarts_of_a_real_process() {
    let port = free_port();
    let agent = Agent::start(&service_toml("child", port, 100));
    agent.wait_ready(Duration::from_secs(20));
    assert_eq!(
        agent.metric("lookout_service_up", &[("service", "child")]),
        Some(0.0)
    );

    // 7 parked threads + the main thread.
    let delay = 2.0;
    let started = Instant::now();
    let child = spawn_child(7, delay, port);

    // While it starts, initializing seconds are visible and rising.
    let first = wait_for("initializing > 0", Duration::from_secs(10), || {
        agent
            .metric(
                "lookout_service_initializing_seconds",
                &[("service", "child")],
            )
            .filter(|v| *v > 0.0)
    });
    std::thread::sleep(Duration::from_millis(600));
    let second = agent
        .metric(
            "lookout_service_initializing_seconds",
            &[("service", "child")],
        )
        .unwrap();
    assert!(
        second > first || cold_start(&agent, "child").0 >= 1.0,
        "initializing did not rise: {first} then {second}"
    );

    let (count, sum) = wait_for("first cold start", Duration::from_secs(15), || {
        let (c, s) = cold_start(&agent, "child");
        (c >= 1.0).then_some((c, s))
    });
    assert_eq!(count, 1.0);
    assert!(
        (sum - delay).abs() <= 0.5,
        "cold start {sum} s, expected {delay} ± 0.5 s"
    );
    assert!(started.elapsed().as_secs_f64() >= delay);
    assert_eq!(
        agent.metric(
            "lookout_service_initializing_seconds",
            &[("service", "child")]
        ),
        Some(0.0)
    );
    let threads = wait_for("thread count", Duration::from_secs(5), || {
        agent.metric("process_thread_count", &[("service", "child")])
    });
    assert_eq!(threads, 8.0);
    assert_eq!(
        agent.metric(
            "lookout_service_thread_limit",
            &[("service", "child"), ("kind", "expected")]
        ),
        Some(100.0)
    );

    // Kill it: reported absent, not stale.
    drop(child);
    wait_for("service reported down", Duration::from_secs(10), || {
        let text = agent.metrics();
        (metric_value(&text, "lookout_service_up", &[("service", "child")]) == Some(0.0)
            && metric_value(&text, "process_thread_count", &[("service", "child")]).is_none())
        .then_some(())
    });

    // Restart with another delay and thread count: a second observation.
    let delay2 = 1.5;
    let _child2 = spawn_child(3, delay2, port);
    wait_for("initializing rises again", Duration::from_secs(10), || {
        agent
            .metric(
                "lookout_service_initializing_seconds",
                &[("service", "child")],
            )
            .filter(|v| *v > 0.0)
    });
    let (count, sum2) = wait_for("second cold start", Duration::from_secs(15), || {
        let (c, s) = cold_start(&agent, "child");
        (c >= 2.0).then_some((c, s))
    });
    assert_eq!(count, 2.0);
    let second_observation = sum2 - sum;
    assert!(
        (second_observation - delay2).abs() <= 0.5,
        "second cold start {second_observation} s, expected {delay2} ± 0.5 s"
    );
    let threads = wait_for("thread count after restart", Duration::from_secs(5), || {
        agent
            .metric("process_thread_count", &[("service", "child")])
            .filter(|v| *v == 4.0)
    });
    assert_eq!(threads, 4.0);
    assert!(
        agent
            .metric("lookout_service_restarts_total", &[("service", "child")])
            .unwrap_or(0.0)
            >= 1.0
    );
}

#[test]
fn real_prometheus_scrapes_the_agent() {
    let port = free_port();
    let _child = spawn_child(5, 0.0, port);
    let agent = Agent::start(&service_toml("scraped", port, 50));
    agent.wait_ready(Duration::from_secs(20));
    let prom = Prometheus::start(&[format!("127.0.0.1:{}", agent.port)]);
    let threads = wait_for(
        "prometheus has process_thread_count",
        Duration::from_secs(30),
        || prom.query_value("process_thread_count{service=\"scraped\"}"),
    );
    assert_eq!(threads, 6.0);
    let up = wait_for("up", Duration::from_secs(10), || {
        prom.query_value("up{job=\"lookout\"}")
    });
    assert_eq!(up, 1.0);
    let limit = prom
        .query_value("system_thread_limit{kind=\"threads_max\"}")
        .expect("system_thread_limit");
    let expected: f64 = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limit, expected);
    assert!(prom.query_value("system_thread_count").unwrap() > 10.0);
    assert_eq!(prom.query_value("lookout_build_info").unwrap(), 1.0);
    assert!(
        prom.query_value("lookout_agent_cold_start_seconds")
            .unwrap()
            > 0.0
    );
}

fn attr<'a>(
    attrs: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<&'a str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn check_otlp(receiver: &Receiver) {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let reqs = receiver.received.all();
    let rm = reqs
        .iter()
        .flat_map(|r| r.resource_metrics.iter())
        .last()
        .expect("resource metrics");
    let res = rm.resource.as_ref().expect("resource");
    assert_eq!(attr(&res.attributes, "service.name"), Some("lookout"));
    assert_eq!(attr(&res.attributes, "host.name"), Some("test-host"));
    assert!(attr(&res.attributes, "service.version").is_some());
    let metrics: Vec<_> = rm
        .scope_metrics
        .iter()
        .flat_map(|s| s.metrics.iter())
        .collect();
    let threads = metrics
        .iter()
        .find(|m| m.name == "process.thread.count")
        .expect("process.thread.count exported");
    assert_eq!(threads.unit, "{thread}");
    let Some(Data::Gauge(g)) = &threads.data else {
        panic!("process.thread.count is not a gauge")
    };
    let point = g
        .data_points
        .iter()
        .find(|p| attr(&p.attributes, "service") == Some("otlp"))
        .expect("a point for service=otlp");
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    assert_eq!(point.value, Some(Value::AsDouble(3.0)));
    let cold = metrics
        .iter()
        .find(|m| m.name == "lookout_service_cold_start_seconds")
        .expect("cold start histogram exported");
    assert_eq!(cold.unit, "s");
    assert!(matches!(cold.data, Some(Data::Histogram(_))));
    for name in [
        "system_thread_count",
        "system_thread_limit",
        "lookout_agent_cold_start_seconds",
    ] {
        assert!(
            metrics.iter().any(|m| m.name == name),
            "{name} missing from OTLP"
        );
    }
}

fn otlp_roundtrip(receiver: Receiver, protocol: &str) {
    let port = free_port();
    let _child = spawn_child(2, 0.2, port);
    let extra = format!(
        "[export.otlp]\nendpoint = \"http://127.0.0.1:{}\"\nprotocol = \"{protocol}\"\ninterval = \"1s\"\n\n{}",
        receiver.port,
        service_toml("otlp", port, 10)
    );
    let agent = Agent::start(&extra);
    agent.wait_ready(Duration::from_secs(20));
    wait_for("cold start observed", Duration::from_secs(10), || {
        (cold_start(&agent, "otlp").0 >= 1.0).then_some(())
    });
    let before = receiver.received.count();
    wait_for("two more OTLP exports", Duration::from_secs(20), || {
        (receiver.received.count() >= before + 2).then_some(())
    });
    check_otlp(&receiver);
}

#[test]
fn otlp_over_grpc_reaches_a_real_receiver() {
    otlp_roundtrip(Receiver::grpc(), "grpc");
}

#[test]
fn otlp_over_http_protobuf_reaches_a_real_receiver() {
    otlp_roundtrip(Receiver::http(), "http/protobuf");
}

#[test]
fn sigterm_exits_zero_within_five_seconds_after_a_final_otlp_flush() {
    let receiver = Receiver::grpc();
    // An hour-long push interval: only the final flush can deliver.
    let extra = format!(
        "[export.otlp]\nendpoint = \"http://127.0.0.1:{}\"\nprotocol = \"grpc\"\ninterval = \"1h\"\n",
        receiver.port
    );
    let mut agent = Agent::start(&extra);
    agent.wait_ready(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let before = receiver.received.count();
    let sent = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = wait_for("agent exit", Duration::from_secs(10), || {
        agent.child.try_wait().unwrap()
    });
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status:?}\n{}", agent.log());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        receiver.received.count() > before,
        "no OTLP export received on shutdown\n{}",
        agent.log()
    );
}

#[test]
fn sighup_with_a_bad_file_keeps_the_old_config_and_a_good_one_applies() {
    let port_a = free_port();
    let port_b = free_port();
    let _a = spawn_child(1, 0.0, port_a);
    let _b = spawn_child(2, 0.0, port_b);
    let agent = Agent::start(&service_toml("alpha", port_a, 10));
    agent.wait_ready(Duration::from_secs(20));
    wait_for("alpha watched", Duration::from_secs(10), || {
        agent.metric("process_thread_count", &[("service", "alpha")])
    });
    let head = std::fs::read_to_string(&agent.config_path).unwrap();
    let agent_table: String = head.split("[[service]]").next().unwrap().to_string();

    agent.rewrite_config(&format!(
        "{agent_table}[[service]]\nname = \"beta\"\nbogus_key = 1\n"
    ));
    agent.signal(libc::SIGHUP);
    wait_for(
        "reload rejected in the log",
        Duration::from_secs(10),
        || agent.log().contains("config reload rejected").then_some(()),
    );
    let line = agent
        .log()
        .lines()
        .find(|l| l.contains("config reload rejected"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("lookout.toml:"),
        "the log line names the file: {line}"
    );
    assert!(
        line.contains("bogus_key"),
        "the log line names the key: {line}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        agent.metric("process_thread_count", &[("service", "alpha")]),
        Some(2.0)
    );
    assert!(agent.child.id() > 0);

    agent.rewrite_config(&format!(
        "{agent_table}{}",
        service_toml("beta", port_b, 10)
    ));
    agent.signal(libc::SIGHUP);
    wait_for("beta watched after reload", Duration::from_secs(10), || {
        agent.metric("process_thread_count", &[("service", "beta")])
    });
    wait_for("alpha forgotten", Duration::from_secs(10), || {
        agent
            .metric("lookout_service_up", &[("service", "alpha")])
            .is_none()
            .then_some(())
    });
}

/// Each malformed config and the exact first line `check-config` must print.
const BAD_CONFIGS: &[(&str, &str)] = &[
    (
        "[agent]\nlisten = \"127.0.0.1:9464\"\nbogus = 1\n",
        "bad.toml:3:1: unknown field `bogus`, expected one of `listen`, `interval`, `data_dir`, `host`, `history`, `api_token_file`, `allowed_hosts`, `max_connections`, `header_timeout`",
    ),
    (
        "[agent]\ninterval = \"0s\"\n",
        "bad.toml:2:12: duration \"0s\" must be greater than zero",
    ),
    (
        "[agent]\ninterval = \"fast\"\n",
        "bad.toml:2:12: invalid duration \"fast\": expected number at 0 (write e.g. \"250ms\", \"5s\", \"5m\")",
    ),
    (
        "[agent]\ninterval = 5\n",
        "bad.toml:2:12: invalid type: integer `5`, expected a string",
    ),
    (
        "[agent\nlisten = 1\n",
        "bad.toml:1:7: unclosed table, expected `]`",
    ),
    (
        "[agent]\nlisten = \"nohost\"\n",
        "bad.toml:2:10: address \"nohost\" must be host:port",
    ),
    (
        "[agent]\nlisten = \"127.0.0.1:99999\"\n",
        "bad.toml:2:10: address \"127.0.0.1:99999\" has an invalid port \"99999\"",
    ),
    (
        "[[service]]\nname = \"a\"\nmatch = { cmdline = \"([a-z\" }\n",
        "bad.toml:3:21: invalid regex \"([a-z\": error: unclosed character class",
    ),
    (
        "[[service]]\nname = \"a\"\nmatch = { exe = \"a\" }\nready = { http = \"ftp://x/y\" }\n",
        "bad.toml:4:18: URL \"ftp://x/y\" must start with http:// or https://",
    ),
    (
        "[[service]]\nname = \"a\"\nmatch = { exe = \"a\" }\nready = { http = \"http//nohost\" }\n",
        "bad.toml:4:18: invalid URL \"http//nohost\": relative URL without a base",
    ),
    (
        "[[service]]\nname = \"a\"\nmatch = { color = \"a\" }\n",
        "bad.toml:3:11: unknown field `color`, expected one of `exe`, `cmdline`, `pidfile`",
    ),
    (
        "[export.otlp]\nprotocol = \"carrier-pigeon\"\n",
        "bad.toml:2:12: unknown variant `carrier-pigeon`, expected `grpc` or `http/protobuf`",
    ),
    (
        "[[service]]\nname = \"a\"\nmatch = { exe = \"a\" }\n[[service]]\nname = \"a\"\nmatch = { exe = \"b\" }\n",
        "bad.toml:2:8: duplicate service name \"a\"",
    ),
    (
        "[alerts.rules.NoSuchAlert]\nfor = \"1m\"\n",
        "bad.toml:1:9: unknown alert name \"NoSuchAlert\" in [alerts.rules]",
    ),
    (
        "[[service]]\nname = \"a\"\nmatch = { exe = \"a\", pidfile = \"/run/a.pid\" }\n",
        "bad.toml:3:9: match needs exactly one of `exe`, `cmdline`, `pidfile`",
    ),
    (
        "[detectors.timeout]\nsample_hz = 0\n",
        "bad.toml:2:1: sample_hz must be between 1 and 1000",
    ),
];

#[test]
fn malformed_configs_are_rejected_with_path_line_column_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let mut failures = Vec::new();
    for (text, expected) in BAD_CONFIGS {
        std::fs::write(&path, text).unwrap();
        let out = Command::new(lookout_bin())
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        let want = format!("{}/{expected}", dir.path().display());
        if out.status.code() != Some(2) || first != want {
            failures.push(format!(
                "config:\n{text}\nexpected exit 2 and\n  {want}\ngot exit {:?} and\n  {first}",
                out.status.code()
            ));
        }
        // `run` rejects it the same way, before doing anything.
        let out = Command::new(lookout_bin())
            .arg("run")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        if out.status.code() != Some(2) {
            failures.push(format!("run accepted:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // And the shipped examples are valid.
    for example in ["agent/examples/local.toml", "agent/examples/full.toml"] {
        let out = Command::new(lookout_bin())
            .arg("check-config")
            .arg(lookout_e2e::repo_root().join(example))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn listens_on_loopback_by_default_and_serves_health() {
    let agent = Agent::start("");
    agent.wait_ready(Duration::from_secs(20));
    assert_eq!(agent.get("/healthz").map(|r| r.0), Some(200));
    let (status, body) = agent.get("/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn secrets_in_urls_never_reach_the_log() {
    let receiver = Receiver::http();
    let extra = format!(
        "[export.otlp]\nendpoint = \"http://collector:hunter2@127.0.0.1:{}\"\nprotocol = \"http/protobuf\"\ninterval = \"1s\"\n",
        receiver.port
    );
    let agent = Agent::start(&extra);
    agent.wait_ready(Duration::from_secs(20));
    let log = agent.log();
    assert!(log.contains("OTLP export on"), "{log}");
    assert!(
        !log.contains("hunter2"),
        "a password reached the log:\n{log}"
    );
}
