//! The primary tracker of a real `lookout run`, against three real replica processes speaking
//! the discovery protocol: `/v1/primary`, the proxy (method, path, query, headers, streamed
//! bodies), failover by 421 with a hint (no discovery call), by a killed primary (exactly one
//! discovery call), and 503 when no replica knows a primary.

mod tracker_support;

use lookout_e2e::{Agent, block_on, client, wait_for};
use serde_json::{Value, json};
use std::time::Duration;
use tracker_support::{discovery_calls, failover, start_replicas};

fn primary_of(agent: &Agent) -> Option<(u16, Value)> {
    let (status, body) = agent.get("/v1/primary/configsvc")?;
    Some((status, serde_json::from_str(&body).ok()?))
}

fn wait_primary(agent: &Agent, url: &str) -> Value {
    wait_for(
        &format!("tracker to name {url}"),
        Duration::from_secs(15),
        || {
            primary_of(agent)
                .filter(|(s, v)| *s == 200 && v["primary"] == json!(url))
                .map(|(_, v)| v)
        },
    )
}

#[test]
fn http_discovery_proxy_and_failover() {
    let mut replicas = start_replicas(3, "421");
    let urls: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url)).collect();
    let agent = Agent::start(&format!(
        "[[tracker]]\nservice = \"configsvc\"\ndiscovery = {{ http = [{}] }}\nrequest_timeout = \"1s\"\ndiscovery_timeout = \"500ms\"\n",
        urls.join(", ")
    ));
    let first = wait_primary(&agent, &replicas[0].url);
    assert!(first["generation"].as_u64().unwrap() >= 1, "{first}");
    assert!(first["since_seconds"].as_f64().unwrap() >= 0.0, "{first}");
    assert_eq!(agent.get("/v1/primary/nosuch").map(|(s, _)| s), Some(404));

    // Proxy: method, path and query reach the primary.
    let (status, body) = agent.get("/v1/proxy/configsvc/items/42?x=1&y=two").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["served_by"], json!(replicas[0].url));
    assert_eq!(v["path"], json!("/items/42?x=1&y=two"));
    assert_eq!(v["method"], json!("GET"));

    // End-to-end headers reach the primary; hop-by-hop ones stay behind.
    let seen: Value = block_on(async {
        client()
            .delete(agent.url("/v1/proxy/configsvc/headers"))
            .header("x-custom", "passed")
            .header("proxy-authorization", "Basic c2VjcmV0")
            .header("keep-alive", "timeout=5")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(seen["method"], json!("DELETE"));
    let headers = &seen["headers"];
    assert_eq!(headers["x-custom"], json!("passed"), "{seen}");
    assert!(headers.get("proxy-authorization").is_none(), "{seen}");
    assert!(headers.get("keep-alive").is_none(), "{seen}");
    assert_eq!(
        headers["host"],
        json!(replicas[0].url.trim_start_matches("http://")),
        "{seen}"
    );

    // A buffered body and headers both ways.
    let (status, echoed, header) = block_on(async {
        let r = client()
            .put(agent.url("/v1/proxy/configsvc/echo"))
            .header("x-echo", "kept")
            .header("content-type", "text/plain")
            .body("hello primary")
            .send()
            .await
            .unwrap();
        let h = r
            .headers()
            .get("x-echo")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), r.text().await.unwrap(), h)
    });
    assert_eq!(
        (status, echoed.as_str(), header.as_deref()),
        (200, "hello primary", Some("kept"))
    );

    // A streamed (chunked) request body of 3 MiB comes back whole.
    let chunk = vec![b'z'; 64 * 1024];
    let (status, len) = block_on(async {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..48).map(|_| Ok(chunk.clone())).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let r = client()
            .post(agent.url("/v1/proxy/configsvc/echo"))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().len())
    });
    assert_eq!((status, len), (200, 48 * 64 * 1024));

    // Failover 1: the old primary answers 421 naming the new one: followed, no discovery call.
    for r in &replicas {
        r.reset_stats();
    }
    failover(&replicas, 1, 2, "421-hint");
    let (status, body) = agent.get("/v1/proxy/configsvc/after-hint").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["served_by"],
        json!(replicas[1].url)
    );
    assert_eq!(
        discovery_calls(&replicas),
        0,
        "a 421 hint must not cost a discovery call"
    );
    wait_primary(&agent, &replicas[1].url);

    // Failover 2: the primary dies (connections refused): exactly one discovery call.
    for r in &replicas {
        r.reset_stats();
    }
    replicas[0].set(json!({"primary": replicas[2].url, "term": 3}));
    replicas[2].set(json!({"primary": replicas[2].url, "term": 3}));
    replicas[1].kill();
    let (status, body) = agent.get("/v1/proxy/configsvc/after-kill").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["served_by"],
        json!(replicas[2].url)
    );
    assert_eq!(
        discovery_calls(&replicas),
        1,
        "one failover, one discovery call"
    );
    let now = wait_primary(&agent, &replicas[2].url);
    assert!(
        now["generation"].as_u64() > first["generation"].as_u64(),
        "{now}"
    );
    assert_eq!(
        now["fence"],
        json!(3),
        "the replica protocol's term is the fencing token"
    );

    // Nobody knows a primary and the last one resets connections: 503, and /v1/primary too.
    replicas[0].set(json!({"primary": null}));
    replicas[2].set(json!({"primary": null, "mode": "reset"}));
    let (status, body) = agent.get("/v1/proxy/configsvc/nobody").unwrap();
    assert_eq!(status, 503, "{body}");
    let (status, _) = primary_of(&agent).unwrap();
    assert_eq!(status, 503);

    // A primary appears again: the tracker finds it by itself (no request needed).
    replicas[0].set(json!({"primary": replicas[0].url, "term": 4}));
    replicas[2].set(json!({"primary": replicas[0].url, "term": 4}));
    wait_primary(&agent, &replicas[0].url);

    let metrics = agent.metrics();
    let changes = lookout_e2e::metric_value(
        &metrics,
        "lookout_primary_changes_total",
        &[("service", "configsvc")],
    );
    assert!(
        changes.unwrap_or(0.0) >= 4.0,
        "changes {changes:?}\n{metrics}"
    );
    let ok = lookout_e2e::metric_value(
        &metrics,
        "lookout_tracker_requests_total",
        &[("service", "configsvc"), ("outcome", "ok")],
    );
    assert!(ok.unwrap_or(0.0) >= 5.0, "ok requests {ok:?}");
    let up = wait_for("lookout_primary_up 1", Duration::from_secs(5), || {
        agent
            .metric("lookout_primary_up", &[("service", "configsvc")])
            .filter(|v| *v == 1.0)
    });
    assert_eq!(up, 1.0);
    assert!(
        metrics.contains("lookout_primary_discovery_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(agent.log().contains("primary changed"), "{}", agent.log());
}
