//! Leave-one-category-out cross-validation of a detector on a NAB-style corpus: the protocol
//! that says whether a choice generalises.
//!
//! The caller scores every file with every candidate configuration (the detectors are causal
//! and per file, so a file's scores do not depend on which other files are in a fold). For
//! each category, the configuration and the threshold are chosen on the OTHER categories
//! (NAB's optimiser, or the fixed operating threshold), and the held-out category's files are
//! turned into detections with that choice. The CV score is the NAB score of the whole corpus
//! made of those held-out detections: every file is judged by a choice made without it.
//! In-sample is the same with the choice made on every file, for comparison.

use super::{Corpus, FileInput, Profile};

/// One labelled file: its category (the fold it belongs to) and its labelled windows.
#[derive(Clone, Debug)]
pub struct LabelledFile {
    pub category: String,
    pub windows: Vec<(usize, usize)>,
}

/// What one fold chose and how its held-out category scored.
#[derive(Clone, Debug)]
pub struct Fold {
    pub category: String,
    /// Index of the configuration chosen on the other categories.
    pub config: usize,
    pub threshold: f64,
    /// NAB score of the held-out category alone with that choice (0 when it has no windows).
    pub held_out: f64,
    /// Detections outside every window in the held-out category.
    pub false_positives: usize,
}

/// Cross-validated and in-sample scores of one profile.
#[derive(Clone, Debug)]
pub struct CvResult {
    pub profile: Profile,
    /// The whole corpus, every file judged by the choice of the fold that held it out.
    pub cv: f64,
    /// The best configuration and threshold chosen on all files, scored on all files.
    pub in_sample: f64,
    pub in_sample_config: usize,
    pub in_sample_threshold: f64,
    pub folds: Vec<Fold>,
}

fn inputs(
    files: &[LabelledFile],
    scores: &[Vec<f64>],
    keep: impl Fn(&str) -> bool,
) -> Vec<FileInput> {
    files
        .iter()
        .zip(scores)
        .filter(|(f, _)| keep(&f.category))
        .map(|(f, s)| FileInput {
            scores: s.clone(),
            windows: f.windows.clone(),
        })
        .collect()
}

/// Best (configuration, threshold, score) over the files of the categories `keep` accepts.
/// With `fixed` the threshold is that one; otherwise NAB's optimiser. Ties keep the lowest
/// configuration index (put the default first).
fn choose(
    files: &[LabelledFile],
    scores: &[Vec<Vec<f64>>],
    profile: Profile,
    fixed: Option<f64>,
    keep: &dyn Fn(&str) -> bool,
) -> (usize, f64, f64) {
    let mut best = (0, fixed.unwrap_or(1.0), f64::NEG_INFINITY);
    for (c, per_file) in scores.iter().enumerate() {
        let corpus = Corpus::new(&inputs(files, per_file, keep));
        let r = match fixed {
            Some(t) => corpus.score_at(profile, t),
            None => corpus.optimise(profile),
        };
        if r.score > best.2 {
            best = (c, r.threshold, r.score);
        }
    }
    best
}

/// Detections (1.0) of `scores` at `threshold`.
fn binarise(scores: &[f64], threshold: f64) -> Vec<f64> {
    scores
        .iter()
        .map(|&s| if s >= threshold { 1.0 } else { 0.0 })
        .collect()
}

/// Run the protocol. `scores[c][f]` are the scores of file `f` under configuration `c`.
pub fn leave_one_category_out(
    files: &[LabelledFile],
    scores: &[Vec<Vec<f64>>],
    profile: Profile,
    fixed: Option<f64>,
) -> CvResult {
    let mut categories: Vec<String> = files.iter().map(|f| f.category.clone()).collect();
    categories.sort();
    categories.dedup();
    let (config, threshold, in_sample) = choose(files, scores, profile, fixed, &|_| true);
    let mut held: Vec<Option<FileInput>> = vec![None; files.len()];
    let mut folds = Vec::new();
    for cat in &categories {
        let (c, t, _) = choose(files, scores, profile, fixed, &|k| k != cat);
        let mut own = Vec::new();
        let mut false_positives = 0;
        for (i, f) in files.iter().enumerate() {
            if &f.category != cat {
                continue;
            }
            let input = FileInput {
                scores: binarise(&scores[c][i], t),
                windows: f.windows.clone(),
            };
            false_positives += super::false_positives(&input, 0.5);
            own.push(input.clone());
            held[i] = Some(input);
        }
        let held_out = Corpus::new(&own).score_at(profile, 0.5).score;
        folds.push(Fold {
            category: cat.clone(),
            config: c,
            threshold: t,
            held_out,
            false_positives,
        });
    }
    let all: Vec<FileInput> = held.into_iter().flatten().collect();
    let cv = Corpus::new(&all).score_at(profile, 0.5).score;
    CvResult {
        profile,
        cv,
        in_sample,
        in_sample_config: config,
        in_sample_threshold: threshold,
        folds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::PROFILES;

    fn file(cat: &str, window: Option<(usize, usize)>) -> LabelledFile {
        LabelledFile {
            category: cat.into(),
            windows: window.into_iter().collect(),
        }
    }

    #[test]
    fn a_threshold_that_only_fits_in_sample_is_caught() {
        // Category a: its window is found at score 0.9 and it has a false alarm at 0.5.
        // Category b: its window is found only at 0.3. In-sample, one threshold (0.3) finds
        // both windows; held out, each category gets the other's threshold.
        let files = vec![file("a", Some((50, 59))), file("b", Some((50, 59)))];
        let mut a = vec![0.0; 100];
        a[50] = 0.9;
        a[80] = 0.5;
        let mut b = vec![0.0; 100];
        b[50] = 0.3;
        let scores = vec![vec![a, b]];
        let r = leave_one_category_out(&files, &scores, PROFILES[0], None);
        assert!(r.in_sample > 90.0, "{r:?}");
        // Fold a: chosen on b (threshold 0.3) → a's window found and its false alarm too.
        // Fold b: chosen on a (threshold 0.9) → b's window missed.
        assert_eq!(r.folds[0].false_positives, 1);
        assert_eq!(r.folds[1].held_out, 0.0);
        assert!(r.cv < 50.0, "{r:?}");
    }

    #[test]
    fn configurations_are_chosen_per_fold() {
        let files = vec![file("a", Some((50, 59))), file("b", Some((50, 59)))];
        let hit = {
            let mut v = vec![0.0; 100];
            v[50] = 1.0;
            v
        };
        let miss = vec![0.0; 100];
        // Config 0 finds a's window only, config 1 finds b's only.
        let scores = vec![vec![hit.clone(), miss.clone()], vec![miss, hit]];
        let r = leave_one_category_out(&files, &scores, PROFILES[0], Some(0.5));
        assert_eq!(r.folds[0].config, 1, "a is held out: chosen on b");
        assert_eq!(r.folds[1].config, 0);
        assert_eq!(r.cv, 0.0);
        assert_eq!(r.in_sample, 50.0);
    }
}
