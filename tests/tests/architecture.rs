//! The dependency rules of ARCHITECTURE.md, enforced: a rule broken is a red build.
//!
//! 1. The building blocks (`lookout-cache`, `lookout-tracker`, and `lookout-common` under
//!    them) depend on neither the agent nor each other, nor on an HTTP server framework, a
//!    config format, a CLI parser, the OpenTelemetry SDK or exporters — checked on the resolved
//!    dependency graph of `cargo metadata`, dev-dependencies included (what `cargo tree -p`
//!    shows).
//! 2. `lookout-detectors` stays pure: no async runtime, no network, no file-system crates.
//! 3. Inside the agent, nothing imports the daemon (only `main.rs` calls it), and the modules
//!    under `agent/src` form no import cycle — read from the `crate::` paths of every file.
//! 4. The probes' parsers (`agent/src/probes/parse/`) are pure: text in, values out — no
//!    file system, process, network or clock, their tests included (they read the fixtures
//!    with `include_str!`). The collectors do the reading, through their `ProcRoot`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates no building block may pull in, directly or through another crate.
const NOT_IN_BUILDING_BLOCKS: &[&str] = &[
    "lookout-agent",
    "lookout-detectors",
    "axum",
    "toml",
    "clap",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "opentelemetry-prometheus",
    "prometheus",
    "tonic",
    "plotters",
    "tracing-subscriber",
];

/// Crates the pure detectors may not pull in.
const NOT_IN_DETECTORS: &[&str] = &[
    "tokio",
    "mio",
    "reqwest",
    "hyper",
    "object_store",
    "procfs",
    "lookout-agent",
];

/// The dev-dependency whose own dependencies are not held to the rules (see [`closure`]).
const BENCH_HARNESS: &str = "criterion";

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        // This host's platform only: the graph `cargo tree` shows, and no index lookups for
        // crates of other platforms that were never downloaded.
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args([
            "--filter-platform",
            &format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
        ])
        .current_dir(lookout_e2e::repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// Every crate `root` depends on: all kinds for `root` itself (as `cargo tree -p` shows),
/// normal and build dependencies below it — except the bench harness: criterion brings clap
/// for its command line, as a dev-dependency that never reaches a program embedding the
/// crate, and that one edge is the only exception.
fn closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root_id = names
        .iter()
        .find(|(_, n)| **n == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("package {root} not in the workspace"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![(root_id, true)];
    while let Some((id, is_root)) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let kinds = dep["dep_kinds"].as_array().unwrap();
            let counts = is_root
                || kinds
                    .iter()
                    .any(|k| k["kind"].is_null() || k["kind"] == "build");
            let dep_id = dep["pkg"].as_str().unwrap();
            if is_root && names[dep_id] == BENCH_HARNESS {
                continue;
            }
            if counts && seen.insert(names[dep_id].to_string()) {
                stack.push((dep_id, false));
            }
        }
    }
    seen
}

fn assert_free_of(meta: &Value, package: &str, forbidden: &[&str]) {
    let deps = closure(meta, package);
    let found: Vec<_> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "{package} depends on {found:?} (see ARCHITECTURE.md, dependency rules); `cargo tree -p {package} -i <crate>` shows the path"
    );
}

#[test]
fn building_blocks_depend_on_no_agent_framework_config_or_sdk() {
    let meta = metadata();
    assert_free_of(
        &meta,
        "lookout-cache",
        &[NOT_IN_BUILDING_BLOCKS, &["lookout-tracker"]].concat(),
    );
    assert_free_of(
        &meta,
        "lookout-tracker",
        &[NOT_IN_BUILDING_BLOCKS, &["lookout-cache", "object_store"]].concat(),
    );
    assert_free_of(
        &meta,
        "lookout-common",
        &[
            NOT_IN_BUILDING_BLOCKS,
            &["lookout-cache", "lookout-tracker", "tokio", "reqwest"],
        ]
        .concat(),
    );
    // They do use the OpenTelemetry API, as a library should.
    for p in ["lookout-cache", "lookout-tracker"] {
        assert!(
            closure(&meta, p).contains("opentelemetry"),
            "{p} records through the API"
        );
    }
}

#[test]
fn detectors_stay_pure() {
    assert_free_of(&metadata(), "lookout-detectors", NOT_IN_DETECTORS);
}

/// `agent/src/**.rs` with the module each file belongs to (`alerting/rules.rs` →
/// `alerting`), except that a `names` module — constants only — is a node of its own, so a
/// module may import another's names without depending on the rest of it.
fn agent_files() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = lookout_e2e::repo_root().join("agent/src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let mut parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
            if parts.last() == Some(&"mod") {
                parts.pop();
            }
            let module = if parts.len() >= 2 && parts[1] == "names" {
                format!("{}::names", parts[0])
            } else {
                parts[0].to_string()
            };
            (module, p)
        })
        .collect()
}

/// The modules a file refers to through `crate::` paths (comments stripped).
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let seg: Vec<&str> = after
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .collect();
            if let Some(first) = seg.first().filter(|s| !s.is_empty()) {
                if seg.get(1) == Some(&"names") {
                    out.insert(format!("{first}::names"));
                } else {
                    out.insert(first.to_string());
                }
            }
            rest = after;
        }
    }
    out
}

#[test]
fn agent_modules_import_no_daemon_and_form_no_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut daemon_users = Vec::new();
    for (module, path) in agent_files() {
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for target in references(&text) {
            if target == "daemon" && module != "daemon" {
                daemon_users.push(path.display().to_string());
            }
            if target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    assert!(
        daemon_users.is_empty(),
        "nothing but main.rs may import the daemon: {daemon_users:?}"
    );
    for (m, targets) in &edges {
        if m.ends_with("::names") {
            assert!(
                targets.is_empty(),
                "{m} holds names only and imports nothing, but refers to {targets:?}"
            );
        }
    }
    // Depth-first search for a back edge; the cycle is printed as a path.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for t in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(t, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle between agent modules: {}", cycle.join(" -> "));
        }
    }
    // The rule is not vacuous: the graph was read.
    assert!(
        edges
            .get("components")
            .is_some_and(|t| t.contains("alerting"))
    );
}

/// What a pure parser may not name: the ways Rust code reaches the file system, processes,
/// the network or the clock.
const NOT_IN_PARSERS: &[&str] = &[
    "std::fs",
    "fs::",
    "File::",
    "tokio",
    "std::process",
    "std::net",
    "std::env",
    "read_dir",
    "read_to_string",
    "Instant",
    "SystemTime",
    "ProcRoot",
    "Process::",
    "procfs::process::",
    "all_processes",
    "page_size()",
    "ticks_per_second()",
    "libc::",
    // procfs's own readers (its `Current`/`FromRead` traits open the real /proc).
    "from_file",
    "current()",
    "current_with_system_info",
];

/// Whether `code` names `word` as a path of its own: not `procfs::` for `fs::`.
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn probe_parsers_do_no_io() {
    let dir = lookout_e2e::repo_root().join("agent/src/probes/parse");
    let mut checked = 0;
    let mut found = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in NOT_IN_PARSERS {
                if names(code, word) {
                    found.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
        checked += 1;
    }
    assert!(
        found.is_empty(),
        "the probes' parsers must stay pure (see ARCHITECTURE.md); I/O belongs in the collectors:\n{}",
        found.join("\n")
    );
    // The rule is not vacuous: the parsers were read.
    assert!(
        checked >= 5,
        "only {checked} parser files under {}",
        dir.display()
    );
}
