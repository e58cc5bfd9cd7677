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

use lookout_e2e::{Agent, free_port, http_get, metric_value, wait_for};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Webhook payloads received, with the path they were posted to (`/page` or `/ticket`).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    port: u16,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            got: Arc::default(),
            port: listener.local_addr().unwrap().port(),
        };
        let got = r.got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let got = got.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_ok()
                        && let Ok(v) = serde_json::from_slice::<Value>(&body)
                    {
                        got.lock().unwrap().push((path, v));
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        r
    }

    fn payloads(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }

    /// Every (path, status, alert) received so far.
    fn alerts(&self) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, p) in self.payloads() {
            for a in p["alerts"].as_array().cloned().unwrap_or_default() {
                out.push((
                    path.clone(),
                    a["status"].as_str().unwrap_or("").to_string(),
                    a,
                ));
            }
        }
        out
    }
}

fn label<'a>(a: &'a Value, k: &str) -> &'a str {
    a["labels"][k].as_str().unwrap_or("")
}

/// A private Alertmanager routing severity=page to `/page` and the rest to `/ticket`.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(port: u16, receiver: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"route:
  receiver: ticket
  group_by: [alertname, host]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: page
receivers:
  - name: page
    webhook_configs: [{{url: "http://127.0.0.1:{receiver}/page", send_resolved: true}}]
  - name: ticket
    webhook_configs: [{{url: "http://127.0.0.1:{receiver}/ticket", send_resolved: true}}]
"#
        );
        let config_path = dir.path().join("am.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("am.log")).unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus-alertmanager (tests/setup/servers.sh installs it)");
        let am = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        wait_for("Alertmanager ready", Duration::from_secs(30), || {
            matches!(http_get(&am.url("/-/ready")), Some((200, _))).then_some(())
        });
        am
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn alerts(&self) -> Vec<Value> {
        http_get(&self.url("/api/v2/alerts"))
            .and_then(|(_, b)| serde_json::from_str::<Vec<Value>>(&b).ok())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sleep` process the agent watches by its unique command line; killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn start(tag: &str) -> (Self, String) {
        let arg = format!("3600.{tag}{}", std::process::id());
        let child = Command::new("sleep").arg(&arg).spawn().unwrap();
        (
            Sleeper(child),
            format!("^sleep {}$", arg.replace('.', "\\\\.")),
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn service(name: &str, cmdline: &str, extra: &str) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nmatch = {{ cmdline = \"{cmdline}\" }}\nready = {{ exec = [\"false\"] }}\ncold_start_budget = \"2s\"\n{extra}\n"
    )
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
        receiver.alerts().into_iter().find(|(path, _, a)| {
            path == "/ticket"
                && label(a, "alertname") == "ThreadCountAboveExpected"
                && label(a, "service") == "stuck-a"
        })
    });
    assert!(
        !receiver
            .alerts()
            .iter()
            .any(|(path, _, a)| path == "/page" && label(a, "severity") == "ticket")
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
        !receiver
            .alerts()
            .iter()
            .any(|(_, status, _)| status == "resolved"),
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
            receiver.alerts().into_iter().find(|(path, status, a)| {
                path == "/page" && status == "resolved" && label(a, "service") == "stuck-a"
            })
        },
    );
    assert!(resolved.2["endsAt"].as_str().unwrap() > resolved.2["startsAt"].as_str().unwrap());
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

fn spool_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("alerts/spool"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
        })
        .unwrap_or(0)
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
                got.iter().any(|(p, s, a)| {
                    p == path
                        && s == status
                        && label(a, "alertname") == name
                        && label(a, "service") == svc
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
    wait_for("spool drained", Duration::from_secs(20), || {
        (metric(&agent, "lookout_alert_spool_depth", &[]) == 0.0 && spool_files(&data_dir) == 0)
            .then_some(())
    });
}
