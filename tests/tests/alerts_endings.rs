//! Every way an alert can end sends its resolution at once, through a real Alertmanager to a
//! webhook receiver: the watched process ends; a reload (SIGHUP) removes a service, renames
//! one, disables a rule, removes a cache and a tracker, disables a detector (the timeout
//! detector, on a real stuck client); the agent stops (SIGTERM); and a restarted agent
//! resolves what it had firing that no longer holds.
//!
//! "At once" is checked as: the resolution is at the receiver within one resend interval
//! ([`RESEND`]) of the ending. The alerts' own `keep_firing_for` are left at their defaults
//! (1–2 minutes) so that a resolution that waited for them would miss that by far.

use lookout_e2e::alertmanager::{Alertmanager, Receiver, Sleeper, stuck_service};
use lookout_e2e::{Agent, free_port, wait_for};
use std::time::{Duration, Instant};

/// The agent's resend interval in these tests.
const RESEND: Duration = Duration::from_secs(5);

fn alerts_section(am_port: u16, extra: &str) -> String {
    format!(
        r#"
[alerts]
alertmanager = ["http://127.0.0.1:{am_port}"]
resend_interval = "{}s"
[alerts.rules.ThreadCountAboveExpected]
for = "1s"
[alerts.rules.CacheSourceFailing]
for = "1s"
[alerts.rules.PrimaryUnavailable]
for = "1s"
{extra}
"#,
        RESEND.as_secs()
    )
}

/// Wait until the receiver has this alert firing.
fn wait_firing(receiver: &Receiver, name: &str, subject: &[(&str, &str)]) {
    wait_for(
        &format!("{name} {subject:?} firing at the receiver"),
        Duration::from_secs(40),
        || {
            receiver.find(
                Instant::now() - Duration::from_secs(3600),
                name,
                "firing",
                subject,
            )
        },
    );
}

/// Wait (at most one resend interval after `since`) for its resolution at the receiver.
fn wait_resolved(
    receiver: &Receiver,
    since: Instant,
    name: &str,
    subject: &[(&str, &str)],
) -> Instant {
    let got = wait_for(
        &format!("{name} {subject:?} resolved at the receiver"),
        RESEND + Duration::from_secs(5),
        || receiver.find(since, name, "resolved", subject),
    );
    let took = got.at.duration_since(since);
    eprintln!("figure: {name} {subject:?} resolved at the receiver {took:.1?} after its ending");
    assert!(
        took <= RESEND,
        "{name} {subject:?}: resolution took {took:?}, more than one resend interval"
    );
    got.at
}

