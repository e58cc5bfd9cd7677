//! Development harness for the cross-validation protocol: scores a NAB-style corpus (a root
//! with `data/<category>/<file>.csv` and `combined_windows.json`) with several detectors and
//! prints in-sample and leave-one-category-out CV figures.
//! `cargo run --release -p lookout-detectors --example nab_cv -- ../shared/data/nab [detectors]`
use lookout_detectors::anomaly::cad_ose::CadOse;
use lookout_detectors::anomaly::{Detector, Method, SeriesKind};
use lookout_detectors::nab::{self, PROFILES, cv};
use std::path::Path;

struct File {
    category: String,
    ts: Vec<i64>,
    vs: Vec<f64>,
    windows: Vec<(usize, usize)>,
}

fn load(root: &Path) -> Vec<File> {
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("combined_windows.json")).unwrap())
            .unwrap();
    let mut names: Vec<String> = labels.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(root.join("data").join(name)).unwrap();
            let (mut ts, mut vs) = (vec![], vec![]);
            for line in text.lines().skip(1) {
                let (t, v) = line.split_once(',').unwrap();
                ts.push(nab::parse_timestamp(t).unwrap());
                vs.push(v.trim().parse::<f64>().unwrap_or(f64::NAN));
            }
            let w: Vec<(i64, i64)> = labels[name]
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
            File {
                category: name.split('/').next().unwrap().to_string(),
                windows: nab::windows_to_rows(&ts, &w),
                ts,
                vs,
            }
        })
        .collect()
}

fn lookout(f: &File) -> Vec<f64> {
    let mut d = Detector::new(Method::Lookout, SeriesKind::Gauge);
    f.ts.iter()
        .zip(&f.vs)
        .map(|(&t, &v)| {
            let s = d.observe(t as f64, v) as f64;
            d.train_if_due();
            s
        })
        .collect()
}

fn cad(f: &File, nab_range: bool, rest: f64, margin: f64) -> Vec<f64> {
    let n = f.vs.len() as f64;
    let mut c = if nab_range {
        let min = f.vs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = f.vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        CadOse::with_range(min, max, (0.15 * n).floor().min(750.0) / 5.0)
    } else {
        CadOse::causal_with_margin(rest, margin)
    };
    f.vs.iter().map(|&v| c.score(v)).collect()
}

fn report(name: &str, files: &[File], scores: &[Vec<Vec<f64>>], op: f64) {
    let lf: Vec<cv::LabelledFile> = files
        .iter()
        .map(|f| cv::LabelledFile {
            category: f.category.clone(),
            windows: f.windows.clone(),
        })
        .collect();
    println!("== {name}");
    for p in PROFILES {
        let a = cv::leave_one_category_out(&lf, scores, p, None);
        let b = cv::leave_one_category_out(&lf, scores, p, Some(op));
        println!(
            "{:>14}: in-sample {:6.2} (thr {:.4}, cfg {})  CV {:6.2}   at op {op}: in-sample {:6.2} CV {:6.2}",
            p.name, a.in_sample, a.in_sample_threshold, a.in_sample_config, a.cv, b.in_sample, b.cv
        );
        if p.name == "standard" {
            for f in &a.folds {
                println!(
                    "    held out {:22} cfg {} thr {:.4} score {:6.2} fp {}",
                    f.category, f.config, f.threshold, f.held_out, f.false_positives
                );
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or("/work/shared/data/nab".into());
    let which: Vec<String> = args.collect();
    let files = load(Path::new(&root));
    let want = |n: &str| which.is_empty() || which.iter().any(|w| w == n);
    let t = std::time::Instant::now();
    let look: Vec<Vec<f64>> = files.iter().map(lookout).collect();
    eprintln!("lookout {:?}", t.elapsed());
    if want("lookout") {
        report("lookout", &files, std::slice::from_ref(&look), 0.6);
    }
    if want("cad-nab") {
        let s: Vec<Vec<f64>> = files.iter().map(|f| cad(f, true, 0.0, 0.0)).collect();
        report("cad-ose --nab-range", &files, &[s], 0.75);
    }
    if want("cad") || want("max") {
        let rests: Vec<(f64, f64)> = std::env::var("CAD")
            .unwrap_or("30:0.25".into())
            .split(',')
            .map(|x| {
                let (a, b) = x.split_once(':').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        let s: Vec<Vec<Vec<f64>>> = rests
            .iter()
            .map(|&(r, m)| files.iter().map(|f| cad(f, false, r, m)).collect())
            .collect();
        for (r, x) in rests.iter().zip(&s) {
            report(
                &format!("cad-ose causal rest/margin {r:?}"),
                &files,
                std::slice::from_ref(x),
                0.75,
            );
        }
        if rests.len() > 1 {
            report(
                "cad-ose causal, rest/margin chosen per fold",
                &files,
                &s,
                0.75,
            );
        }
        let mx: Vec<Vec<f64>> = s[0]
            .iter()
            .zip(&look)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x.max(*y)).collect())
            .collect();
        report("max(cad causal, lookout)", &files, &[mx], 0.75);
    }
}
