//! The tracker's etcd resolver against a real 3-member etcd cluster on loopback (private
//! ports and data dirs), with three replica processes campaigning in the election through
//! etcd's JSON gateway. Killing the leader replica: its lease expires, another replica is
//! elected, and the tracker follows *by watching the election* (no request has to fail first);
//! the fencing token (the leader key's create revision) grows.

mod tracker_support;

use lookout_e2e::{Agent, free_port, wait_for};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tracker_support::Replica;

/// A private etcd cluster; members killed on drop.
struct EtcdCluster {
    members: Vec<Child>,
    client_urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    fn start(n: usize) -> EtcdCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut members = Vec::new();
        let mut client_urls = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "lookout-tracker-test"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start etcd (tests/setup/servers.sh installs it)");
            members.push(child);
            client_urls.push(client_url);
        }
        let cluster = EtcdCluster {
            members,
            client_urls,
            _dir: dir,
        };
        for url in &cluster.client_urls {
            wait_for(
                &format!("etcd {url} healthy"),
                Duration::from_secs(30),
                || {
                    lookout_e2e::http_get(&format!("{url}/health"))
                        .filter(|(s, b)| *s == 200 && b.contains("true"))
                },
            );
        }
        cluster
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

fn primary_of(agent: &Agent) -> Option<Value> {
    let (status, body) = agent.get("/v1/primary/configsvc")?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn leader_index(replicas: &[Replica]) -> Option<usize> {
    replicas.iter().position(|r| {
        r.child.is_some()
            && r.try_stats()
                .is_some_and(|s| s["is_primary"] == json!(true))
    })
}

#[test]
fn follows_the_etcd_election_leader() {
    let etcd = EtcdCluster::start(3);
    let endpoints = etcd.client_urls.join(",");
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| {
            Replica::start(&[
                "--etcd".into(),
                endpoints.clone(),
                "--election".into(),
                "configsvc".into(),
                "--lease-ttl".into(),
                "2".into(),
            ])
        })
        .collect();
    let endpoint_list: Vec<String> = etcd
        .client_urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect();
    let agent = Agent::start(&format!(
        "[[tracker]]\nservice = \"configsvc\"\ndiscovery = {{ etcd = {{ endpoints = [{}], election = \"configsvc\" }} }}\nrequest_timeout = \"1s\"\ndiscovery_timeout = \"1s\"\n",
        endpoint_list.join(", ")
    ));

    let first = wait_for("a leader replica", Duration::from_secs(20), || {
        leader_index(&replicas)
    });
    let seen = wait_for(
        "the tracker to name the leader",
        Duration::from_secs(20),
        || primary_of(&agent).filter(|v| v["primary"] == json!(replicas[first].url)),
    );
    let first_fence = seen["fence"]
        .as_i64()
        .expect("etcd create revision as fence");

    let (status, body) = agent.get("/v1/proxy/configsvc/hello").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["served_by"],
        json!(replicas[first].url)
    );

    // Kill the leader; send NO request: the tracker must learn of the successor from the
    // election itself.
    let requests_before = agent
        .metric(
            "lookout_tracker_requests_total",
            &[("service", "configsvc"), ("outcome", "ok")],
        )
        .unwrap_or(0.0);
    replicas[first].kill();
    let second = wait_for("a new leader replica", Duration::from_secs(20), || {
        leader_index(&replicas).filter(|i| *i != first)
    });
    let now = wait_for(
        "the tracker to follow the new leader",
        Duration::from_secs(20),
        || primary_of(&agent).filter(|v| v["primary"] == json!(replicas[second].url)),
    );
    assert!(
        now["fence"].as_i64().unwrap() > first_fence,
        "fencing token must grow: {first_fence} then {now}"
    );
    assert_eq!(
        agent
            .metric(
                "lookout_tracker_requests_total",
                &[("service", "configsvc"), ("outcome", "ok")]
            )
            .unwrap_or(0.0),
        requests_before,
        "the tracker followed without any request"
    );
    let (status, body) = agent.get("/v1/proxy/configsvc/after").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["served_by"],
        json!(replicas[second].url)
    );
    let log = agent.log();
    assert!(
        log.lines().any(|l| l.contains("primary changed")
            && l.contains("\"watch\"")
            && l.contains(&replicas[second].url)),
        "no 'primary changed' by the election watch in the log:\n{log}"
    );
}