#[test]
fn every_ending_resolves_at_once() {
    let receiver = Receiver::start();
    let am = Alertmanager::start(free_port(), receiver.port);
    let dir = tempfile::tempdir().unwrap();
    let (gone, gone_re) = Sleeper::start("51");
    let (_removed, removed_re) = Sleeper::start("52");
    let (_renamed, renamed_re) = Sleeper::start("53");
    let (_rule_off, rule_off_re) = Sleeper::start("54");
    let dead_replica = free_port();
    let cache_and_tracker = format!(
        r#"
[[cache]]
name = "c1"
source = {{ file = "{}" }}
blob = "file://{}"

[[tracker]]
service = "t1"
discovery = {{ http = ["http://127.0.0.1:{dead_replica}"] }}
"#,
        dir.path().join("no-such-source.json").display(),
        dir.path().join("blob").display()
    );
    let services = |renamed: &str, with_removed: bool| {
        format!(
            "{}{}{}{}",
            stuck_service("gone", &gone_re, "expected_max_threads = 0"),
            if with_removed {
                stuck_service("removed", &removed_re, "")
            } else {
                String::new()
            },
            stuck_service(renamed, &renamed_re, ""),
            stuck_service("rule-off", &rule_off_re, "expected_max_threads = 0"),
        )
    };
    let agent = Agent::start(&format!(
        "{}{}{}",
        services("renamed", true),
        cache_and_tracker,
        alerts_section(am.port, "")
    ));

    for (name, subject) in [
        ("ThreadCountAboveExpected", ("service", "gone")),
        ("ServiceStuckInitializing", ("service", "gone")),
        ("ServiceStuckInitializing", ("service", "removed")),
        ("ServiceStuckInitializing", ("service", "renamed")),
        ("ThreadCountAboveExpected", ("service", "rule-off")),
        ("ServiceStuckInitializing", ("service", "rule-off")),
        ("CacheSourceFailing", ("cache", "c1")),
        ("PrimaryUnavailable", ("service", "t1")),
    ] {
        wait_firing(&receiver, name, &[subject]);
    }

    // 1. The process ends: both its alerts resolve, without waiting for keep_firing_for.
    let ended = Instant::now();
    drop(gone);
    wait_resolved(
        &receiver,
        ended,
        "ThreadCountAboveExpected",
        &[("service", "gone")],
    );
    wait_resolved(
        &receiver,
        ended,
        "ServiceStuckInitializing",
        &[("service", "gone")],
    );

    // 2. A reload removes a service, renames one, disables a rule, removes the cache and the
    // tracker: each of their alerts resolves; what the new config still has keeps firing.
    agent.rewrite_config(&format!(
        "[agent]\nlisten = \"127.0.0.1:{}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"test-host\"\n\n{}{}",
        agent.port,
        agent.dir.path().join("data").display(),
        services("renamed-2", false),
        alerts_section(
            am.port,
            "[alerts.rules.ThreadCountAboveExpected]\nenabled = false\n"
        )
        .replace("[alerts.rules.ThreadCountAboveExpected]\nfor = \"1s\"\n", "")
    ));
    let reloaded = Instant::now();
    agent.signal(libc::SIGHUP);
    for (name, subject) in [
        ("ServiceStuckInitializing", ("service", "removed")),
        ("ServiceStuckInitializing", ("service", "renamed")),
        ("ThreadCountAboveExpected", ("service", "rule-off")),
        ("CacheSourceFailing", ("cache", "c1")),
        ("PrimaryUnavailable", ("service", "t1")),
    ] {
        wait_resolved(&receiver, reloaded, name, &[subject]);
    }
    wait_firing(
        &receiver,
        "ServiceStuckInitializing",
        &[("service", "renamed-2")],
    );
    assert!(
        receiver
            .find(
                reloaded,
                "ServiceStuckInitializing",
                "resolved",
                &[("service", "rule-off")]
            )
            .is_none(),
        "a reload must not resolve what the new config still has"
    );
    // And not re-page it either: one alert, the same startsAt before and after the reload.
    let starts: Vec<String> = receiver
        .alerts()
        .iter()
        .filter(|r| {
            r.label("alertname") == "ServiceStuckInitializing" && r.label("service") == "rule-off"
        })
        .map(|r| r.alert["startsAt"].as_str().unwrap()[..19].to_string())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] == w[1]),
        "rule-off re-started across the reload: {starts:?}"
    );

    // 3. The agent stops cleanly: what still fires resolves before it exits.
    let stopping = Instant::now();
    let mut agent = agent;
    agent.signal(libc::SIGTERM);
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log());
    for svc in ["renamed-2", "rule-off"] {
        wait_resolved(
            &receiver,
            stopping,
            "ServiceStuckInitializing",
            &[("service", svc)],
        );
    }
    assert!(
        am.alerts().iter().all(|a| a["status"]["state"] != "active"),
        "still active at Alertmanager after the agent stopped: {:?}",
        am.alerts()
    );
}

