//! `lookout eval`: run the anomaly detector offline over a directory of CSV series and, given
//! NAB labels, score it the way the Numenta Anomaly Benchmark does.
//!
//! Strictly causal: each file is fed row by row to a fresh [`Detector`] — the very detector
//! the daemon runs, with the same (single) configuration — and the score of row t is taken
//! before anything after row t is read; training happens inline at the point the daemon would
//! start it, on the rows seen so far. Labels are only read after scoring, to compute NAB.
//!
//! `--nab-range` (CAD OSE only) breaks causality on purpose, for scoreboard comparison: the
//! file's minimum and maximum are given to the detector before the first row and its rest
//! period is NAB's (`probationaryPeriod / 5`), exactly as NAB runs CAD OSE.
//!
//! `--cv` adds leave-one-category-out cross-validation (`lookout_detectors::nab::cv`): the
//! category of a file is the first directory of its labelled path; for each category the
//! threshold is chosen on the other categories and the held-out files are judged with it.

pub mod plot;

use lookout_detectors::anomaly::cad_ose::CadOse;
use lookout_detectors::anomaly::{Detector, Method, SeriesKind};
use lookout_detectors::nab::{self, Corpus, FileInput, PROFILES, ProfileResult, cv};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Bad input (exit code 2): a missing directory, a malformed CSV or labels file.
    #[error("{0}")]
    BadInput(String),
    /// Could not write results (exit code 1).
    #[error("{0}")]
    Io(String),
}

pub struct EvalOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub labels: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub method: Method,
    /// CAD OSE fed NAB's way (file minimum and maximum up front): not causal.
    pub nab_range: bool,
    /// Leave-one-category-out cross-validation beside the in-sample scores.
    pub cv: bool,
}

/// One scored file.
pub struct ScoredFile {
    /// Path relative to the data directory, with `/` separators.
    pub rel: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    pub scores: Vec<f64>,
    /// Labelled windows as row ranges (empty without labels).
    pub windows: Vec<(usize, usize)>,
    pub labelled: bool,
    /// The labels' path of the file (its first directory is its category).
    pub label_key: Option<String>,
}

/// The NAB results of a run with labels.
pub struct NabReport {
    pub optimised: Vec<ProfileResult>,
    pub operating: Vec<ProfileResult>,
    pub operating_threshold: f64,
    pub files: usize,
    pub windows: usize,
    /// Per profile: optimised thresholds, then at the operating threshold (with `--cv`).
    pub cv: Option<(Vec<cv::CvResult>, Vec<cv::CvResult>)>,
}

pub struct EvalReport {
    pub files: Vec<ScoredFile>,
    pub nab: Option<NabReport>,
}

