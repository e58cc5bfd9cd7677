//! Development harness: score a NAB-style corpus with both methods, directly from the
//! detectors crate (a release build of this is much faster to iterate with than the agent).
//! `cargo run --release -p lookout-detectors --example nab_corpus -- /work/shared/data/nab`
//! The agent's `lookout eval` is the supported tool; this prints the same NAB figures.

use lookout_detectors::anomaly::{Detector, Method, Params, SeriesKind};
use lookout_detectors::nab::{self, Corpus, FileInput};
use std::path::Path;

/// Settings from environment variables, for sensitivity studies (development only):
/// P_QUANTILE, P_EXPLAIN_ACF, P_RANK, P_REFR_S, P_GROWTH, P_BUCKET_S, P_BUCKET_N, P_CTX_DAMP,
/// P_CTX_LEVELS, P_CTX_GEN, P_CTX_RESCALE. CAT=1 prints the categories, PER_FILE=1 (DETAIL=1, PF_AT=threshold) the files.
fn params() -> Params {
    fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    let mut p = Params::default();
    p.train.scale_quantile = env("P_QUANTILE", p.train.scale_quantile);
    p.train.explain_acf = env("P_EXPLAIN_ACF", p.train.explain_acf);
    p.novelty.rank = env("P_RANK", p.novelty.rank);
    p.refractory_seconds = env("P_REFR_S", p.refractory_seconds);
    p.novelty.growth = env("P_GROWTH", p.novelty.growth);
    p.novelty.bucket_seconds = env("P_BUCKET_S", p.novelty.bucket_seconds);
    p.novelty.bucket_min_samples = env("P_BUCKET_N", p.novelty.bucket_min_samples);
    p.context_damp = env("P_CTX_DAMP", p.context_damp);
    p.context_levels = env("P_CTX_LEVELS", p.context_levels);
    p.context_generation = env("P_CTX_GEN", p.context_generation);
    p.context_rescale = env("P_CTX_RESCALE", p.context_rescale);
    p
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or("/work/shared/data/nab".into());
    let root = Path::new(&root);
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("combined_windows.json")).unwrap())
            .unwrap();
    let mut names: Vec<String> = labels.as_object().unwrap().keys().cloned().collect();
    names.sort();
    for method in [Method::Lookout, Method::Netdata] {
        let start = std::time::Instant::now();
        let mut files = Vec::new();
        let mut per_file = Vec::new();
        for name in &names {
            let text = std::fs::read_to_string(root.join("data").join(name)).unwrap();
            let mut ts = Vec::new();
            let mut vs = Vec::new();
            for line in text.lines().skip(1) {
                let (t, v) = line.split_once(',').unwrap();
                ts.push(nab::parse_timestamp(t).unwrap());
                vs.push(v.trim().parse::<f64>().unwrap_or(f64::NAN));
            }
            let mut det = Detector::with_params(method, SeriesKind::Gauge, params());
            let scores: Vec<f64> = ts
                .iter()
                .zip(&vs)
                .map(|(&t, &v)| {
                    let s = det.observe(t as f64, v) as f64;
                    det.train_if_due();
                    s
                })
                .collect();
            let windows: Vec<(i64, i64)> = labels[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    (
                        nab::parse_timestamp(w[0].as_str().unwrap()).unwrap(),
                        nab::parse_timestamp(w[1].as_str().unwrap()).unwrap(),
                    )
                })
                .collect();
            let f = FileInput {
                scores,
                windows: nab::windows_to_rows(&ts, &windows),
            };
            per_file.push((name.clone(), f.clone()));
            files.push(f);
        }
        let corpus = Corpus::new(&files);
        let op = method.operating_threshold();
        println!("== {} ({:?})", method.name(), start.elapsed());
        for p in nab::PROFILES {
            let best = corpus.optimise(p);
            let at = corpus.score_at(p, op);
            println!(
                "{:>14}: best {:6.2} at {:.4}   operating {:6.2} at {op}",
                p.name, best.score, best.threshold, at.score
            );
        }
        if std::env::var("CAT").is_ok() {
            let thr = corpus.optimise(nab::PROFILES[0]).threshold;
            for cat in [
                "artificial",
                "realAdExchange",
                "realKnownCause",
                "realTraffic",
            ] {
                let sub: Vec<FileInput> = per_file
                    .iter()
                    .filter(|(n, _)| n.starts_with(cat))
                    .map(|(_, f)| f.clone())
                    .collect();
                let c = Corpus::new(&sub);
                let p = nab::PROFILES[0];
                println!(
                    "  {cat:16} own best {:6.2}  at global {:6.2}  at op {:6.2}",
                    c.optimise(p).score,
                    c.score_at(p, thr).score,
                    c.score_at(p, op).score
                );
            }
        }
        if let Ok(list) = std::env::var("AT") {
            for t in list.split(',').filter_map(|t| t.parse::<f64>().ok()) {
                let r: Vec<String> = nab::PROFILES
                    .iter()
                    .map(|&p| format!("{:.2}", corpus.score_at(p, t).score))
                    .collect();
                println!("  at {t}: {}", r.join(" / "));
            }
        }
        if std::env::var("PER_FILE").is_ok() {
            // PF_AT=<threshold> lists the files at that threshold instead of the optimum.
            let thr = std::env::var("PF_AT")
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or_else(|| corpus.optimise(nab::PROFILES[0]).threshold);
            for (name, f) in &per_file {
                let c = Corpus::new(std::slice::from_ref(f));
                let r = c.score_at(nab::PROFILES[0], thr);
                let dets = f.scores.iter().filter(|&&s| s >= thr).count();
                println!(
                    "  {:60} windows {} dets {:4} raw {:7.3}",
                    name,
                    f.windows.len(),
                    dets,
                    r.raw
                );
                if std::env::var("DETAIL").is_ok() {
                    let n = f.scores.len();
                    let prob = nab::probation_rows(n);
                    let hits: Vec<String> = f
                        .scores
                        .iter()
                        .enumerate()
                        .filter(|&(i, &s)| i >= prob && s >= thr)
                        .map(|(i, s)| format!("{i}:{s:.3}"))
                        .collect();
                    let maxin: Vec<String> = f
                        .windows
                        .iter()
                        .map(|&(a, b)| {
                            let (im, m) = (a..=b)
                                .map(|i| (i, f.scores[i]))
                                .fold((a, 0.0), |acc, x| if x.1 > acc.1 { x } else { acc });
                            format!("{a}-{b} max {m:.3}@{im}")
                        })
                        .collect();
                    println!("      n {n} prob {prob} windows {maxin:?}\n      dets {hits:?}");
                }
            }
        }
    }
}
