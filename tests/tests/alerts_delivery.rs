//! Delivery that fails open, against real Alertmanagers:
//! - two Alertmanagers, one down for the whole test: the live one gets everything in order,
//!   the dead one's spool stays bounded by the number of distinct alerts however many
//!   re-sends pass, and when it comes back it receives the latest state of each alert,
//!   resolutions included;
//! - `data_dir` on a small tmpfs that turns read-only, then full, during an Alertmanager
//!   outage: the alerts are still delivered when Alertmanager returns, and the disk failure
//!   is itself alerted (LookoutAlertSpoolFailing), and resolves when the disk recovers;
//! - a clean stop (SIGTERM) while the Alertmanager is down, with firing alerts and a pending
//!   resolution: after both restart, everything is delivered, nothing ended fires again;
//! - a reload that lowers `spool_max`: exactly the excess goes (never a resolution), counted
//!   and alerted, and everything arrives once an Alertmanager answers;
//! - an Alertmanager with basic auth answering 401 to old credentials: the notice waits
//!   until a reload fixes the password, and no password reaches a file or the log;
//! - a hung Alertmanager (SIGSTOP): requests time out and are retried, the agent is not held
//!   up, the resolution arrives when it wakes.
//!
//! CI-time knobs: `resend_interval = "1s"` (many re-sends in seconds), `keep_firing_for = "1s"`.

use lookout_e2e::alertmanager::{Alertmanager, Receiver, Sleeper, label, stuck_service};
use lookout_e2e::{Agent, free_port, metric_value, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn alerts_section(targets: &[u16], extra: &str) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    format!(
        r#"
[alerts]
alertmanager = [{}]
resend_interval = "1s"
[alerts.rules.ServiceStuckInitializing]
keep_firing_for = "1s"
[alerts.rules.ThreadCountAboveExpected]
for = "1s"
keep_firing_for = "1s"
{extra}
"#,
        list.join(", ")
    )
}

