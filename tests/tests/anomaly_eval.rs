//! End-to-end tests of the anomaly detector: `lookout eval` on a small NAB subset (the
//! built binary, real files: scored copies, plots, the NAB summary line, bad input), and a
//! running agent serving `lookout_anomaly_score` for the series it watches.

use lookout_e2e::{Agent, lookout_bin, samples, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn fixtures() -> std::path::PathBuf {
    // This crate's own directory (not the support library's, which may be built elsewhere).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/nab")
}

fn csv_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            csv_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "csv") {
            out.push(p);
        }
    }
}

/// `nab standard=X reward_low_FP=Y reward_low_FN=Z` → the three numbers.
fn parse_nab_line(line: &str) -> Option<[f64; 3]> {
    let rest = line.strip_prefix("nab ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let names = ["standard", "reward_low_FP", "reward_low_FN"];
    if parts.len() != 3 {
        return None;
    }
    let mut out = [0.0; 3];
    for (i, (part, name)) in parts.iter().zip(names).enumerate() {
        let (k, v) = part.split_once('=')?;
        if k != name {
            return None;
        }
        out[i] = v.parse().ok()?;
    }
    Some(out)
}

#[test]
fn eval_scores_every_file_causally_writes_plots_and_prints_nab() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, plots) = (tmp.path().join("out"), tmp.path().join("plots"));
    let data = fixtures().join("data");
    let run = Command::new(lookout_bin())
        .arg("eval")
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--labels")
        .arg(fixtures().join("combined_windows.json"))
        .arg("--plot")
        .arg(&plots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "eval failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let last = stdout.lines().last().unwrap_or("");
    let [standard, low_fp, low_fn] =
        parse_nab_line(last).unwrap_or_else(|| panic!("bad last line {last:?}"));
    for s in [standard, low_fp, low_fn] {
        assert!(s.is_finite() && s <= 100.0, "{last}");
    }
    // The jump in art_daily_jumpsup is found in its window: the corpus beats the null detector.
    assert!(standard > 0.0, "{stdout}");
    // The default is the daemon's detector, the ensemble.
    assert!(stdout.contains("with detector ensemble"), "{stdout}");
    assert!(stdout.contains("operating threshold"), "{stdout}");

    let mut inputs = Vec::new();
    csv_files(&data, &mut inputs);
    assert_eq!(inputs.len(), 3);
    for input in inputs {
        let rel = input.strip_prefix(&data).unwrap();
        let original = std::fs::read_to_string(&input).unwrap();
        let scored = std::fs::read_to_string(out.join(rel)).unwrap();
        let mut lines = scored.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        let rows: Vec<&str> = lines.collect();
        let orig_rows: Vec<&str> = original.lines().skip(1).collect();
        assert_eq!(rows.len(), orig_rows.len(), "{}", rel.display());
        for (row, orig) in rows.iter().zip(&orig_rows) {
            let (prefix, score) = row.rsplit_once(',').unwrap();
            assert_eq!(prefix, *orig, "timestamp and value are kept");
            let score: f64 = score.parse().unwrap();
            assert!((0.0..=1.0).contains(&score), "{row}");
        }
        let svg = std::fs::read_to_string(plots.join(format!("{}.svg", rel.display()))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("</svg>"),
            "{}",
            rel.display()
        );
    }

    // Strict causality: scoring a prefix of a file gives the same scores for those rows.
    let prefix_dir = tmp.path().join("prefix");
    std::fs::create_dir_all(&prefix_dir).unwrap();
    let file = "artificialWithAnomaly/art_daily_jumpsup.csv";
    let original = std::fs::read_to_string(data.join(file)).unwrap();
    let head: Vec<&str> = original.lines().take(2001).collect();
    std::fs::write(prefix_dir.join("x.csv"), head.join("\n") + "\n").unwrap();
    let out2 = tmp.path().join("out2");
    let run = Command::new(lookout_bin())
        .args(["eval", "--data"])
        .arg(&prefix_dir)
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(run.status.success());
    let full = std::fs::read_to_string(out.join(file)).unwrap();
    let part = std::fs::read_to_string(out2.join("x.csv")).unwrap();
    let full: Vec<&str> = full.lines().take(2001).collect();
    let part: Vec<&str> = part.lines().collect();
    assert_eq!(full, part);
}

