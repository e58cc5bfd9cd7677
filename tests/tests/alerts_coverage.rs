//! Every alert name of the contract (agent/src/alerting/names.rs) has a rule — in the agent
//! (agent/src/alerting/rules.rs) or centrally (alerts/lookout.rules.yml) —, a runbook with the
//! sections on-call needs, and a test that fires it: a promtool case with expected alerts
//! and, for agent rules, a firing scenario in agent/src/alerting/tests.rs. (The firing itself
//! is checked by those tests; this one checks that none is missing.)

/// The repository this test was compiled from (not the support library's, which a shared
/// target directory may have built from another checkout).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (constant, alert name) pairs of names.rs.
fn names() -> Vec<(String, String)> {
    let text = read("agent/src/alerting/names.rs");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("pub const ") else {
            continue;
        };
        let Some((constant, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        out.push((
            constant.to_string(),
            value.trim_end_matches("\";").to_string(),
        ));
    }
    out
}

#[test]
fn the_contract_names_are_all_there() {
    let names: Vec<String> = names().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), 19, "{names:?}");
    assert!(names.contains(&"LookoutAgentDown".to_string()));
}

#[test]
fn every_alert_has_a_rule_a_runbook_and_a_firing_test() {
    let agent_rules = read("agent/src/alerting/rules.rs");
    let agent_tests = read("agent/src/alerting/tests.rs");
    let central = read("alerts/lookout.rules.yml");
    let promtool = read("alerts/lookout.rules.test.yml");
    let mut problems = Vec::new();
    for (constant, name) in names() {
        let agent_rule = agent_rules.contains(&format!("r(\n            {constant},"))
            || agent_rules.contains(&format!("r({constant},"));
        let central_rule = central.contains(&format!("- alert: {name}\n"));
        if !agent_rule && !central_rule {
            problems.push(format!("{name}: no rule"));
        }
        if name != "LookoutAgentDown" && !agent_rule {
            problems.push(format!(
                "{name}: the agent evaluates every alert but LookoutAgentDown"
            ));
        }
        if agent_rule && !agent_tests.contains(&format!("{constant},\n")) {
            problems.push(format!("{name}: no agent firing scenario"));
        }
        if central_rule {
            // A promtool case for it that expects at least one alert.
            let fires = promtool.split("      - eval_time:").any(|case| {
                case.contains(&format!("alertname: {name}\n")) && case.contains("- exp_labels:")
            });
            if !fires {
                problems.push(format!("{name}: no promtool case that fires it"));
            }
        }
        let runbook_path = format!("alerts/runbooks/{name}.md");
        let Ok(runbook) = std::fs::read_to_string(repo_root().join(&runbook_path)) else {
            problems.push(format!("{name}: no {runbook_path}"));
            continue;
        };
        for section in [
            "## What it means",
            "## Impact",
            "## First checks",
            "## Mitigation",
            "## Escalate",
            "## Verify recovery",
        ] {
            if !runbook.contains(section) {
                problems.push(format!("{runbook_path}: no \"{section}\" section"));
            }
        }
        for must in ["curl ", "```promql"] {
            if !runbook.contains(must) {
                problems.push(format!("{runbook_path}: no {must:?} in the first checks"));
            }
        }
        let about_a_process = name.starts_with("Thread")
            || name.starts_with("Timeout")
            || name == "ServiceStuckInitializing"
            || name == "ColdStartSlow";
        if about_a_process && !runbook.contains("lookout diagnose") {
            problems.push(format!(
                "{runbook_path}: a process alert without `lookout diagnose`"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
