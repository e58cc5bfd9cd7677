//! Services as they run on a fleet (issue 17): a prefork server (a private nginx with 4
//! workers) is one service whose thread, fd and CPU totals are the sums over its processes
//! read from /proc; a process in a real cgroup with `pids.max` = 64 that spawns threads gets
//! that limit reported and `ThreadLimitNear` firing with the cgroup as the nearest limit.

use lookout_e2e::{Agent, KillOnDrop, free_port, samples, wait_for};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD: &str = env!("CARGO_BIN_EXE_lookout-test-child");

/// The pid and every descendant of it, from /proc.
fn tree(root: i32) -> Vec<i32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the `(comm)`: state ppid ...
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: i32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == parent && !all.contains(&pid) {
                all.push(pid);
            }
        }
        i += 1;
    }
    all
}

/// (threads, utime + stime in seconds) of one process.
fn stat_of(pid: i32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // After comm: state(0) ppid(1) ... utime(11) stime(12) ... num_threads(17)
    let tick = 100.0; // USER_HZ on Linux
    let cpu = (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick;
    (f[17].parse().unwrap(), cpu)
}

fn fds_of(pid: i32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    lookout_e2e::metric_value(text, name, labels)
}

#[test]
fn a_prefork_server_is_one_service_with_the_sums_of_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 4;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let nginx = KillOnDrop(
        Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx (tests/setup/fleet.sh installs it)"),
    );
    let master = nginx.0.id() as i32;
    wait_for("nginx and its 4 workers", Duration::from_secs(10), || {
        (tree(master).len() == 5).then_some(())
    });
    // Two seconds of load (wrk, 8 connections) for the workers, so that their CPU is not
    // all zero.
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", "8", "-d", "2s"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run wrk (tests/setup/fleet.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The master's command line names our prefix; the workers' do not ("nginx: worker
    // process"): they belong to the service as its descendants.
    let extra = format!(
        "[[service]]\nname = \"web\"\nmatch = {{ cmdline = 'nginx: master process .*{}' }}\nready = {{ tcp = \"127.0.0.1:{port}\" }}\n",
        d.display()
    );
    let agent = Agent::start(&extra);
    agent.wait_ready(Duration::from_secs(20));
    let l = [("service", "web")];
    // Compare once the agent's view and /proc agree on the process set, reading /proc right
    // around a scrape; the workers are idle, so nothing moves in between.
    let (text, pids) = wait_for(
        "the agent counting 5 processes",
        Duration::from_secs(15),
        || {
            let text = agent.metrics();
            (value(&text, "lookout_service_processes", &l) == Some(5.0))
                .then(|| (text, tree(master)))
        },
    );
    assert_eq!(pids.len(), 5);
    let threads: f64 = pids.iter().map(|p| stat_of(*p).0).sum();
    let cpu: f64 = pids.iter().map(|p| stat_of(*p).1).sum();
    let fds: f64 = pids.iter().map(|p| fds_of(*p)).sum();
    assert_eq!(value(&text, "process_thread_count", &l), Some(threads));
    assert_eq!(value(&text, "process_open_fds", &l), Some(fds));
    let agent_cpu = value(&text, "process_cpu_time_seconds_total", &l).expect("cpu time");
    assert!(cpu > 0.0, "nginx used no CPU at all: nothing to compare");
    assert!(
        (agent_cpu - cpu).abs() <= 0.011,
        "agent {agent_cpu} s vs /proc {cpu} s"
    );
    // Bounded labels: one series per service, no pid label anywhere.
    for (labels, _) in samples(&text, "process_thread_count") {
        assert!(labels.iter().all(|(k, _)| k != "pid"), "{labels:?}");
    }
    assert_eq!(
        samples(&text, "process_thread_count")
            .iter()
            .filter(|(ls, _)| ls.iter().any(|(k, v)| k == "service" && v == "web"))
            .count(),
        1
    );
}

/// A child cgroup of the v1 pids hierarchy with `pids.max` set; removed on drop.
struct PidsCgroup(std::path::PathBuf);

impl PidsCgroup {
    fn new(max: u32) -> Self {
        let root = Path::new("/sys/fs/cgroup/pids");
        let root = if root.join("cgroup.procs").exists() {
            root.to_path_buf()
        } else {
            // cgroup2 only: the pids controller sits in the unified tree.
            Path::new("/sys/fs/cgroup").to_path_buf()
        };
        let dir = root.join(format!("lookout-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a cgroup (needs root)");
        std::fs::write(dir.join("pids.max"), max.to_string()).unwrap();
        Self(dir)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_cgroup_pids_limit_is_reported_and_is_the_nearest_limit_of_thread_limit_near() {
    let cg = PidsCgroup::new(64);
    let port = free_port();
    // The child joins the cgroup before it starts: 58 threads + main = 59 tasks of 64 (92%).
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {CHILD} --threads 58 --ready-after 0 --port {port}",
        cg.0.display()
    );
    let _child = KillOnDrop(
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let extra = format!(
        "[[service]]\nname = \"capped\"\nmatch = {{ cmdline = 'lookout-test-child .*--port {port}$' }}\n\n\
         [alerts]\nalertmanager = []\n[alerts.rules.ThreadLimitNear]\nfor = \"1s\"\n"
    );
    let agent = Agent::start(&extra);
    agent.wait_ready(Duration::from_secs(20));
    let l = [("service", "capped"), ("kind", "cgroup_pids")];
    wait_for("the cgroup limit reported", Duration::from_secs(15), || {
        let text = agent.metrics();
        (value(&text, "lookout_service_thread_limit", &l) == Some(64.0)
            && value(&text, "lookout_service_thread_limit_usage", &l) == Some(59.0))
        .then_some(())
    });
    let alert = wait_for("ThreadLimitNear firing", Duration::from_secs(20), || {
        let (_, body) = agent.get("/api/v1/alerts")?;
        let alerts: serde_json::Value = serde_json::from_str(&body).ok()?;
        alerts
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == "ThreadLimitNear" && a["labels"]["service"] == "capped"
            })
            .cloned()
    });
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("pids.max") && summary.contains("59 of 64"),
        "the cgroup is not named as the nearest limit: {summary:?}"
    );
}
