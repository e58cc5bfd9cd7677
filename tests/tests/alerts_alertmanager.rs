//! End to end: the agent's alerts through a real Alertmanager (Debian `prometheus-alertmanager`,
//! private instance on a free port) to a webhook receiver inside the test.
//!
//! The conditions are real: watched `sleep` processes that never become ready (a readiness
//! probe of `false`) with a 2 s cold-start budget page as ServiceStuckInitializing, and one
//! with `expected_max_threads = 0` raises the ThreadCountAboveExpected ticket.
//!
//! CI-time knobs, each said here: `resend_interval = "1s"` (so a firing alert's `endsAt` is
//! only 4 s ahead and a missing re-send would show as a resolution), `keep_firing_for = "1s"`,
//! and an Alertmanager outage of a full minute, as on-call would see one.

use lookout_e2e::alertmanager::{Alertmanager, Receiver, Sleeper, label, stuck_service};
use lookout_e2e::{Agent, free_port, http_get, metric_value, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn service(name: &str, cmdline: &str, extra: &str) -> String {
    stuck_service(name, cmdline, extra)
}

fn alerts_section(am_port: u16) -> String {
    format!(
        r#"
[alerts]
alertmanager = ["http://127.0.0.1:{am_port}"]
resend_interval = "1s"
[alerts.rules.ServiceStuckInitializing]
keep_firing_for = "1s"
[alerts.rules.ThreadCountAboveExpected]
for = "1s"
"#
    )
}

fn agent_alerts(agent: &Agent) -> Vec<Value> {
    agent
        .get("/api/v1/alerts")
        .and_then(|(_, b)| serde_json::from_str::<Vec<Value>>(&b).ok())
        .unwrap_or_default()
}

fn metric(agent: &Agent, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(&agent.metrics(), name, labels).unwrap_or(0.0)
}

#[test]
fn fire_resend_group_route_and_resolve_through_alertmanager() {
    let receiver = Receiver::start();
    let am = Alertmanager::start(free_port(), receiver.port);
    let (a, a_re) = Sleeper::start("1");
    let (_b, b_re) = Sleeper::start("2");
    let config = format!(
        "{}{}{}",
        service("stuck-a", &a_re, "expected_max_threads = 0"),
        service("stuck-b", &b_re, ""),
        alerts_section(am.port)
    );
    let agent = Agent::start(&config);
    agent.wait_ready(Duration::from_secs(30));

    // Fire + group: both stuck services in one page notification.
    let page = wait_for(
        "grouped page at the receiver",
        Duration::from_secs(30),
        || {
            receiver.payloads().into_iter().find(|(path, p)| {
                path == "/page"
                    && p["groupLabels"]["alertname"] == "ServiceStuckInitializing"
                    && p["alerts"].as_array().is_some_and(|a| a.len() == 2)
            })
        },
    );
    let (_, page) = page;
    assert_eq!(page["version"], "4");
    assert_eq!(page["status"], "firing");
    assert_eq!(page["commonLabels"]["severity"], "page");
    assert_eq!(page["commonLabels"]["host"], "test-host");
    let mut services: Vec<&str> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| label(a, "service"))
        .collect();
    services.sort();
    assert_eq!(services, ["stuck-a", "stuck-b"]);
    for a in page["alerts"].as_array().unwrap() {
        let summary = a["annotations"]["summary"].as_str().unwrap();
        assert!(summary.contains(label(a, "service")), "{summary}");
        let desc = a["annotations"]["description"].as_str().unwrap();
        assert!(
            desc.contains("test-host") && desc.contains("firing since"),
            "{desc}"
        );
        let runbook = a["annotations"]["runbook_url"].as_str().unwrap();
        assert_eq!(runbook, agent.url("/runbooks/ServiceStuckInitializing"));
        let (status, body) = http_get(runbook).expect("runbook link answers");
        assert_eq!(status, 200);
        assert!(body.starts_with("# ServiceStuckInitializing"));
    }

    // Routing: the ticket goes to the other receiver.
    wait_for("ticket routed to /ticket", Duration::from_secs(20), || {
        receiver.alerts().into_iter().find(|r| {
            r.path == "/ticket"
                && r.label("alertname") == "ThreadCountAboveExpected"
                && r.label("service") == "stuck-a"
        })
    });
    assert!(
        !receiver
            .alerts()
            .iter()
            .any(|r| r.path == "/page" && r.label("severity") == "ticket")
    );

    // Re-send: with endsAt only 4 s ahead, the alerts stay firing at Alertmanager for 10 s
    // only if the agent keeps re-sending them; their endsAt moves forward.
    let ends_of = |svc: &str| -> Option<String> {
        am.alerts()
            .into_iter()
            .find(|x| {
                label(x, "alertname") == "ServiceStuckInitializing" && label(x, "service") == svc
            })
            .and_then(|x| x["endsAt"].as_str().map(str::to_string))
    };
    let first_ends = ends_of("stuck-b").expect("alert at Alertmanager");
    std::thread::sleep(Duration::from_secs(10));
    let later_ends = ends_of("stuck-b").expect("still active at Alertmanager after 10 s");
    assert!(later_ends > first_ends, "{later_ends} !> {first_ends}");
    assert!(
        !receiver.alerts().iter().any(|r| r.status == "resolved"),
        "nothing resolved while the conditions hold"
    );
    assert!(
        metric(
            &agent,
            "lookout_alert_notifications_total",
            &[("outcome", "sent")]
        ) >= 8.0
    );
    assert_eq!(
        metric(
            &agent,
            "lookout_alerts_firing",
            &[
                ("alertname", "ServiceStuckInitializing"),
                ("severity", "page")
            ]
        ),
        2.0
    );

    // Resolve: stuck-a goes away; the resolution (endsAt) reaches the receiver.
    drop(a);
    let resolved = wait_for(
        "stuck-a resolved at the receiver",
        Duration::from_secs(30),
        || {
            receiver.alerts().into_iter().find(|r| {
                r.path == "/page" && r.status == "resolved" && r.label("service") == "stuck-a"
            })
        },
    );
    assert!(
        resolved.alert["endsAt"].as_str().unwrap() > resolved.alert["startsAt"].as_str().unwrap()
    );
    let active = agent_alerts(&agent);
    assert!(
        !active.iter().any(|x| label(x, "service") == "stuck-a"
            && label(x, "alertname") == "ServiceStuckInitializing")
    );
    assert!(active.iter().any(|x| label(x, "service") == "stuck-b"));
    assert_eq!(metric(&agent, "lookout_alert_spool_depth", &[]), 0.0);
}