/// The agent's active alerts (`/api/v1/alerts`), each as `f(alert)`.
fn active_alerts(agent: &Agent, f: impl Fn(&serde_json::Value) -> String) -> Vec<String> {
    agent
        .get("/api/v1/alerts")
        .and_then(|(_, b)| serde_json::from_str::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
        .iter()
        .map(f)
        .collect()
}

fn metric(agent: &Agent, name: &str) -> f64 {
    metric_value(&agent.metrics(), name, &[]).unwrap_or(f64::NAN)
}

/// Notice files in the queue directory of each Alertmanager.
fn queue_files(data_dir: &Path) -> Vec<usize> {
    let Ok(queues) = std::fs::read_dir(data_dir.join("alerts/spool")) else {
        return Vec::new();
    };
    let mut out: Vec<usize> = queues
        .flatten()
        .filter(|q| q.path().is_dir())
        .map(|q| {
            std::fs::read_dir(q.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_dead_alertmanager_costs_one_entry_per_alert_and_gets_the_latest_state() {
    let live_rx = Receiver::start();
    let live = Alertmanager::start(free_port(), live_rx.port);
    let dead_port = free_port();
    let (a, a_re) = Sleeper::start("41");
    let (_b, b_re) = Sleeper::start("42");
    let agent = Agent::start(&format!(
        "{}{}{}",
        stuck_service("flappy", &a_re, "expected_max_threads = 0"),
        stuck_service("steady", &b_re, ""),
        alerts_section(&[live.port, dead_port], "")
    ));
    let data_dir = agent.dir.path().join("data");
    // Distinct alerts this test ever raises: flappy's page and ticket, steady's page.
    const DISTINCT: usize = 3;

    wait_for(
        "3 alerts firing at the live Alertmanager",
        Duration::from_secs(30),
        || (live.alerts().len() == 3).then_some(()),
    );
    // Many re-sends (1 s each) while one Alertmanager is dead; flappy ends: its two alerts
    // resolve. The dead one's queue never holds more than one entry per alert.
    let mut max_dead = 0;
    let until = Instant::now() + Duration::from_secs(15);
    let mut ended = false;
    let mut a = Some(a);
    while Instant::now() < until {
        if !ended && until - Instant::now() < Duration::from_secs(8) {
            drop(a.take());
            ended = true;
        }
        let files = queue_files(&data_dir);
        assert_eq!(files.len(), 2, "one queue per Alertmanager: {files:?}");
        max_dead = max_dead.max(files[1]);
        assert!(files[1] <= DISTINCT, "dead queue holds {files:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = metric_value(
        &agent.metrics(),
        "lookout_alert_notifications_total",
        &[("outcome", "sent")],
    )
    .unwrap();
    assert!(sent >= 20.0, "only {sent} notices sent: not many re-sends");
    assert_eq!(max_dead, DISTINCT, "the dead queue held {max_dead}");
    assert_eq!(metric(&agent, "lookout_alert_spool_depth"), DISTINCT as f64);

    // The live one got everything in order: each alert firing first, resolved last, and
    // nothing of flappy firing after its resolution.
    wait_for(
        "flappy resolved at the live one",
        Duration::from_secs(10),
        || {
            let got = live_rx.alerts();
            ["ServiceStuckInitializing", "ThreadCountAboveExpected"]
                .iter()
                .all(|n| {
                    got.iter().any(|r| {
                        r.status == "resolved"
                            && r.label("alertname") == *n
                            && r.label("service") == "flappy"
                    })
                })
                .then_some(())
        },
    );
    for name in ["ServiceStuckInitializing", "ThreadCountAboveExpected"] {
        let statuses: Vec<String> = live_rx
            .alerts()
            .iter()
            .filter(|r| r.label("alertname") == name && r.label("service") == "flappy")
            .map(|r| r.status.clone())
            .collect();
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("firing"),
            "{name}"
        );
        let first_resolved = statuses.iter().position(|s| s == "resolved").unwrap();
        assert!(
            statuses[first_resolved..].iter().all(|s| s == "resolved"),
            "{name}: {statuses:?}"
        );
    }

    // The dead one comes back: it receives the latest state of each alert — steady firing,
    // flappy's two resolved — and its queue empties. (Alertmanager notifies a resolution
    // only in a group it has notified: flappy's ticket, whose firing it never saw, shows in
    // what it received, not at the receiver.)
    let dead_rx = Receiver::start();
    let back = Alertmanager::start(dead_port, dead_rx.port);
    wait_for(
        "the latest state of every alert at the returning Alertmanager",
        Duration::from_secs(20),
        || {
            let got = dead_rx.alerts();
            let has = |name: &str, svc: &str, status: &str| {
                got.iter().any(|r| {
                    r.label("alertname") == name && r.label("service") == svc && r.status == status
                })
            };
            let am_metrics = lookout_e2e::http_get(&back.url("/metrics"))?.1;
            let resolved = metric_value(
                &am_metrics,
                "alertmanager_alerts_received_total",
                &[("status", "resolved"), ("version", "v2")],
            )?;
            (has("ServiceStuckInitializing", "steady", "firing")
                && has("ServiceStuckInitializing", "flappy", "resolved")
                && resolved >= 2.0)
                .then_some(())
        },
    );
    assert!(
        !dead_rx
            .alerts()
            .iter()
            .any(|r| r.label("service") == "flappy" && r.status == "firing"),
        "an outdated state reached the returning Alertmanager"
    );
    let active: Vec<String> = back
        .alerts()
        .iter()
        .map(|x| format!("{}/{}", label(x, "alertname"), label(x, "service")))
        .collect();
    assert_eq!(active, ["ServiceStuckInitializing/steady"]);
    wait_for("both queues drained", Duration::from_secs(10), || {
        (queue_files(&data_dir).iter().sum::<usize>() <= 2).then_some(())
    });
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount (the e2e tests run as root)")
            .success();
        assert!(ok, "mount -t tmpfs failed: the e2e tests need root");
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, opt: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opt}");
    }

    /// Fill it up to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    fn unfill(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_then_full_disk_during_an_outage_loses_nothing_and_is_alerted() {
    let receiver = Receiver::start();
    let am_port = free_port();
    let tag = |t: &str| format!("3{t}");
    let (_a, a_re) = Sleeper::start(&tag("1"));
    let b_re = Sleeper::pattern(&tag("2"));
    let c_re = Sleeper::pattern(&tag("3"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, "1m");
    let port = free_port();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"test-host\"\n\n{}{}{}{}",
        data.display(),
        stuck_service("before", &a_re, ""),
        stuck_service("while-read-only", &b_re, ""),
        stuck_service("while-full", &c_re, ""),
        alerts_section(
            &[am_port],
            "[alerts.rules.LookoutAlertSpoolFailing]\nkeep_firing_for = \"1s\"\n"
        )
    );
    let config_path = dir.path().join("lookout.toml");
    std::fs::write(&config_path, config).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = Agent::spawn(agent_dir, port, config_path, &[]);
    agent.wait_ready(Duration::from_secs(30));
    wait_for("`before` spooled on disk", Duration::from_secs(20), || {
        (queue_files(&data) == [1]).then_some(())
    });
    assert_eq!(metric(&agent, "lookout_alert_spool_disk_failing"), 0.0);

    // Read-only: a new alert fires; it can only live in memory.
    disk.remount("ro");
    let (_b, _) = Sleeper::start(&tag("2"));
    wait_for("the disk failure noticed", Duration::from_secs(20), || {
        (metric(&agent, "lookout_alert_spool_disk_failing") == 1.0
            && metric(&agent, "lookout_alert_spool_memory_only") >= 1.0)
            .then_some(())
    });
    let active = || active_alerts(&agent, |a| label(a, "alertname").to_string());
    wait_for(
        "LookoutAlertSpoolFailing at the agent",
        Duration::from_secs(10),
        || {
            active()
                .contains(&"LookoutAlertSpoolFailing".to_string())
                .then_some(())
        },
    );

    // Writable again but full: another alert, still memory only.
    disk.remount("rw");
    disk.fill();
    let (_c, _) = Sleeper::start(&tag("3"));
    wait_for(
        "while-full firing at the agent",
        Duration::from_secs(20),
        || {
            (active()
                .iter()
                .filter(|n| *n == "ServiceStuckInitializing")
                .count()
                == 3)
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(metric(&agent, "lookout_alert_spool_disk_failing"), 1.0);
    assert!(
        agent.child.id() > 0 && agent.get("/healthz").is_some(),
        "the agent survives a sick disk"
    );

    // Alertmanager returns while the disk is still full: everything arrives, the disk
    // failure included.
    let am = Alertmanager::start(am_port, receiver.port);
    wait_for(
        "every alert and the disk failure at the receiver",
        Duration::from_secs(30),
        || {
            let got = receiver.alerts();
            let has = |name: &str, svc: &str| {
                got.iter().any(|r| {
                    r.label("alertname") == name
                        && r.label("service") == svc
                        && r.status == "firing"
                })
            };
            (has("ServiceStuckInitializing", "before")
                && has("ServiceStuckInitializing", "while-read-only")
                && has("ServiceStuckInitializing", "while-full")
                && has("LookoutAlertSpoolFailing", ""))
            .then_some(())
        },
    );
    let failing = receiver
        .alerts()
        .into_iter()
        .find(|r| r.label("alertname") == "LookoutAlertSpoolFailing")
        .unwrap();
    assert_eq!(failing.label("host"), "test-host");
    assert!(
        failing.alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("/runbooks/LookoutAlertSpoolFailing")
    );

    // The disk recovers: the failure resolves by itself, and what lived in memory is on
    // disk again (nothing owed: Alertmanager took it all, so the queue is just the re-sends).
    disk.unfill();
    let recovered = Instant::now();
    wait_for(
        "LookoutAlertSpoolFailing resolved at the receiver",
        Duration::from_secs(30),
        || receiver.find(recovered, "LookoutAlertSpoolFailing", "resolved", &[]),
    );
    assert_eq!(metric(&agent, "lookout_alert_spool_memory_only"), 0.0);
    assert_eq!(metric(&agent, "lookout_alert_spool_disk_failing"), 0.0);
    assert!(
        metric_value(
            &agent.metrics(),
            "lookout_alert_spool_write_errors_total",
            &[]
        )
        .unwrap()
            > 0.0
    );
    drop(am);
    drop(agent);
    drop(disk);
}

/// The notices waiting on disk, as JSON, over every queue.
fn queued_notices(data_dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for q in std::fs::read_dir(data_dir.join("alerts/spool"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(q.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(f.path()).unwrap();
                out.push(
                    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["notice"].clone(),
                );
            }
        }
    }
    out
}

#[test]
fn a_clean_stop_while_the_alertmanager_is_down_loses_nothing() {
    let receiver = Receiver::start();
    let mut am = Alertmanager::start(free_port(), receiver.port);
    let (_stays, stays_re) = Sleeper::start("71");
    let (ends, ends_re) = Sleeper::start("72");
    let late_re = Sleeper::pattern("73");
    let mut agent = Agent::start(&format!(
        "{}{}{}{}",
        stuck_service("stays", &stays_re, ""),
        stuck_service("ends", &ends_re, ""),
        stuck_service("late", &late_re, ""),
        alerts_section(&[am.port], "")
    ));
    let data_dir = agent.dir.path().join("data");
    let has = |status: &str, svc: &str| {
        receiver.alerts().iter().any(|r| {
            r.label("alertname") == "ServiceStuckInitializing"
                && r.label("service") == svc
                && r.status == status
        })
    };
    wait_for("stays and ends paged", Duration::from_secs(30), || {
        (has("firing", "stays") && has("firing", "ends")).then_some(())
    });

    // Alertmanager goes down. Meanwhile `ends` ends (its resolution waits) and `late` starts
    // and fires (its firing waits); then the agent is stopped cleanly, which resolves what
    // still fires. Nothing answers: it all stays in the spool, one notice per alert.
    am.stop();
    drop(ends);
    let (_late, _) = Sleeper::start("73");
    let active = |agent: &Agent| active_alerts(agent, |a| label(a, "service").to_string());
    wait_for(
        "late firing, ends resolved",
        Duration::from_secs(20),
        || (active(&agent) == ["late", "stays"]).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    let stopping = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "a dead Alertmanager held up the stop for {:?}",
        stopping.elapsed()
    );
    let mut queued: Vec<(String, bool)> = queued_notices(&data_dir)
        .iter()
        .map(|n| (label(n, "service").to_string(), n.get("endsAt").is_some()))
        .collect();
    queued.sort();
    assert_eq!(
        queued,
        [
            ("ends".to_string(), true),
            ("late".to_string(), true),
            ("stays".to_string(), true)
        ],
        "the spool after the stop: every alert's resolution, once"
    );

    // Alertmanager returns, then the agent (same data dir and config).
    am.start_again();
    let back = Instant::now();
    let dir = std::mem::replace(&mut agent.dir, tempfile::tempdir().unwrap());
    let (port, config_path) = (agent.port, agent.config_path.clone());
    drop(agent);
    let agent = Agent::spawn(dir, port, config_path, &[]);
    agent.wait_ready(Duration::from_secs(30));

    // Everything delivered: the resolutions (`ends`, paged before the outage, is resolved at
    // the receiver), and what still holds (`stays`, and `late`, which Alertmanager never saw
    // before) fires again, one alert each.
    wait_for(
        "the resolutions delivered after the restarts",
        Duration::from_secs(30),
        || {
            let am_metrics = lookout_e2e::http_get(&am.url("/metrics"))?.1;
            let resolved = metric_value(
                &am_metrics,
                "alertmanager_alerts_received_total",
                &[("status", "resolved"), ("version", "v2")],
            )?;
            (resolved >= 2.0
                && receiver
                    .find(
                        back,
                        "ServiceStuckInitializing",
                        "resolved",
                        &[("service", "ends")],
                    )
                    .is_some())
            .then_some(())
        },
    );
    wait_for(
        "stays and late firing at Alertmanager",
        Duration::from_secs(30),
        || {
            let held: Vec<String> = am
                .alerts()
                .iter()
                .filter(|a| a["status"]["state"] == "active")
                .map(|a| label(a, "service").to_string())
                .collect();
            (held == ["late", "stays"]).then_some(())
        },
    );
    eprintln!(
        "figure: spooled resolutions delivered {:.1} s after Alertmanager and the agent restarted",
        back.elapsed().as_secs_f64()
    );
    // No outdated state: `ends` never fired again after its resolution.
    let ends_resolved = receiver
        .find(
            back,
            "ServiceStuckInitializing",
            "resolved",
            &[("service", "ends")],
        )
        .unwrap()
        .at;
    assert!(
        !receiver
            .alerts()
            .iter()
            .any(|r| r.at >= ends_resolved && r.status == "firing" && r.label("service") == "ends"),
        "ends fired again after its resolution"
    );
    wait_for("spool drained", Duration::from_secs(20), || {
        (metric(&agent, "lookout_alert_spool_depth") == 0.0).then_some(())
    });
}

#[test]
fn a_reload_that_lowers_spool_max_drops_only_what_the_new_bound_says_and_alerts() {
    let am_port = free_port();
    let (_a, a_re) = Sleeper::start("81");
    let (_b, b_re) = Sleeper::start("82");
    let (c, c_re) = Sleeper::start("83");
    let services = format!(
        "{}{}{}",
        stuck_service("a", &a_re, ""),
        stuck_service("b", &b_re, ""),
        stuck_service("c", &c_re, ""),
    );
    let bound = |max: usize| {
        let alerts = alerts_section(&[am_port], "").replacen(
            "resend_interval",
            &format!("spool_max = {max}\nresend_interval"),
            1,
        );
        format!("{services}{alerts}")
    };
    let agent = Agent::start(&bound(10));
    // No Alertmanager yet: a and b fire, c fires and resolves; the queue holds their latest
    // notices, the resolution included.
    let active = |agent: &Agent| {
        active_alerts(agent, |a| {
            format!("{}/{}", label(a, "alertname"), label(a, "service"))
        })
    };
    wait_for("a, b, c firing", Duration::from_secs(30), || {
        (active(&agent).len() == 3).then_some(())
    });
    drop(c);
    wait_for("c's resolution queued", Duration::from_secs(20), || {
        (active(&agent).len() == 2 && metric(&agent, "lookout_alert_spool_depth") == 3.0)
            .then_some(())
    });
    assert_eq!(
        metric_value(
            &agent.metrics(),
            "lookout_alert_notifications_total",
            &[("outcome", "dropped")]
        ),
        Some(0.0)
    );

    // The bound goes down to 2 by a reload: the queue holds 2 at once (not fewer: nothing
    // beyond what the bound says), c's resolution among them; the drops are counted and
    // alerted.
    agent.rewrite_config(&format!(
        "[agent]\nlisten = \"127.0.0.1:{}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"test-host\"\n\n{}",
        agent.port,
        agent.dir.path().join("data").display(),
        bound(2)
    ));
    agent.signal(libc::SIGHUP);
    wait_for("the new bound applied", Duration::from_secs(10), || {
        (metric(&agent, "lookout_alert_spool_depth") == 2.0).then_some(())
    });
    let data_dir = agent.dir.path().join("data");
    for _ in 0..5 {
        assert_eq!(metric(&agent, "lookout_alert_spool_depth"), 2.0);
        let queued = queued_notices(&data_dir);
        assert!(
            queued
                .iter()
                .any(|n| label(n, "service") == "c" && n.get("endsAt").is_some()),
            "c's resolution dropped: {queued:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let dropped = metric_value(
        &agent.metrics(),
        "lookout_alert_notifications_total",
        &[("outcome", "dropped")],
    )
    .unwrap();
    assert!(dropped >= 1.0, "dropped {dropped}");
    wait_for(
        "LookoutAlertSpoolFailing at the agent",
        Duration::from_secs(10),
        || {
            let (_, body) = agent.get("/api/v1/alerts")?;
            body.contains("LookoutAlertSpoolFailing")
                .then_some(body)
                .filter(|b| b.contains("at its bound"))
        },
    );

    // Alertmanager comes up: the resolution and every alert that still fires arrive (a
    // dropped firing notice is queued again at its next resend).
    let receiver = Receiver::start();
    let am = Alertmanager::start(am_port, receiver.port);
    wait_for(
        "every alert's latest state at Alertmanager",
        Duration::from_secs(30),
        || {
            let mut active: Vec<String> = am
                .alerts()
                .iter()
                .filter(|a| a["status"]["state"] == "active")
                .map(|a| format!("{}/{}", label(a, "alertname"), label(a, "service")))
                .collect();
            active.sort();
            let am_metrics = lookout_e2e::http_get(&am.url("/metrics"))?.1;
            let resolved = metric_value(
                &am_metrics,
                "alertmanager_alerts_received_total",
                &[("status", "resolved"), ("version", "v2")],
            )?;
            (resolved >= 1.0
                && active
                    == [
                        "LookoutAlertSpoolFailing/",
                        "ServiceStuckInitializing/a",
                        "ServiceStuckInitializing/b",
                    ])
            .then_some(())
        },
    );
}

/// bcrypt (cost 4) of [`PASSWORD`], for Alertmanager's `basic_auth_users`.
const PASSWORD_HASH: &str = "$2b$04$zy9YQtB/ke6KFScS5yapFu0dAYHYzW2UnrrpO2uTIdw36ot.hqxoy";
const PASSWORD: &str = "s3cr3t-pass";

/// Every file under `dir`, names and contents, as text.
fn everything_under(dir: &Path) -> String {
    let mut out = String::new();
    for e in walk(dir) {
        out.push_str(&e.display().to_string());
        out.push('\n');
        if e.is_file() {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&e).unwrap_or_default(),
            ));
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_401_waits_in_the_spool_until_the_credentials_are_fixed_and_never_leaks_them() {
    let receiver = Receiver::start();
    let am = Alertmanager::start_with_basic_auth(
        free_port(),
        receiver.port,
        "lookout",
        PASSWORD,
        PASSWORD_HASH,
    );
    let (_s, s_re) = Sleeper::start("91");
    let target = |password: &str| format!("http://lookout:{password}@127.0.0.1:{}", am.port);
    let config = |password: &str| {
        format!(
            "{}{}",
            stuck_service("behind-auth", &s_re, ""),
            // A long resend: what arrives after the fix comes from the queue, not a re-send.
            alerts_section(&[am.port], "")
                .replace("resend_interval = \"1s\"", "resend_interval = \"60s\"")
                .replace(
                    &format!("\"http://127.0.0.1:{}\"", am.port),
                    &format!("\"{}\"", target(password))
                )
        )
    };
    // Credentials being rotated: the agent still has the old password. Alertmanager answers
    // 401; the notice waits (retried), it is not dropped.
    let agent = Agent::start(&config("old-pass"));
    let data_dir = agent.dir.path().join("data");
    wait_for("401s retried", Duration::from_secs(30), || {
        let m = agent.metrics();
        (metric_value(
            &m,
            "lookout_alert_notifications_total",
            &[("outcome", "failed")],
        )? >= 3.0
            && metric(&agent, "lookout_alert_spool_depth") == 1.0)
            .then_some(())
    });
    assert!(agent.log().contains("401"), "{}", agent.log());
    assert_eq!(
        metric_value(
            &agent.metrics(),
            "lookout_alert_notifications_total",
            &[("outcome", "rejected")]
        ),
        Some(0.0)
    );
    assert!(am.alerts().is_empty(), "{:?}", am.alerts());
    let starts = {
        let (_, body) = agent.get("/api/v1/alerts").unwrap();
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        list[0]["startsAt"].as_str().unwrap().to_string()
    };

    // The password fixed by a reload: the same Alertmanager, its queue carried over, so the
    // alert arrives with its original startsAt at once (not only at its next resend).
    agent.rewrite_config(&format!(
        "[agent]\nlisten = \"127.0.0.1:{}\"\ninterval = \"1s\"\ndata_dir = \"{}\"\nhost = \"test-host\"\n\n{}",
        agent.port,
        data_dir.display(),
        config(PASSWORD)
    ));
    agent.signal(libc::SIGHUP);
    let got = wait_for("the alert at the receiver", Duration::from_secs(20), || {
        receiver.find(
            receiver.started,
            "ServiceStuckInitializing",
            "firing",
            &[("service", "behind-auth")],
        )
    });
    assert_eq!(got.alert["startsAt"].as_str().unwrap()[..19], starts[..19]);

    // Neither password in any file name or content under data_dir, nor in the log.
    let files = everything_under(&data_dir);
    let log = agent.log();
    for secret in ["old-pass", PASSWORD] {
        assert!(!files.contains(secret), "{secret} under data_dir:\n{files}");
        assert!(!log.contains(secret), "{secret} in the log");
    }
    for p in walk(&data_dir.join("alerts")) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", p.display());
    }
}

#[test]
fn a_hung_alertmanager_times_out_and_gets_the_resolution_when_it_wakes() {
    let receiver = Receiver::start();
    let am = Alertmanager::start(free_port(), receiver.port);
    let (s, s_re) = Sleeper::start("95");
    let agent = Agent::start(&format!(
        "{}{}",
        stuck_service("hung-am", &s_re, ""),
        alerts_section(&[am.port], "")
    ));
    let subject = [("service", "hung-am")];
    wait_for("paged", Duration::from_secs(30), || {
        receiver.find(
            receiver.started,
            "ServiceStuckInitializing",
            "firing",
            &subject,
        )
    });
    // Alertmanager hangs (accepts, never answers); the service ends meanwhile.
    am.pause();
    let failed = |agent: &Agent| {
        metric_value(
            &agent.metrics(),
            "lookout_alert_notifications_total",
            &[("outcome", "failed")],
        )
        .unwrap_or(0.0)
    };
    let failed_before = failed(&agent);
    drop(s);
    wait_for(
        "a request timed out (10 s) and the resolution waits",
        Duration::from_secs(30),
        || (failed(&agent) > failed_before).then_some(()),
    );
    // The agent is not held up by it: it answers, and its alert is resolved locally.
    let (status, body) = agent.get("/api/v1/alerts").unwrap();
    assert_eq!(status, 200);
    assert!(!body.contains("hung-am"), "{body}");
    assert!(metric(&agent, "lookout_alert_spool_depth") >= 1.0);
    let woke = Instant::now();
    am.resume();
    wait_for(
        "the resolution once Alertmanager wakes",
        Duration::from_secs(20),
        || receiver.find(woke, "ServiceStuckInitializing", "resolved", &subject),
    );
    // Requests the hung Alertmanager had accepted are processed when it wakes, possibly after
    // the resolution; the resolution's re-sends settle it: not active there.
    wait_for(
        "not active at Alertmanager",
        Duration::from_secs(20),
        || {
            (!am.alerts()
                .iter()
                .any(|a| label(a, "service") == "hung-am" && a["status"]["state"] == "active"))
            .then_some(())
        },
    );
}