#[test]
fn a_restarted_agent_resolves_what_no_longer_holds() {
    let receiver = Receiver::start();
    let am = Alertmanager::start(free_port(), receiver.port);
    let (ends, ends_re) = Sleeper::start("61");
    let (_stays, stays_re) = Sleeper::start("62");
    let agent = Agent::start(&format!(
        "{}{}{}",
        stuck_service("ends-while-down", &ends_re, ""),
        stuck_service("stays", &stays_re, ""),
        alerts_section(am.port, "")
    ));
    for svc in ["ends-while-down", "stays"] {
        wait_firing(&receiver, "ServiceStuckInitializing", &[("service", svc)]);
    }
    // A crash (SIGKILL: no chance to resolve anything), the process ends while the agent is
    // down, the agent comes back on the same data dir.
    let mut agent = agent;
    let dir = std::mem::replace(&mut agent.dir, tempfile::tempdir().unwrap());
    let (port, config_path) = (agent.port, agent.config_path.clone());
    drop(agent);
    drop(ends);
    let restarted = Instant::now();
    let agent = Agent::spawn(dir, port, config_path, &[]);
    wait_resolved(
        &receiver,
        restarted,
        "ServiceStuckInitializing",
        &[("service", "ends-while-down")],
    );
    // The one that still holds continues (no resolution, no second alert).
    std::thread::sleep(RESEND);
    assert!(
        receiver
            .find(
                restarted,
                "ServiceStuckInitializing",
                "resolved",
                &[("service", "stays")]
            )
            .is_none()
    );
    let held = am
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["service"] == "stays")
        .count();
    assert_eq!(held, 1);
    drop(agent);
}

/// The `[agent]` table of a rewritten config: the same listen port, data dir and host.
fn agent_table(agent: &Agent) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"test-host\"\n\n",
        agent.port,
        agent.dir.path().join("data").display()
    )
}

#[test]
fn a_reload_that_disables_the_detector_resolves_its_alert_at_once() {
    let receiver = Receiver::start();
    let am = Alertmanager::start(free_port(), receiver.port);
    // A real timeout bug: a client waiting with no timeout on a peer (the test) that accepted
    // its connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let clients = lookout_e2e::repo_root().join("tests/scenarios/clients.py");
    let _client = lookout_e2e::KillOnDrop(
        std::process::Command::new("python3")
            .arg(&clients)
            .args(["no-timeout", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_conn, _) = listener.accept().unwrap();
    let config = |timeout_on: bool| {
        format!(
            "[[service]]\nname = \"stuck-client\"\nmatch = {{ cmdline = \"clients\\\\.py no-timeout {port}$\" }}\n\n\
             [detectors.timeout]\nenabled = {timeout_on}\nquiet_period = \"2s\"\n{}",
            alerts_section(
                am.port,
                "[alerts.rules.TimeoutBugSuspected]\nfor = \"1s\"\n"
            )
        )
    };
    let agent = Agent::start(&config(true));
    let subject = [("service", "stuck-client")];
    wait_firing(&receiver, "TimeoutBugSuspected", &subject);

    // The reload turns the timeout detector off: its alert resolves now, not after its
    // keep_firing_for (2 min) — the client is still stuck, so only the reload can end it.
    agent.rewrite_config(&format!("{}{}", agent_table(&agent), config(false)));
    let reloaded = Instant::now();
    agent.signal(libc::SIGHUP);
    let resolved = wait_resolved(&receiver, reloaded, "TimeoutBugSuspected", &subject);
    // And it stays resolved: the stale suspects series do not raise it again.
    std::thread::sleep(RESEND + Duration::from_secs(1));
    let (_, body) = agent.get("/api/v1/alerts").unwrap();
    assert!(!body.contains("TimeoutBugSuspected"), "{body}");
    assert!(
        receiver
            .find(resolved, "TimeoutBugSuspected", "firing", &subject)
            .is_none(),
        "raised again after the reload"
    );
    assert!(
        !am.alerts().iter().any(|a| {
            a["labels"]["alertname"] == "TimeoutBugSuspected" && a["status"]["state"] == "active"
        }),
        "still active at Alertmanager: {:?}",
        am.alerts()
    );
}
