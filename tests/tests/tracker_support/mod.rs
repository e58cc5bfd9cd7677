//! Shared by the tracker tests: replica processes (`lookout-test-replica`) with their admin
//! port, and failovers driven through it. Not a test file itself (cargo only builds
//! `tests/*.rs` as tests; this directory is a module of each).
#![allow(dead_code)]

use lookout_e2e::{block_on, client, free_port, wait_for};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const REPLICA_BIN: &str = env!("CARGO_BIN_EXE_lookout-test-replica");

/// One replica process; killed on drop.
pub struct Replica {
    pub child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub url: String,
}

impl Replica {
    /// Start a replica; `extra` are more arguments (`--primary URL`, `--etcd ...`).
    pub fn start(extra: &[String]) -> Replica {
        let port = free_port();
        let admin_port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(REPLICA_BIN)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin_port}")])
            .args(["--url", &url])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lookout-test-replica");
        let r = Replica {
            child: Some(child),
            port,
            admin_port,
            url,
        };
        wait_for("replica admin port", Duration::from_secs(10), || {
            r.try_stats()
        });
        r
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    pub fn try_stats(&self) -> Option<Value> {
        let url = self.admin("/admin/stats");
        block_on(async { client().get(url).send().await.ok()?.json().await.ok() })
    }

    pub fn stats(&self) -> Value {
        self.try_stats().expect("replica stats")
    }

    pub fn stat(&self, name: &str) -> i64 {
        self.stats()[name].as_i64().unwrap_or(0)
    }

    /// `POST /admin/state`; returns once the replica has applied it (ports opened/closed).
    pub fn set(&self, state: Value) {
        let url = self.admin("/admin/state");
        let status = block_on(async {
            client()
                .post(url)
                .json(&state)
                .send()
                .await
                .map(|r| r.status())
        })
        .expect("replica admin");
        assert!(status.is_success(), "replica admin answered {status}");
    }

    pub fn reset_stats(&self) {
        let url = self.admin("/admin/reset-stats");
        block_on(async { client().post(url).send().await }).expect("replica admin");
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` replicas, the first one primary (term 1), demoted ones failing with `mode`.
pub fn start_replicas(n: usize, mode: &str) -> Vec<Replica> {
    let replicas: Vec<Replica> = (0..n)
        .map(|_| Replica::start(&["--mode".into(), mode.into()]))
        .collect();
    let first = replicas[0].url.clone();
    for r in &replicas {
        r.set(json!({"primary": first, "term": 1}));
    }
    replicas
}

/// Move the primary role to `new` (term `term`); the old primary fails with `mode` from then
/// on. Every other replica learns of the new primary before the old one starts failing, so a
/// discovery triggered by that failure finds the new primary at its first call.
pub fn failover(replicas: &[Replica], new: usize, term: i64, mode: &str) {
    let url = replicas[new].url.clone();
    let old: Vec<usize> = (0..replicas.len())
        .filter(|&i| i != new && replicas[i].stats()["is_primary"] == json!(true))
        .collect();
    // The new primary first (its port opens), then the bystanders, the old primary last.
    let mut order = vec![new];
    order.extend((0..replicas.len()).filter(|i| *i != new && !old.contains(i)));
    order.extend(old);
    for i in order {
        replicas[i].set(json!({"primary": url, "term": term, "mode": mode}));
    }
}

/// Sum of `/primary` calls the replicas answered.
pub fn discovery_calls(replicas: &[Replica]) -> i64 {
    replicas
        .iter()
        .filter(|r| r.child.is_some())
        .map(|r| r.stat("primary_calls"))
        .sum()
}

/// GET every URL at once (through the agent's proxy, typically); their status codes, 0 for a
/// request that failed outright.
pub fn concurrent_statuses(urls: impl IntoIterator<Item = String>) -> Vec<u16> {
    block_on(async {
        let c = client();
        let requests = urls.into_iter().map(|url| {
            let c = c.clone();
            async move {
                c.get(url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        futures::future::join_all(requests).await
    })
}
