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
    assert_eq!(names.len(), 19);
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

/// The runbook link of every central rule: the central base (the `url` label of
/// `lookout_runbook_base_url`), else another agent that is up, else the instance itself —
/// the same template for all, ending in the rule's own alert name.
fn central_runbook_url(name: &str) -> String {
    format!(
        r#"runbook_url: '{{{{ with query "lookout_runbook_base_url{{url!=\"\"}}" }}}}{{{{ . | first | label "url" }}}}{{{{ else }}}}{{{{ with printf "up{{job=\"lookout\",instance!=\"%s\"}} == 1" $labels.instance | query }}}}http://{{{{ . | sortByLabel "instance" | first | label "instance" }}}}/runbooks/{{{{ else }}}}http://{{{{ $labels.instance }}}}/runbooks/{{{{ end }}}}{{{{ end }}}}{name}'"#
    )
}

#[test]
fn every_runbook_link_in_rules_and_dashboards_goes_through_the_central_base() {
    let names = alert_names();
    let mut problems = Vec::new();

    // Central rules: each alert's runbook_url is the shared template with its own name.
    let rules = std::fs::read_to_string(repo_root().join("alerts/lookout.rules.yml")).unwrap();
    let mut current: Option<String> = None;
    let mut alerts = 0;
    for line in rules.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert: ") {
            current = Some(name.to_string());
            alerts += 1;
        } else if t.starts_with("- record: ") {
            current = None;
        } else if t.starts_with("runbook_url:") {
            match &current {
                Some(name) if t == central_runbook_url(name) => {}
                Some(name) => problems.push(format!("lookout.rules.yml {name}: {t}")),
                None => problems.push(format!(
                    "lookout.rules.yml: runbook_url outside an alert: {t}"
                )),
            }
            if let Some(name) = &current
                && !names.contains(name)
            {
                problems.push(format!("lookout.rules.yml: {name} is not an alert name"));
            }
        }
    }
    assert!(
        alerts >= 19,
        "only {alerts} alerts read from lookout.rules.yml"
    );
    assert_eq!(
        rules.matches("runbook_url:").count(),
        alerts,
        "every central alert has exactly one runbook_url"
    );
    assert!(!rules.contains("example.invalid"));
    assert!(rules.contains("- record: lookout_runbook_base_url"));

    // Dashboards: `${runbook_base}/runbooks/<AlertName>` (or the row's/series' alertname),
    // the same layout as the agent and the built site.
    let mut links = 0;
    for entry in std::fs::read_dir(repo_root().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, _) in text.match_indices("\"url\": \"") {
            let start = i + "\"url\": \"".len();
            let end = start + text[start..].find('"').unwrap();
            let url = &text[start..end];
            if !url.contains("runbooks") {
                continue;
            }
            links += 1;
            let Some(name) = url.strip_prefix("${runbook_base}/runbooks/") else {
                problems.push(format!("{}: {url}", path.display()));
                continue;
            };
            if !(names.iter().any(|n| n == name) || name.starts_with("${__")) {
                problems.push(format!(
                    "{}: link to unknown runbook {name}",
                    path.display()
                ));
            }
        }
    }
    assert!(links > 20, "only {links} dashboard runbook links found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A static file server (Python's http.server) over `dir`; killed on drop.
struct StaticSite {
    child: std::process::Child,
    port: u16,
}

impl StaticSite {
    fn serve(dir: &std::path::Path) -> Self {
        let port = lookout_e2e::free_port();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        let site = StaticSite { child, port };
        wait_for("static site up", Duration::from_secs(20), || {
            lookout_e2e::http_get(&site.url("/runbooks/")).filter(|(s, _)| *s == 200)
        });
        site
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn runbook_links_work_while_the_agent_is_down() {
    // The central site, built from alerts/runbooks/ by the shipped script.
    let out = tempfile::tempdir().unwrap();
    let built = std::process::Command::new(repo_root().join("alerts/build-runbook-site.sh"))
        .arg(out.path())
        .status()
        .unwrap();
    assert!(built.success());
    let site = StaticSite::serve(out.path());
    for name in alert_names() {
        let (status, body) = lookout_e2e::http_get(&site.url(&format!("/runbooks/{name}")))
            .unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(status, 200, "{name}");
        assert!(body.contains(&format!("# {name}")), "{name}: {body:.200}");
    }

    let mut sleeper = std::process::Command::new("sleep")
        .arg(format!("3600.8{}", std::process::id()))
        .spawn()
        .unwrap();
    let config = format!(
        "[[service]]\nname = \"stuck\"\nmatch = {{ cmdline = \"^sleep 3600\\\\.8{}$\" }}\nready = {{ exec = [\"false\"] }}\ncold_start_budget = \"1s\"\n\n[alerts]\nrunbook_base_url = \"{}\"\n",
        std::process::id(),
        site.url("/runbooks/")
    );
    let agent = Agent::start(&config);
    let alert = wait_for(
        "an alert at /api/v1/alerts",
        Duration::from_secs(30),
        || {
            let (_, body) = agent.get("/api/v1/alerts")?;
            let list: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
            list.into_iter()
                .find(|a| a["labels"]["alertname"] == "ServiceStuckInitializing")
        },
    );
    let link = alert["annotations"]["runbook_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(link, site.url("/runbooks/ServiceStuckInitializing"));
    // The host is sick: its agent is gone. The link still answers with the guide.
    drop(agent);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (status, body) = lookout_e2e::http_get(&link).expect("the runbook site answers");
    assert_eq!(status, 200);
    assert!(body.contains("# ServiceStuckInitializing"));
}
