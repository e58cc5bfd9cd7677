//! Development harness for the cross-validation protocol: scores a NAB-style corpus (a root
//! with `data/<category>/<file>.csv` and `combined_windows.json`) with several detectors and
//! prints in-sample and leave-one-category-out CV figures.
//! `cargo run --release -p lookout-detectors --example nab_cv -- ../shared/data/nab [detectors]`
use lookout_detectors::anomaly::bocpd::Bocpd;
use lookout_detectors::anomaly::cad_ose::CadOse;
use lookout_detectors::anomaly::{CAD_MAX_BYTES, Detector, Method, Params, SeriesKind};
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
    lookout_with(f, Params::default())
}

fn lookout_with(f: &File, p: Params) -> Vec<f64> {
    let mut d = Detector::with_params(Method::Lookout, SeriesKind::Gauge, p);
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

/// CAD OSE with its range fixed from the first `w` values (span widened by `m` each side).
fn cad_buffered(f: &File, rest: f64, w: usize, m: f64, bound: (usize, usize, usize)) -> Vec<f64> {
    let mut c = if std::env::var("NABRANGE").is_ok() {
        // Not causal: the file's range up front (a ceiling for the causal range).
        let min = f.vs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = f.vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        CadOse::with_range(min, max, rest).quiet_for(w + bound.2)
    } else {
        CadOse::buffered(rest, w, m).quiet_for(bound.2)
    };
    let bytes: usize = std::env::var("CADBYTES").map_or(CAD_MAX_BYTES, |v| v.parse().unwrap());
    if bound.0 > 0 {
        c = c.bounded(bound.0, bytes, bound.1);
    }
    f.vs.iter().map(|&v| c.score(v)).collect()
}

fn bocpd(f: &File, lambda: f64) -> Vec<f64> {
    let mut b = Bocpd::new(lambda);
    f.vs.iter().map(|&v| b.score(v)).collect()
}

/// Per-file combination of several detectors' scores, each first divided by its operating
/// threshold (so that "at its own threshold" means the same for each), then halved: the
/// combination's 0.5 is "one of them at its threshold".
fn combine(parts: &[(&Vec<Vec<f64>>, f64)], how: &str) -> Vec<Vec<f64>> {
    let files = parts[0].0.len();
    (0..files)
        .map(|i| {
            let n = parts[0].0[i].len();
            (0..n)
                .map(|t| {
                    let v: Vec<f64> = parts.iter().map(|(s, op)| s[i][t] / op).collect();
                    let c = match how {
                        "max" => v.iter().copied().fold(0.0, f64::max),
                        "mean" => v.iter().sum::<f64>() / v.len() as f64,
                        // The second largest: at least two agree.
                        "second" => {
                            let mut w = v.clone();
                            w.sort_by(|a, b| b.total_cmp(a));
                            w.get(1).copied().unwrap_or(0.0)
                        }
                        _ => panic!("{how}"),
                    };
                    (c * 0.5).clamp(0.0, 1.0)
                })
                .collect()
        })
        .collect()
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
    if want("sensitivity") {
        // Each setting of the default detector at −20 % and +20 % (the scale quantile's tail:
        // 2 % → 1.6 % and 2.4 %; integers rounded), one at a time.
        type Set = fn(&mut Params, f64);
        let knobs: Vec<(&str, Set, f64)> = vec![
            (
                "scale tail (1 - quantile)",
                |p, k| p.train.scale_quantile = 1.0 - (1.0 - p.train.scale_quantile) * k as f32,
                1.0,
            ),
            ("explain_acf", |p, k| p.train.explain_acf *= k as f32, 1.0),
            ("refractory_seconds", |p, k| p.refractory_seconds *= k, 1.0),
            ("novelty growth", |p, k| p.novelty.growth *= k as f32, 1.0),
            (
                "novelty bucket_seconds",
                |p, k| p.novelty.bucket_seconds *= k,
                1.0,
            ),
            (
                "novelty bucket_min_samples",
                |p, k| {
                    p.novelty.bucket_min_samples =
                        (f64::from(p.novelty.bucket_min_samples) * k).round() as u32
                },
                1.0,
            ),
            (
                "context_damp",
                |p, k| p.context_damp = (p.context_damp * k as f32).min(1.0),
                1.0,
            ),
            (
                "context_levels",
                |p, k| p.context_levels = (p.context_levels * k as f32).round(),
                1.0,
            ),
            (
                "context_generation",
                |p, k| p.context_generation = (f64::from(p.context_generation) * k).round() as u32,
                1.0,
            ),
            ("context_rescale", |p, k| p.context_rescale *= k as f32, 1.0),
        ];
        let lf: Vec<cv::LabelledFile> = files
            .iter()
            .map(|f| cv::LabelledFile {
                category: f.category.clone(),
                windows: f.windows.clone(),
            })
            .collect();
        let mut all = vec![look.clone()];
        let score = |s: &[Vec<f64>]| {
            let std = PROFILES[0];
            let a = cv::leave_one_category_out(&lf, &[s.to_vec()], std, None);
            let b = cv::leave_one_category_out(&lf, &[s.to_vec()], std, Some(0.6));
            (a.in_sample, a.cv, b.in_sample)
        };
        let base = score(&look);
        println!("== sensitivity (standard profile): in-sample optimised / CV / in-sample at 0.6");
        println!("{:32} {:>22} {:>22}", "setting", "-20 %", "+20 %");
        println!(
            "{:32} {:6.2} / {:6.2} / {:6.2}",
            "default", base.0, base.1, base.2
        );
        for (name, set, _) in &knobs {
            let mut row = format!("{name:32}");
            for k in [0.8, 1.2] {
                let mut p = Params::default();
                set(&mut p, k);
                let s: Vec<Vec<f64>> = files.iter().map(|f| lookout_with(f, p)).collect();
                let (a, b, c) = score(&s);
                row += &format!(" {a:6.2} / {b:6.2} / {c:6.2}");
                all.push(s);
            }
            println!("{row}");
        }
        report(
            "lookout, setting chosen per fold among default and each ±20 %",
            &files,
            &all,
            0.6,
        );
    }
    if want("cad-nab") {
        let s: Vec<Vec<f64>> = files.iter().map(|f| cad(f, true, 0.0, 0.0)).collect();
        report("cad-ose --nab-range", &files, &[s], 0.75);
    }
    if want("cadb") || want("combo") || want("combo-sens") {
        // CADB="rest:window:margin[:max_contexts:keep[:mute]],..." (CADBYTES: the byte bound;
        // mute: CAD's scores are 0 for that many values after its warm-up) — the
        // first is the default for
        // the combinations.
        type Knobs = (f64, usize, f64, usize, usize, usize);
        let knobs: Vec<Knobs> = std::env::var("CADB")
            .unwrap_or("30:256:1.0:1024:768:576".into())
            .split(',')
            .map(|x| {
                let p: Vec<&str> = x.split(':').collect();
                let n = |i: usize| p.get(i).map_or(0, |v| v.parse().unwrap());
                (
                    p[0].parse().unwrap(),
                    p[1].parse().unwrap(),
                    p[2].parse().unwrap(),
                    n(3),
                    n(4),
                    n(5),
                )
            })
            .collect();
        let s: Vec<Vec<Vec<f64>>> = knobs
            .iter()
            .map(|&(r, w, m, c, p, q)| {
                files
                    .iter()
                    .map(|f| cad_buffered(f, r, w, m, (c, p, q)))
                    .collect()
            })
            .collect();
        for (k, x) in knobs.iter().zip(&s) {
            report(
                &format!("cad-ose buffered rest/window/margin {k:?}"),
                &files,
                std::slice::from_ref(x),
                0.75,
            );
        }
        if knobs.len() > 1 {
            report("cad-ose buffered, knobs chosen per fold", &files, &s, 0.75);
        }
        if want("combo-sens") {
            let combos: Vec<Vec<Vec<f64>>> = s
                .iter()
                .map(|c| combine(&[(c, 0.75), (&look, 0.6)], "max"))
                .collect();
            for (k, c) in knobs.iter().zip(&combos) {
                report(
                    &format!("max(cad {k:?}, lookout)"),
                    &files,
                    std::slice::from_ref(c),
                    0.5,
                );
            }
            report(
                "max(cad, lookout), cad knobs chosen per fold",
                &files,
                &combos,
                0.5,
            );
            // Memory of the context memory at the end of each file.
            let (r, w, m, cap, replay, _) = knobs[0];
            let mut bytes: Vec<(usize, usize, u64, String)> = files
                .iter()
                .map(|f| {
                    let mut c = CadOse::buffered(r, w, m);
                    let bytes: usize =
                        std::env::var("CADBYTES").map_or(CAD_MAX_BYTES, |v| v.parse().unwrap());
                    if cap > 0 {
                        c = c.bounded(cap, bytes, replay);
                    }
                    let mut most = 0;
                    for &v in &f.vs {
                        c.score(v);
                        most = most.max(c.memory_bytes());
                    }
                    (most, c.contexts(), c.evictions(), f.category.clone())
                })
                .collect();
            bytes.sort();
            let mean = bytes.iter().map(|b| b.0).sum::<usize>() / bytes.len();
            println!(
                "cad memory, largest over each file: mean {mean} B, median {:?}, max {:?}",
                bytes[bytes.len() / 2],
                bytes.last()
            );
        }
        if want("combo") {
            let lambda: f64 = std::env::var("LAMBDA").map_or(250.0, |v| v.parse().unwrap());
            let b: Vec<Vec<f64>> = files.iter().map(|f| bocpd(f, lambda)).collect();
            report(
                &format!("bocpd lambda {lambda}"),
                &files,
                std::slice::from_ref(&b),
                lookout_detectors::anomaly::BOCPD_THRESHOLD,
            );
            let cad = &s[0];
            for how in ["max", "mean"] {
                let c = combine(&[(cad, 0.75), (&look, 0.6)], how);
                report(&format!("{how}(cad buffered, lookout)"), &files, &[c], 0.5);
                let c = combine(&[(cad, 0.75), (&b, 0.5)], how);
                report(&format!("{how}(cad buffered, bocpd)"), &files, &[c], 0.5);
                let c = combine(&[(&look, 0.6), (&b, 0.5)], how);
                report(&format!("{how}(lookout, bocpd)"), &files, &[c], 0.5);
            }
            for how in ["max", "mean", "second"] {
                let c = combine(&[(cad, 0.75), (&look, 0.6), (&b, 0.5)], how);
                report(
                    &format!("{how}(cad buffered, lookout, bocpd)"),
                    &files,
                    &[c],
                    0.5,
                );
            }
        }
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
