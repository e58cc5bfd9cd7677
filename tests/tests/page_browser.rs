//! The status page (`GET /`) in a real headless browser (Debian chromium): an agent watching
//! a real child process, a cache (file source, file:// blob tier), a tracker over two replica
//! processes, and a firing alert. The page loads without a console message, its numbers are
//! those of `/metrics` at the same moment, its runbook link answers, and a screenshot is kept
//! under `$CARGO_TARGET_DIR/page-artifacts/`.

mod page_support;
mod tracker_support;

use lookout_e2e::{Agent, free_port, http_get, spawn_test_child, wait_for};
use page_support::{attr_values, dump_dom, metrics_by_key, page_values, screenshot};
use std::time::Duration;
use tracker_support::start_replicas;

const CHILD_BIN: &str = env!("CARGO_BIN_EXE_lookout-test-child");

#[test]
fn the_page_shows_what_metrics_shows_in_a_real_browser() {
    // The harness must see console messages at all, or "no console message" proves nothing.
    let probe = page_support::run(
        "data:text/html,<script>console.error('lookout-probe-message')</script>",
        &["--dump-dom"],
    );
    assert!(
        probe
            .console
            .iter()
            .any(|l| l.contains("lookout-probe-message")),
        "chromium's console log is not captured: {}",
        probe.stderr
    );

    let port = free_port();
    let _child = spawn_test_child(CHILD_BIN, 12, 0.0, port);
    let replicas = start_replicas(2, "421");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("config.json");
    std::fs::write(&source, br#"{"feature": "on"}"#).unwrap();
    let blob = dir.path().join("blob");
    std::fs::create_dir_all(&blob).unwrap();
    let urls: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url)).collect();
    let agent = Agent::start(&format!(
        r#"[[service]]
name = "api<&>"
match = {{ cmdline = 'lookout-test-child .*--port {port}$' }}
ready = {{ tcp = "127.0.0.1:{port}" }}
expected_max_threads = 4
cold_start_budget = "30s"

[[cache]]
name = "fleet-config"
source = {{ file = "{}" }}
blob = "file://{}"
check_interval = "1s"
refresh_interval = "1m"

[[tracker]]
service = "configsvc"
discovery = {{ http = [{}] }}
request_timeout = "1s"

[alerts.rules.ThreadCountAboveExpected]
for = "1s"
"#,
        source.display(),
        blob.display(),
        urls.join(", ")
    ));
    agent.wait_ready(Duration::from_secs(30));
    wait_for(
        "ThreadCountAboveExpected firing",
        Duration::from_secs(30),
        || {
            let (_, body) = agent.get("/api/v1/alerts")?;
            body.contains("ThreadCountAboveExpected").then_some(())
        },
    );
    wait_for("the tracker's primary", Duration::from_secs(20), || {
        (agent.metric("lookout_primary_up", &[("service", "configsvc")]) == Some(1.0)).then_some(())
    });
    wait_for("cache version 1", Duration::from_secs(20), || {
        (agent.metric("lookout_cache_version", &[("cache", "fleet-config")]) >= Some(1.0))
            .then_some(())
    });

    // The same moment: /metrics read every 100 ms while the browser loads the page. A value
    // that did not move over all those reads must be on the page exactly; every series on the
    // page must be on /metrics.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (dom, reads) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut reads = vec![metrics_by_key(&agent.metrics())];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                reads.push(metrics_by_key(&agent.metrics()));
            }
            reads.push(metrics_by_key(&agent.metrics()));
            reads
        });
        std::thread::sleep(Duration::from_millis(150));
        let dom = dump_dom(&agent.url("/"));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (dom, poller.join().unwrap())
    });
    assert!(reads.len() >= 4, "{} /metrics reads", reads.len());
    let before = reads[0].clone();
    assert!(
        dom.console.is_empty(),
        "console messages: {:#?}",
        dom.console
    );
    let html = &dom.stdout;
    assert!(html.contains("<h1>lookout · test-host</h1>"), "{html}");

    let values = page_values(html);
    let mut compared = 0;
    for (key, shown) in &values {
        let seen: std::collections::BTreeSet<Option<&String>> =
            reads.iter().map(|r| r.get(key)).collect();
        assert!(
            seen.iter().any(Option::is_some),
            "the page shows {key} = {shown}, which /metrics does not have"
        );
        if seen.len() == 1 {
            compared += 1;
            assert_eq!(
                Some(shown),
                reads[0].get(key),
                "{key}: page {shown}, /metrics {seen:?}"
            );
        }
    }
    // The stable values the test is about are among them.
    let svc = r#"service="api<&>""#;
    for key in [
        format!("process_thread_count{{{svc}}}"),
        format!(r#"lookout_service_thread_limit{{kind="expected",{svc}}}"#),
        format!("lookout_service_up{{{svc}}}"),
        r#"lookout_cache_version{cache="fleet-config"}"#.to_string(),
        r#"lookout_cache_blob_version{cache="fleet-config"}"#.to_string(),
        r#"lookout_cache_version_lag{cache="fleet-config"}"#.to_string(),
        r#"lookout_primary_generation{service="configsvc"}"#.to_string(),
        r#"lookout_primary_changes_total{service="configsvc"}"#.to_string(),
        r#"system_thread_limit{kind="pid_max"}"#.to_string(),
    ] {
        let shown = values.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
        assert!(shown.is_some(), "the page does not show {key}");
        assert_eq!(shown, before.get(&key), "{key}");
    }
    assert!(compared >= 20, "only {compared} values compared");
    assert_eq!(
        values
            .iter()
            .find(|(k, _)| k == &format!("process_thread_count{{{svc}}}"))
            .map(|(_, v)| v.as_str()),
        Some("13"),
        "the child has 12 parked threads and its main thread"
    );

    // Names from the config are escaped, never markup.
    assert!(html.contains("api&lt;&amp;&gt;"));
    assert!(!html.contains("api<&>"));

    // The firing alert, with a runbook link that answers.
    assert_eq!(
        attr_values(html, "data-alert"),
        vec!["ThreadCountAboveExpected"]
    );
    let runbook = html
        .split("class=\"runbook\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a runbook link")
        .replace("&amp;", "&");
    assert!(
        runbook.ends_with("/runbooks/ThreadCountAboveExpected"),
        "{runbook}"
    );
    let (status, body) = http_get(&runbook).expect("runbook reachable");
    assert_eq!(status, 200);
    assert!(body.starts_with("# ThreadCountAboveExpected"));

    // The tracker's primary is the first replica; every chart links to /metrics.
    assert!(
        html.contains(&format!(
            r#"<code class="primary">{}</code>"#,
            replicas[0].url
        )),
        "primary URL not shown"
    );
    let charts = html.matches("<svg class=\"chart\"").count();
    assert!(charts >= 3, "{charts} charts");
    assert!(attr_values(html, "data-src").len() >= charts);

    // The screenshot, kept for people to look at.
    let png = page_support::artifact_dir().join("page.png");
    let shot = screenshot(&agent.url("/"), &png, 1400, 2600);
    assert!(
        shot.console.is_empty(),
        "console messages: {:#?}",
        shot.console
    );
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 50_000, "screenshot of {size} bytes looks empty");
    eprintln!("screenshot: {}", png.display());
}