/// `lookout eval --data <data> --out <out>`, with the fixtures' labels when `labels`.
fn eval_on(data: &Path, out: &Path, labels: bool) -> std::process::Output {
    let mut cmd = Command::new(lookout_bin());
    cmd.args(["eval", "--data"]).arg(data).arg("--out").arg(out);
    if labels {
        cmd.arg("--labels")
            .arg(fixtures().join("combined_windows.json"));
    }
    cmd.output().unwrap()
}

#[test]
fn eval_rejects_bad_input_with_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("bad.csv"),
        "timestamp,value\n2014-01-01 00:00:00,1\nnot a time,2\n",
    )
    .unwrap();
    let run = eval_on(&data, &tmp.path().join("out"), false);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad.csv:3"), "{stderr}");

    // Labels that name none of the files: an error, not NAB scores of nothing.
    std::fs::write(
        data.join("bad.csv"),
        "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2\n",
    )
    .unwrap();
    let run = eval_on(&data, &tmp.path().join("out"), true);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("--labels names none of the 1 files"),
        "{stderr}"
    );
}

#[test]
fn eval_scores_one_category_directory_against_the_corpus_labels() {
    // `--data` a category's directory: its files match the labels by their category path.
    let category = std::fs::read_dir(fixtures().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a category directory in the fixtures");
    let files = std::fs::read_dir(&category).unwrap().count();
    let tmp = tempfile::tempdir().unwrap();
    let run = eval_on(&category, &tmp.path().join("out"), true);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!("labelled files {files} ")),
        "{files} files in {}: {stdout}",
        category.display()
    );
}

#[test]
fn agent_serves_anomaly_scores_for_watched_series() {
    let agent = Agent::start("[detectors.anomaly]\nenabled = true\n");
    // The host series need two samples for a rate, the agent's own gauges only one: wait for
    // the CPU series' score rather than for the first score of any series.
    let scores = wait_for(
        "lookout_anomaly_score for system_cpu_utilization_ratio",
        Duration::from_secs(30),
        || {
            let s = samples(&agent.metrics(), "lookout_anomaly_score");
            s.iter()
                .any(|(l, _)| {
                    l.iter()
                        .any(|(_, v)| v.starts_with("system_cpu_utilization_ratio"))
                })
                .then_some(s)
        },
    );
    for (labels, v) in &scores {
        assert!((0.0..=1.0).contains(v), "{labels:?} {v}");
        let metric = labels
            .iter()
            .find(|(k, _)| k == "metric")
            .map(|(_, v)| v.as_str());
        let metric = metric.unwrap_or_else(|| panic!("no metric label: {labels:?}"));
        assert!(
            !metric.starts_with("lookout_anomaly"),
            "scores its own output: {metric}"
        );
        // The agent's own bookkeeping (alert spool, its API's connections) follows what the
        // agent does, not the host: scoring it paged on a quiet host (issue 14).
        assert!(
            !metric.starts_with("lookout_alert_") && !metric.starts_with("lookout_http_"),
            "scores the agent's bookkeeping: {metric}"
        );
    }
    assert!(
        scores.iter().any(|(l, _)| l
            .iter()
            .any(|(_, v)| v.starts_with("system_cpu_utilization_ratio"))),
        "{scores:?}"
    );
    let rate = agent
        .metric("lookout_host_anomaly_rate", &[])
        .expect("host anomaly rate");
    assert!((0.0..=1.0).contains(&rate));
    assert_eq!(agent.metric("lookout_anomaly_event", &[]), Some(0.0));
}

