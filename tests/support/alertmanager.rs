//! A real Alertmanager (Debian `prometheus-alertmanager`, private instance on a chosen port
//! with its own data dir) routing to a webhook receiver inside the test, and the `sleep`
//! processes the alert tests watch.

use crate::{http_get, wait_for};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Webhook payloads received, with the path they were posted to (`/page` or `/ticket`) and
/// when.
#[derive(Clone)]
pub struct Receiver {
    got: Arc<Mutex<Vec<(String, Value, Instant)>>>,
    pub port: u16,
    /// When it started: before anything it received.
    pub started: Instant,
}

/// One alert of a webhook payload as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub status: String,
    pub alert: Value,
    pub at: Instant,
}

impl Received {
    pub fn label(&self, k: &str) -> &str {
        label(&self.alert, k)
    }
}

impl Receiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            got: Arc::default(),
            port: listener.local_addr().unwrap().port(),
            started: Instant::now(),
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
                        got.lock().unwrap().push((path, v, Instant::now()));
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        r
    }

    pub fn payloads(&self) -> Vec<(String, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(p, v, _)| (p.clone(), v.clone()))
            .collect()
    }

    /// Every alert received so far, in the order received.
    pub fn alerts(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for (path, p, at) in self.got.lock().unwrap().iter() {
            for a in p["alerts"].as_array().cloned().unwrap_or_default() {
                out.push(Received {
                    path: path.clone(),
                    status: a["status"].as_str().unwrap_or("").to_string(),
                    alert: a,
                    at: *at,
                });
            }
        }
        out
    }

    /// The first alert received after `since` with this name, status and subject labels.
    pub fn find(
        &self,
        since: Instant,
        name: &str,
        status: &str,
        subject: &[(&str, &str)],
    ) -> Option<Received> {
        self.alerts().into_iter().find(|r| {
            r.at >= since
                && r.status == status
                && r.label("alertname") == name
                && subject.iter().all(|(k, v)| r.label(k) == *v)
        })
    }
}

pub fn label<'a>(a: &'a Value, k: &str) -> &'a str {
    a["labels"][k].as_str().unwrap_or("")
}

/// A private Alertmanager routing severity=page to `/page` and the rest to `/ticket`, with
/// 1 s grouping so that tests see notifications within about a second.
pub struct Alertmanager {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// User and password of its basic auth, when it has one.
    auth: Option<(String, String)>,
}

impl Alertmanager {
    pub fn start(port: u16, receiver: u16) -> Self {
        Self::start_inner(port, receiver, None)
    }

    /// One that answers only requests with this basic auth (its `--web.config.file`; `hash`
    /// is the bcrypt hash of `password`), 401 to the rest.
    pub fn start_with_basic_auth(
        port: u16,
        receiver: u16,
        user: &str,
        password: &str,
        hash: &str,
    ) -> Self {
        Self::start_inner(
            port,
            receiver,
            Some((user.to_string(), password.to_string(), hash.to_string())),
        )
    }

    fn start_inner(port: u16, receiver: u16, auth: Option<(String, String, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some((user, _, hash)) = &auth {
            std::fs::write(
                dir.path().join("web.yml"),
                format!("basic_auth_users:\n  {user}: '{hash}'\n"),
            )
            .unwrap();
        }
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
        std::fs::write(dir.path().join("am.yml"), config).unwrap();
        let mut am = Alertmanager {
            child: None,
            port,
            dir,
            auth: auth.map(|(u, p, _)| (u, p)),
        };
        am.start_again();
        am
    }

    /// Start it (again, after [`Alertmanager::stop`]) on its port and data dir: what it
    /// persisted (its notification log) carries over, its alerts in memory do not.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("am.log"))
            .unwrap();
        let mut cmd = Command::new("prometheus-alertmanager");
        if self.auth.is_some() {
            cmd.arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ));
        }
        let child = cmd
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus-alertmanager (tests/setup/servers.sh installs it)");
        self.child = Some(child);
        wait_for("Alertmanager ready", Duration::from_secs(30), || {
            matches!(http_get(&self.url("/-/ready")), Some((200, _))).then_some(())
        });
    }

    /// Freeze it (SIGSTOP): connections are still accepted by the kernel, nothing answers —
    /// a hung Alertmanager. [`Alertmanager::resume`] lets it go on.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        if let Some(child) = &self.child {
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// Stop it cleanly (SIGTERM: it saves its notification log) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// A URL on it (with its credentials when it has basic auth).
    pub fn url(&self, path: &str) -> String {
        match &self.auth {
            Some((u, p)) => format!("http://{u}:{p}@127.0.0.1:{}{}", self.port, path),
            None => format!("http://127.0.0.1:{}{}", self.port, path),
        }
    }

    /// Alerts Alertmanager holds (active ones; with `?active=false...` others).
    pub fn alerts(&self) -> Vec<Value> {
        http_get(&self.url("/api/v2/alerts"))
            .and_then(|(_, b)| serde_json::from_str::<Vec<Value>>(&b).ok())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `sleep` process the agent watches by its unique command line; killed on drop.
pub struct Sleeper(pub Child);

impl Sleeper {
    /// Start one; returns it and the `cmdline` regex (TOML-escaped) that matches only it.
    /// `tag` must be digits: `sleep` takes `3600.<tag><pid>` as its duration.
    pub fn start(tag: &str) -> (Self, String) {
        let arg = format!("3600.{tag}{}", std::process::id());
        let child = Command::new("sleep").arg(&arg).spawn().unwrap();
        (Sleeper(child), Self::pattern(tag))
    }

    /// The pattern of [`Sleeper::start`]`(tag)`, for a process started later.
    pub fn pattern(tag: &str) -> String {
        let arg = format!("3600.{tag}{}", std::process::id());
        format!("^sleep {}$", arg.replace('.', "\\\\."))
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `[[service]]` that never becomes ready (`ready = exec false`), with a 2 s budget: it
/// raises ServiceStuckInitializing (page) 2 s after its process starts. `extra` adds keys
/// (`expected_max_threads = 0` also raises ThreadCountAboveExpected, a ticket).
pub fn stuck_service(name: &str, cmdline: &str, extra: &str) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nmatch = {{ cmdline = \"{cmdline}\" }}\nready = {{ exec = [\"false\"] }}\ncold_start_budget = \"2s\"\n{extra}\n"
    )
}
