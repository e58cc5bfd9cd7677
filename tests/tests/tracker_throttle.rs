//! Throttling through a real `lookout run`: twice `max_in_flight` slow requests at once never
//! put more than `max_in_flight` at the primary (counted by the replica itself); the rest wait
//! for a slot, or get 429 once `queue_timeout` passes.

mod tracker_support;

use lookout_e2e::{Agent, wait_for};
use serde_json::json;
use std::time::Duration;
use tracker_support::{concurrent_statuses, start_replicas};

const MAX: usize = 4;

/// Fire `2 × MAX` concurrent GETs through the proxy of `service`; their statuses.
fn burst(agent: &Agent, service: &str) -> Vec<u16> {
    concurrent_statuses((0..2 * MAX).map(|i| agent.url(&format!("/v1/proxy/{service}/slow/{i}"))))
}

#[test]
fn never_more_than_max_in_flight_at_the_primary() {
    let replicas = start_replicas(1, "421");
    let primary = &replicas[0];
    // Every request takes 600–1000 ms at the primary.
    primary.set(json!({"delay_min_ms": 600, "delay_ms": 1000, "delay_prob": 1.0}));
    let agent = Agent::start(&format!(
        "[[tracker]]\nservice = \"impatient\"\ndiscovery = {{ http = [\"{url}\"] }}\nmax_in_flight = {MAX}\nqueue_timeout = \"100ms\"\nrequest_timeout = \"5s\"\n\n\
         [[tracker]]\nservice = \"patient\"\ndiscovery = {{ http = [\"{url}\"] }}\nmax_in_flight = {MAX}\nqueue_timeout = \"20s\"\nrequest_timeout = \"5s\"\n",
        url = primary.url
    ));
    for service in ["impatient", "patient"] {
        wait_for("a primary", Duration::from_secs(15), || {
            agent
                .get(&format!("/v1/primary/{service}"))
                .filter(|(s, _)| *s == 200)
        });
    }

    // Patient callers all get through, at most MAX at a time.
    primary.reset_stats();
    let statuses = burst(&agent, "patient");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let max_seen = primary.stat("max_in_flight");
    assert!(
        max_seen <= MAX as i64,
        "{max_seen} requests at the primary at once, max_in_flight is {MAX}"
    );
    assert_eq!(primary.stat("served"), 2 * MAX as i64);

    // Impatient callers: the ones without a slot within 100 ms get 429, the others 200.
    primary.set(json!({"delay_min_ms": 600, "delay_ms": 1000, "delay_prob": 1.0}));
    primary.reset_stats();
    let statuses = burst(&agent, "impatient");
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        ok + throttled,
        2 * MAX,
        "only 200 or 429 expected: {statuses:?}"
    );
    assert!(throttled >= 1, "nobody was throttled: {statuses:?}");
    assert!((1..=MAX).contains(&ok), "{statuses:?}");
    let max_seen = primary.stat("max_in_flight");
    assert!(
        max_seen <= MAX as i64,
        "{max_seen} requests at the primary at once, max_in_flight is {MAX}"
    );
    assert_eq!(
        primary.stat("served"),
        ok as i64,
        "only admitted requests reach the primary"
    );

    let counted = wait_for("throttled counter", Duration::from_secs(5), || {
        agent
            .metric(
                "lookout_tracker_throttled_total",
                &[("service", "impatient")],
            )
            .filter(|v| *v >= throttled as f64)
    });
    assert_eq!(counted, throttled as f64);
    assert_eq!(
        agent.metric(
            "lookout_tracker_requests_total",
            &[("service", "impatient"), ("outcome", "throttled")]
        ),
        Some(throttled as f64)
    );
}