/// `lookout eval` with the given extra arguments on the NAB fixture subset; (status, stdout,
/// stderr, output dir).
fn eval_fixtures(extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let run = Command::new(lookout_bin())
        .arg("eval")
        .arg("--data")
        .arg(fixtures().join("data"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--labels")
        .arg(fixtures().join("combined_windows.json"))
        .args(extra)
        .output()
        .unwrap();
    (run, tmp)
}

#[test]
fn eval_cross_validates_by_category_beside_in_sample() {
    let (run, _tmp) = eval_fixtures(&["--cv"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    // Both protocols, each with its in-sample figure, and one held-out line per category.
    let cv_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("cv leave-one-category-out"))
        .collect();
    assert_eq!(cv_lines.len(), 2, "{stdout}");
    for l in &cv_lines {
        assert!(l.contains("standard=") && l.contains("in-sample"), "{l}");
    }
    for cat in [
        "artificialNoAnomaly",
        "artificialWithAnomaly",
        "realKnownCause",
    ] {
        assert!(
            stdout.contains(&format!("held out {cat} (threshold")),
            "{cat}: {stdout}"
        );
    }
    // The in-sample figure printed beside CV is the optimised NAB score of the last line.
    let last = stdout.lines().last().unwrap_or("");
    let [standard, ..] = parse_nab_line(last).unwrap_or_else(|| panic!("bad last line {last:?}"));
    assert!(
        cv_lines[0].contains(&format!("(in-sample {standard:.2})")),
        "{stdout}"
    );
}

#[test]
fn eval_runs_cad_ose_causally_or_nab_way() {
    // Causal CAD OSE and NAB's way (range up front) give different scores on the same files.
    let (causal, tmp_c) = eval_fixtures(&["--detector", "cad-ose"]);
    let (nab_way, tmp_n) = eval_fixtures(&["--detector", "cad-ose", "--nab-range"]);
    for run in [&causal, &nab_way] {
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{stdout}");
        assert!(stdout.contains("detector cad-ose"), "{stdout}");
        assert!(parse_nab_line(stdout.lines().last().unwrap_or("")).is_some());
    }
    let file = "artificialWithAnomaly/art_daily_jumpsup.csv";
    let a = std::fs::read_to_string(tmp_c.path().join("out").join(file)).unwrap();
    let b = std::fs::read_to_string(tmp_n.path().join("out").join(file)).unwrap();
    assert_ne!(a, b);
    // NAB's way reproduces NAB's published behaviour: the first rows score 0 (rest period
    // after the initial 1.0) and every score is in [0, 1].
    for row in b.lines().skip(1) {
        let s: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&s), "{row}");
    }
    // Causal CAD OSE fixes its range from the first 256 values: they score 0.
    for row in a.lines().skip(1).take(256) {
        assert!(row.ends_with(",0.000000"), "{row}");
    }
    // --nab-range is refused for a causal-only detector: bad input, exit code 2.
    let (run, _tmp) = eval_fixtures(&["--nab-range"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--nab-range"));
}

#[test]
fn eval_runs_bayesian_change_point_detection() {
    let (run, tmp) = eval_fixtures(&["--detector", "bocpd"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(stdout.contains("detector bocpd"), "{stdout}");
    assert!(parse_nab_line(stdout.lines().last().unwrap_or("")).is_some());
    // The jump of art_daily_jumpsup (a level change after a long run) is a change point:
    // some row scores high, and every score is in [0, 1].
    let file = "artificialWithAnomaly/art_daily_jumpsup.csv";
    let scored = std::fs::read_to_string(tmp.path().join("out").join(file)).unwrap();
    let scores: Vec<f64> = scored
        .lines()
        .skip(1)
        .map(|r| r.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    assert!(scores.iter().any(|&s| s >= 0.5), "no change point found");
}
