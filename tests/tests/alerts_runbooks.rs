//! Every runbook link answers: `/runbooks/<AlertName>` serves the guide of
//! alerts/runbooks/<AlertName>.md (markdown, or HTML for browsers), 404 for other names; and
//! the `runbook_url` of a live alert follows `runbook_base_url`.

use lookout_e2e::{Agent, block_on, client, wait_for};
use std::time::Duration;

/// The repository this test was compiled from (not the support library's, which a shared
/// target directory may have built from another checkout).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn alert_names() -> Vec<String> {
    std::fs::read_to_string(repo_root().join("agent/src/alerting/names.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| {
            l.split_once(": &str = \"")
                .map(|(_, v)| v.trim_end_matches("\";").to_string())
        })
        .collect()
}

#[test]
fn every_runbook_link_answers_200_with_its_guide() {
    let agent = Agent::start("");
    agent.wait_ready(Duration::from_secs(30));
    let names = alert_names();
    assert_eq!(names.len(), 18);
    for name in &names {
        let (status, body) = agent.get(&format!("/runbooks/{name}")).unwrap();
        assert_eq!(status, 200, "{name}");
        let file = std::fs::read_to_string(repo_root().join(format!("alerts/runbooks/{name}.md")))
            .unwrap();
        assert_eq!(body, file, "{name}: the served guide is the repository's");
    }
    let (status, _) = agent.get("/runbooks/NoSuchAlert").unwrap();
    assert_eq!(status, 404);

    // Browsers get a page.
    let (ctype, html) = block_on(async {
        let r = client()
            .get(agent.url("/runbooks/PrimaryUnavailable"))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        (ctype, r.text().await.unwrap())
    });
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(html.contains("<title>PrimaryUnavailable"));

    // No alert on an idle agent: an empty list, not an error.
    let (status, body) = agent.get("/api/v1/alerts").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn runbook_url_follows_runbook_base_url() {
    let mut sleeper = std::process::Command::new("sleep")
        .arg(format!("3600.9{}", std::process::id()))
        .spawn()
        .unwrap();
    let config = format!(
        "[[service]]\nname = \"stuck\"\nmatch = {{ cmdline = \"^sleep 3600\\\\.9{}$\" }}\nready = {{ exec = [\"false\"] }}\ncold_start_budget = \"1s\"\n\n[alerts]\nrunbook_base_url = \"https://wiki.example.com/lookout\"\n",
        std::process::id()
    );
    let agent = Agent::start(&config);
    let alert = wait_for(
        "ServiceStuckInitializing at /api/v1/alerts",
        Duration::from_secs(30),
        || {
            let (_, body) = agent.get("/api/v1/alerts")?;
            let list: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
            list.into_iter()
                .find(|a| a["labels"]["alertname"] == "ServiceStuckInitializing")
        },
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://wiki.example.com/lookout/ServiceStuckInitializing"
    );
    assert_eq!(alert["labels"]["service"], "stuck");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["host"], "test-host");
    assert_eq!(alert["status"]["state"], "active");
    assert!(alert["startsAt"].as_str().unwrap() < alert["endsAt"].as_str().unwrap());
}