impl EvalReport {
    /// The text `lookout eval` prints; with labels its last line is exactly
    /// `nab standard=X reward_low_FP=Y reward_low_FN=Z`.
    pub fn summary(&self, method: Method) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scored {} files with detector {}",
            self.files.len(),
            method.name()
        );
        let Some(nab) = &self.nab else { return s };
        let _ = writeln!(s, "labelled files {} windows {}", nab.files, nab.windows);
        let line = |r: &[ProfileResult]| {
            r.iter()
                .map(|p| format!("{}={:.2}", p.profile.name, p.score))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let thresholds = nab
            .optimised
            .iter()
            .map(|p| format!("{}={:.4}", p.profile.name, p.threshold))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(s, "optimised thresholds {thresholds}");
        if let Some((best, at_op)) = &nab.cv {
            for (name, results) in [("optimised", best), ("operating", at_op)] {
                let _ = writeln!(
                    s,
                    "cv leave-one-category-out, {name} threshold: {}",
                    results
                        .iter()
                        .map(|r| format!(
                            "{}={:.2} (in-sample {:.2})",
                            r.profile.name, r.cv, r.in_sample
                        ))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                if let Some(standard) = results.first() {
                    for f in &standard.folds {
                        let _ = writeln!(
                            s,
                            "  held out {} (threshold {:.4} from the others): standard={:.2} false_positives={}",
                            f.category, f.threshold, f.held_out, f.false_positives
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "operating threshold {} {}",
            nab.operating_threshold,
            line(&nab.operating)
        );
        let _ = writeln!(s, "nab {}", line(&nab.optimised));
        s
    }
}

/// Score every CSV under `opts.data`, write the scored copies under `opts.out`, and NAB-score
/// them when labels are given.
pub fn run(opts: &EvalOptions) -> Result<EvalReport, EvalError> {
    if !opts.data.is_dir() {
        return Err(EvalError::BadInput(format!(
            "{}: not a directory",
            opts.data.display()
        )));
    }
    let labels = match &opts.labels {
        Some(p) => Some(read_labels(p)?),
        None => None,
    };
    let mut paths = Vec::new();
    collect_csv(&opts.data, &mut paths)?;
    paths.sort();
    if paths.is_empty() {
        return Err(EvalError::BadInput(format!(
            "{}: no .csv files",
            opts.data.display()
        )));
    }
    let mut files = Vec::new();
    for path in paths {
        let rel = relative(&opts.data, &path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| EvalError::BadInput(format!("{}: {e}", path.display())))?;
        let (timestamps, values, raw_values) = parse_csv(&path, &text)?;
        if opts.nab_range && opts.method != Method::CadOse {
            return Err(EvalError::BadInput(
                "--nab-range applies to --detector cad-ose only".into(),
            ));
        }
        let scores = if opts.nab_range {
            score_nab_way(&values)
        } else {
            score_series(opts.method, &timestamps, &values)
        };
        write_scored(
            &opts.out.join(&rel),
            &text,
            &timestamps,
            &raw_values,
            &scores,
        )?;
        let (windows, labelled, label_key) = match labels.as_ref().and_then(|l| find_label(l, &rel))
        {
            Some((key, w)) => (nab::windows_to_rows(&timestamps, w), true, Some(key)),
            None => (Vec::new(), false, None),
        };
        files.push(ScoredFile {
            rel,
            timestamps,
            values,
            scores,
            windows,
            labelled,
            label_key,
        });
    }
    if labels.is_some() && !files.iter().any(|f| f.labelled) {
        return Err(EvalError::BadInput(format!(
            "--labels names none of the {} files under {} (label keys are paths like \
             realKnownCause/nyc_taxi.csv; give --data the corpus root or a category directory)",
            files.len(),
            opts.data.display()
        )));
    }
    if let Some(dir) = &opts.plot {
        for f in &files {
            plot::write_svg(dir, f, opts.method.operating_threshold())?;
        }
    }
    let nab = labels.map(|_| {
        let inputs: Vec<FileInput> = files
            .iter()
            .filter(|f| f.labelled)
            .map(|f| FileInput {
                scores: f.scores.clone(),
                windows: f.windows.clone(),
            })
            .collect();
        let corpus = Corpus::new(&inputs);
        let op = opts.method.operating_threshold();
        let cv = opts.cv.then(|| {
            let labelled: Vec<&ScoredFile> = files.iter().filter(|f| f.labelled).collect();
            let meta: Vec<cv::LabelledFile> = labelled
                .iter()
                .map(|f| cv::LabelledFile {
                    category: f
                        .label_key
                        .as_deref()
                        .and_then(|k| k.split('/').next())
                        .unwrap_or("")
                        .to_string(),
                    windows: f.windows.clone(),
                })
                .collect();
            let scores = vec![labelled.iter().map(|f| f.scores.clone()).collect()];
            let run = |fixed| {
                PROFILES
                    .iter()
                    .map(|&p| cv::leave_one_category_out(&meta, &scores, p, fixed))
                    .collect()
            };
            (run(None), run(Some(op)))
        });
        NabReport {
            cv,
            optimised: PROFILES.iter().map(|&p| corpus.optimise(p)).collect(),
            operating: PROFILES.iter().map(|&p| corpus.score_at(p, op)).collect(),
            operating_threshold: op,
            files: inputs.len(),
            windows: corpus.windows(),
        }
    });
    Ok(EvalReport { files, nab })
}

/// CAD OSE as NAB runs it: the file's minimum and maximum up front, rest period
/// `probationaryPeriod / 5` with NAB's probation (15 % of the rows, at most 750).
pub fn score_nab_way(values: &[f64]) -> Vec<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    let probation = (0.15 * values.len() as f64).floor().min(0.15 * 5000.0);
    let mut cad = CadOse::with_range(min, max, probation / 5.0);
    values.iter().map(|&v| cad.score(v)).collect()
}

/// Score one series row by row, training inline exactly when the daemon would.
pub fn score_series(method: Method, timestamps: &[i64], values: &[f64]) -> Vec<f64> {
    let mut detector = Detector::new(method, SeriesKind::Gauge);
    timestamps
        .iter()
        .zip(values)
        .map(|(&t, &v)| {
            let s = f64::from(detector.observe(t as f64, v));
            detector.train_if_due();
            s
        })
        .collect()
}

fn collect_csv(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), EvalError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| EvalError::BadInput(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| EvalError::BadInput(format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        if path.is_dir() {
            collect_csv(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "csv") {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

type Parsed = (Vec<i64>, Vec<f64>, Vec<String>);

/// Rows of a `timestamp,value` CSV. An empty or `nan` value is a missing sample; anything
/// else unparsable is an error naming the line.
fn parse_csv(path: &Path, text: &str) -> Result<Parsed, EvalError> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l.trim()).unwrap_or("");
    let cols: Vec<&str> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    if cols.len() < 2 || cols[0] != "timestamp" || cols[1] != "value" {
        return Err(EvalError::BadInput(format!(
            "{}:1: header must be `timestamp,value`, found {header:?}",
            path.display()
        )));
    }
    let (mut ts, mut vs, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| {
            EvalError::BadInput(format!("{}:{}: {what}: {line:?}", path.display(), i + 1))
        };
        let mut parts = line.splitn(3, ',');
        let t = parts.next().unwrap_or("");
        let v = parts
            .next()
            .ok_or_else(|| bad("missing value column"))?
            .trim();
        let t = nab::parse_timestamp(t).ok_or_else(|| bad("bad timestamp"))?;
        let value = if v.is_empty() || v.eq_ignore_ascii_case("nan") {
            f64::NAN
        } else {
            v.parse::<f64>().map_err(|_| bad("bad value"))?
        };
        ts.push(t);
        vs.push(value);
        raw.push(v.to_string());
    }
    Ok((ts, vs, raw))
}

fn write_scored(
    out: &Path,
    original: &str,
    timestamps: &[i64],
    raw_values: &[String],
    scores: &[f64],
) -> Result<(), EvalError> {
    let io = |e: std::io::Error| EvalError::Io(format!("{}: {e}", out.display()));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Keep the original timestamp text of each data row.
    let originals: Vec<&str> = original
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').next().unwrap_or("").trim())
        .collect();
    let mut text = String::with_capacity(original.len() + scores.len() * 10);
    text.push_str("timestamp,value,anomaly_score\n");
    for (i, score) in scores.iter().enumerate() {
        let t = originals
            .get(i)
            .map(|s| s.to_string())
            .unwrap_or_else(|| timestamps[i].to_string());
        let _ = writeln!(text, "{t},{},{score:.6}", raw_values[i]);
    }
    std::fs::write(out, text).map_err(io)
}

type Labels = BTreeMap<String, Vec<(i64, i64)>>;

/// NAB `combined_windows.json`: `{"dir/file.csv": [["start", "end"], ...], ...}`.
fn read_labels(path: &Path) -> Result<Labels, EvalError> {
    let bad = |m: String| EvalError::BadInput(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let raw: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(&text).map_err(|e| bad(format!("not NAB windows JSON: {e}")))?;
    let mut out = Labels::new();
    for (file, windows) in raw {
        let mut ws = Vec::new();
        for w in windows {
            let [a, b] = w.as_slice() else {
                return Err(bad(format!("{file}: a window must be [start, end]")));
            };
            let a =
                nab::parse_timestamp(a).ok_or_else(|| bad(format!("{file}: bad time {a:?}")))?;
            let b =
                nab::parse_timestamp(b).ok_or_else(|| bad(format!("{file}: bad time {b:?}")))?;
            ws.push((a, b));
        }
        out.insert(file.replace('\\', "/"), ws);
    }
    Ok(out)
}

/// The labels of a file: its relative path, or the same path with leading directories
/// dropped (data given as the NAB root, whose files sit under `data/`), or the one label whose
/// path ends with it (data given as one category's directory: `nyc_taxi.csv` is
/// `realKnownCause/nyc_taxi.csv`; a name two labels end with matches neither).
fn find_label<'a>(labels: &'a Labels, rel: &str) -> Option<(String, &'a Vec<(i64, i64)>)> {
    let mut rest = rel;
    loop {
        if let Some(w) = labels.get(rest) {
            return Some((rest.to_string(), w));
        }
        match rest.split_once('/') {
            Some((_, r)) => rest = r,
            None => break,
        }
    }
    let tail = format!("/{rel}");
    let mut ends = labels.iter().filter(|(k, _)| k.ends_with(&tail));
    match (ends.next(), ends.next()) {
        (Some((k, w)), None) => Some((k.clone(), w)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_the_line() {
        let p = Path::new("x.csv");
        let e = parse_csv(p, "timestamp,value\n2014-01-01 00:00:00,1\nbad,2\n").unwrap_err();
        assert!(e.to_string().contains("x.csv:3: bad timestamp"), "{e}");
        let e = parse_csv(p, "time,v\n").unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        let (ts, vs, _) = parse_csv(p, "timestamp,value\n0,1\n60,\n120,nan\n").unwrap();
        assert_eq!(ts, vec![0, 60, 120]);
        assert!(vs[1].is_nan() && vs[2].is_nan());
    }

    #[test]
    fn labels_match_with_or_without_leading_dirs() {
        let mut l = Labels::new();
        l.insert("a/b.csv".into(), vec![(1, 2)]);
        assert!(find_label(&l, "a/b.csv").is_some());
        assert!(find_label(&l, "data/a/b.csv").is_some());
        assert!(find_label(&l, "c/b.csv").is_none());
        // Data given as the category's directory.
        assert_eq!(
            find_label(&l, "b.csv").map(|(k, _)| k),
            Some("a/b.csv".into())
        );
        // A name two categories share matches neither.
        l.insert("c/b.csv".into(), vec![(3, 4)]);
        assert!(find_label(&l, "b.csv").is_none());
        assert!(find_label(&l, "c/b.csv").is_some());
    }
}
