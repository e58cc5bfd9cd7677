//! The status page and `/metrics` stay consistent through a SIGHUP that removes a watched
//! service: at every moment the page shows only series `/metrics` has (just before or just
//! after), and once the reload is through, the removed service is gone from both (its gauges
//! from `/metrics`, everything from the page) while the kept one stays on both.

mod page_support;

use lookout_e2e::{Agent, free_port, spawn_test_child, wait_for};
use page_support::{attr_values, metrics_by_key, page_values};
use std::time::{Duration, Instant};

const CHILD_BIN: &str = env!("CARGO_BIN_EXE_lookout-test-child");

fn service(name: &str, port: u16) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nmatch = {{ cmdline = 'lookout-test-child .*--port {port}$' }}\nready = {{ tcp = \"127.0.0.1:{port}\" }}\nexpected_max_threads = 50\n"
    )
}

#[test]
fn page_and_metrics_agree_through_a_reload_that_removes_a_service() {
    let (pk, pg) = (free_port(), free_port());
    let _kept = spawn_test_child(CHILD_BIN, 2, 0.0, pk);
    let _gone = spawn_test_child(CHILD_BIN, 3, 0.0, pg);
    let agent = Agent::start(&format!("{}\n{}", service("kept", pk), service("gone", pg)));
    agent.wait_ready(Duration::from_secs(30));
    let page = || agent.get("/").expect("GET /");
    wait_for("both services on /metrics", Duration::from_secs(20), || {
        let m = agent.metrics();
        (m.contains(r#"process_thread_count{service="gone"}"#)
            && m.contains(r#"process_thread_count{service="kept"}"#))
        .then_some(())
    });
    let (status, html) = page();
    assert_eq!(status, 200);
    assert_eq!(
        attr_values(&html, "data-service"),
        vec!["gone", "kept", "lookout"]
    );

    // Reload without "gone"; read page and /metrics in turns until the reload is through and
    // a little after, checking every page against the /metrics reads around it.
    let text = std::fs::read_to_string(&agent.config_path).unwrap();
    let kept_only = text.split("[[service]]").next().unwrap().to_string() + &service("kept", pk);
    agent.rewrite_config(&kept_only);
    agent.signal(libc::SIGHUP);
    let started = Instant::now();
    let mut gone_since: Option<Instant> = None;
    let mut pages = 0;
    loop {
        let before = metrics_by_key(&agent.metrics());
        let (status, html) = page();
        let after = metrics_by_key(&agent.metrics());
        assert_eq!(status, 200);
        pages += 1;
        for (key, _) in page_values(&html) {
            assert!(
                before.contains_key(&key) || after.contains_key(&key),
                "page {pages} shows {key}, which /metrics has neither just before nor just after"
            );
        }
        // Its gauges go; its counters and histogram stay on /metrics (OpenTelemetry cannot
        // delete a counter's label set), but no longer under a watched service.
        let gone_on_metrics = !after.contains_key(r#"lookout_service_up{service="gone"}"#)
            && !after.contains_key(r#"process_thread_count{service="gone"}"#);
        if gone_on_metrics && gone_since.is_none() {
            gone_since = Some(Instant::now());
        }
        // Two more seconds of pages after the removal, to catch anything coming back.
        if gone_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "service \"gone\" still on /metrics 30 s after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pages >= 5, "{pages} pages read");

    let (_, html) = page();
    let metrics = agent.metrics();
    assert_eq!(attr_values(&html, "data-service"), vec!["kept", "lookout"]);
    assert!(
        !html.contains(r#"service=&quot;gone&quot;"#),
        "a series of the removed service is on the page"
    );
    assert!(!metrics.contains(r#"lookout_service_up{service="gone"}"#));
    assert!(metrics.contains(r#"process_thread_count{service="kept"}"#));
    assert!(
        page_values(&html)
            .iter()
            .any(|(k, v)| k == r#"process_thread_count{service="kept"}"# && v == "3"),
        "kept service's threads (2 parked + main) on the page"
    );
}
