//! The agent's rules over the real signals of the components on main: the primary tracker's
//! `lookout_primary_up` (a tracker whose only replica does not exist) and its throttling (a
//! burst of slow requests through a real replica process), the host probe's thread counts
//! against the kernel's limits (with the threshold lowered so that this host's real figures
//! cross it), and a real cache whose source file and blob directory fail — so that a renamed
//! signal breaks this test, not a page at 3 a.m.

mod tracker_support;

use lookout_e2e::{Agent, free_port, metric_value, wait_for};
use serde_json::{Value, json};
use std::time::Duration;
use tracker_support::{concurrent_statuses, start_replicas};

fn find_alert(agent: &Agent, name: &str) -> Option<Value> {
    let (_, body) = agent.get("/api/v1/alerts")?;
    let list: Vec<Value> = serde_json::from_str(&body).ok()?;
    list.into_iter().find(|a| a["labels"]["alertname"] == name)
}

#[test]
fn primary_unavailable_and_host_thread_limit_fire_on_real_signals() {
    let dead = free_port();
    let agent = Agent::start(&format!(
        r#"[[tracker]]
service = "ghost"
discovery = {{ http = ["http://127.0.0.1:{dead}"] }}
discovery_timeout = "200ms"

[alerts.rules.PrimaryUnavailable]
for = "1s"
[alerts.rules.ThreadLimitNear]
for = "1s"
threshold = 0.000001
"#
    ));
    let primary = wait_for(
        "PrimaryUnavailable for ghost",
        Duration::from_secs(30),
        || find_alert(&agent, "PrimaryUnavailable"),
    );
    assert_eq!(primary["labels"]["service"], "ghost");
    assert_eq!(primary["labels"]["severity"], "page");
    assert_eq!(primary["labels"]["host"], "test-host");
    assert!(
        primary["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("ghost"),
        "{primary}"
    );

    let host = wait_for("host-wide ThreadLimitNear", Duration::from_secs(30), || {
        find_alert(&agent, "ThreadLimitNear").filter(|a| a["labels"]["scope"] == "host")
    });
    // The summary quotes the real figures of this host.
    let threads = metric_value(&agent.metrics(), "system_thread_count", &[]).unwrap();
    assert!(threads > 0.0);
    assert!(
        host["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("threads"),
        "{host}"
    );
    let text = agent.metrics();
    assert_eq!(
        metric_value(
            &text,
            "lookout_alerts_firing",
            &[("alertname", "PrimaryUnavailable"), ("severity", "page")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "lookout_alerts_firing",
            &[("alertname", "CacheStale"), ("severity", "page")]
        ),
        Some(0.0)
    );
}

#[test]
fn tracker_throttling_fires_on_real_429s() {
    let replicas = start_replicas(1, "421");
    let primary = &replicas[0];
    primary.set(json!({"delay_min_ms": 600, "delay_ms": 900, "delay_prob": 1.0}));
    let agent = Agent::start(&format!(
        "[[tracker]]\nservice = \"busy\"\ndiscovery = {{ http = [\"{}\"] }}\nmax_in_flight = 2\nqueue_timeout = \"50ms\"\nrequest_timeout = \"5s\"\n",
        primary.url
    ));
    wait_for("a primary for busy", Duration::from_secs(15), || {
        agent.get("/v1/primary/busy").filter(|(s, _)| *s == 200)
    });
    assert!(find_alert(&agent, "TrackerThrottling").is_none());
    let statuses =
        concurrent_statuses((0..6).map(|i| agent.url(&format!("/v1/proxy/busy/slow/{i}"))));
    assert!(
        statuses.contains(&429),
        "no request was throttled: {statuses:?}"
    );
    let alert = wait_for(
        "TrackerThrottling for busy",
        Duration::from_secs(15),
        || find_alert(&agent, "TrackerThrottling"),
    );
    assert_eq!(alert["labels"]["service"], "busy");
    assert_eq!(alert["labels"]["severity"], "ticket");
    assert_eq!(alert["status"]["state"], "active");
}

#[test]
fn cache_alerts_fire_on_a_real_cache_whose_source_and_blob_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("present.json"), br#"{"a":1}"#).unwrap();
    let d = dir.path().display();
    let agent = Agent::start(&format!(
        r#"[[cache]]
name = "nosource"
source = {{ file = "{d}/missing.json" }}
blob = "file://{d}/blob"
check_interval = "1s"

[[cache]]
name = "noblob"
source = {{ file = "{d}/present.json" }}
blob = "file:///proc/lookout-no-such-dir"
check_interval = "1s"

[alerts.rules.CacheSourceFailing]
for = "1s"
[alerts.rules.CacheBlobUnavailable]
for = "1s"
"#
    ));
    let failing = wait_for(
        "CacheSourceFailing for nosource",
        Duration::from_secs(30),
        || find_alert(&agent, "CacheSourceFailing"),
    );
    assert_eq!(failing["labels"]["cache"], "nosource");
    assert_eq!(failing["labels"]["severity"], "ticket");
    let blob = wait_for(
        "CacheBlobUnavailable for noblob",
        Duration::from_secs(30),
        || find_alert(&agent, "CacheBlobUnavailable"),
    );
    assert_eq!(blob["labels"]["cache"], "noblob");
    assert_eq!(blob["labels"]["severity"], "page");
    // Each alert names only its own cache: the healthy half of each is quiet.
    let (_, body) = agent.get("/api/v1/alerts").unwrap();
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(
        !list
            .iter()
            .any(|a| a["labels"]["alertname"] == "CacheBlobUnavailable"
                && a["labels"]["cache"] == "nosource")
    );
}