/// Replace the agent by a new process on the same data dir and config (the old one is
/// killed with SIGKILL: a crash, not a clean stop).
fn restart(agent: Agent) -> Agent {
    let mut agent = agent;
    let dir = std::mem::replace(&mut agent.dir, tempfile::tempdir().unwrap());
    let (port, config_path) = (agent.port, agent.config_path.clone());
    drop(agent);
    Agent::spawn(dir, port, config_path, &[])
}

/// Notices waiting in the spool: one file per alert in each Alertmanager's directory.
fn spool_files(data_dir: &Path) -> usize {
    let Ok(queues) = std::fs::read_dir(data_dir.join("alerts/spool")) else {
        return 0;
    };
    queues
        .flatten()
        .filter(|q| q.path().is_dir())
        .flat_map(|q| std::fs::read_dir(q.path()).into_iter().flatten().flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count()
}

#[test]
fn alerts_wait_on_disk_through_an_outage_and_an_agent_restart() {
    const OUTAGE: Duration = Duration::from_secs(60);
    let receiver = Receiver::start();
    let am_port = free_port();
    let outage_start = Instant::now();
    let (_a, a_re) = Sleeper::start("4");
    let (_b, b_re) = Sleeper::start("5");
    let (c, c_re) = Sleeper::start("6");
    let config = format!(
        "{}{}{}{}",
        service("down-a", &a_re, "expected_max_threads = 0"),
        service("down-b", &b_re, ""),
        service("down-c", &c_re, ""),
        alerts_section(am_port)
    );
    let agent = Agent::start(&config);
    let data_dir: PathBuf = agent.dir.path().join("data");
    agent.wait_ready(Duration::from_secs(30));

    // All three page and the ticket fire while no Alertmanager answers: spooled on disk.
    wait_for(
        "4 alerts active at the agent",
        Duration::from_secs(30),
        || (agent_alerts(&agent).len() == 4).then_some(()),
    );
    wait_for("notices spooled", Duration::from_secs(10), || {
        (metric(&agent, "lookout_alert_spool_depth", &[]) >= 4.0).then_some(())
    });
    assert!(
        metric(
            &agent,
            "lookout_alert_notifications_total",
            &[("outcome", "failed")]
        ) > 0.0
    );

    // down-c fires and resolves inside the outage: its firing and its resolution exist only
    // in the spool — the restarted agent has no reason to send anything about it.
    drop(c);
    wait_for(
        "down-c resolved at the agent",
        Duration::from_secs(20),
        || {
            (!agent_alerts(&agent)
                .iter()
                .any(|x| label(x, "service") == "down-c"))
            .then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        spool_files(&data_dir) >= 4,
        "spool files: {}",
        spool_files(&data_dir)
    );

    let starts_before: Vec<(String, String, String)> = agent_alerts(&agent)
        .iter()
        .map(|x| {
            (
                label(x, "alertname").to_string(),
                label(x, "service").to_string(),
                x["startsAt"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let agent = restart(agent);
    agent.wait_ready(Duration::from_secs(30));
    if let Some(rest) = OUTAGE.checked_sub(outage_start.elapsed()) {
        std::thread::sleep(rest);
    }
    assert!(receiver.payloads().is_empty());
    let am = Alertmanager::start(am_port, receiver.port);
    let back = Instant::now();

    // Every alert arrives: the two still stuck, the ticket, and down-c — resolved, which
    // shows its firing and resolution were delivered in order.
    wait_for(
        "every alert delivered after the outage",
        Duration::from_secs(40),
        || {
            let got = receiver.alerts();
            let has = |path: &str, name: &str, svc: &str, status: &str| {
                got.iter().any(|r| {
                    r.path == path
                        && r.status == status
                        && r.label("alertname") == name
                        && r.label("service") == svc
                })
            };
            (has("/page", "ServiceStuckInitializing", "down-a", "firing")
                && has("/page", "ServiceStuckInitializing", "down-b", "firing")
                && has("/page", "ServiceStuckInitializing", "down-c", "resolved")
                && has("/ticket", "ThreadCountAboveExpected", "down-a", "firing"))
            .then_some(())
        },
    );
    eprintln!(
        "figure: every spooled alert at the receiver {:.1} s after Alertmanager answered \
         (outage {:.0} s, agent restarted during it)",
        back.elapsed().as_secs_f64(),
        OUTAGE.as_secs_f64()
    );
    // Had the resolution overtaken the firing, Alertmanager would hold down-c as active.
    assert!(!am.alerts().iter().any(|x| label(x, "service") == "down-c"));
    // Nothing duplicated beyond re-sends: each alert reached Alertmanager as one alert with
    // the startsAt it had before the SIGKILL (the restarted agent continued it), and none
    // fired again after its resolution.
    for (name, svc, starts) in &starts_before {
        let held = am
            .alerts()
            .into_iter()
            .find(|x| label(x, "alertname") == name && label(x, "service") == svc)
            .unwrap_or_else(|| panic!("{name}/{svc} not at Alertmanager"));
        assert_eq!(
            held["startsAt"].as_str().unwrap()[..19],
            starts[..19],
            "{name}/{svc}"
        );
    }
    let mut resolved_seen = std::collections::BTreeSet::new();
    for r in receiver.alerts() {
        let id = (
            r.label("alertname").to_string(),
            r.label("service").to_string(),
        );
        if r.status == "resolved" {
            resolved_seen.insert(id);
        } else {
            assert!(
                !resolved_seen.contains(&id),
                "{id:?} fired again after its resolution"
            );
        }
    }
    wait_for("spool drained", Duration::from_secs(20), || {
        (metric(&agent, "lookout_alert_spool_depth", &[]) == 0.0 && spool_files(&data_dir) == 0)
            .then_some(())
    });
}
