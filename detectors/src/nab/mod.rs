//! A scorer compatible with the Numenta Anomaly Benchmark (NAB), following the rules in the
//! corpus README (`data/nab/README.md`) and NAB's own `sweeper.py`:
//!
//! * per file, the first `min(floor(0.15·rows), 750)` rows are a probation period: not scored;
//! * each labelled window is scored by its EARLIEST detection only, rewarded by the scaled
//!   sigmoid of the detection's relative position in the window (earlier = more reward),
//!   normalised so a detection at the very start earns `tp_weight`;
//! * a window without any detection costs `-fn_weight`;
//! * every detection outside the windows costs `fp_weight` times the scaled sigmoid of its
//!   distance past the previous window (so a late detection just after a window is cheap), or
//!   the full `-fp_weight` when no window precedes it;
//! * one threshold per profile, chosen to maximise the corpus score (an exhaustive sweep over
//!   every distinct score, as NAB's sweeper does);
//! * final = `100·(S − S_null)/(S_perfect − S_null)`, S_null = no detections at all,
//!   S_perfect = a detection at the first row of every window.
//!
//! Written by hand because no Rust crate implements NAB's scoring; it is small and tested
//! against hand-computed cases below.

pub mod cv;
mod time;

pub use time::parse_timestamp;

/// Weights of one NAB application profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
}

/// The three NAB profiles, in the order of the `nab ...` summary line.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 1.0,
    },
    Profile {
        name: "reward_low_FP",
        tp_weight: 1.0,
        fp_weight: 0.22,
        fn_weight: 1.0,
    },
    Profile {
        name: "reward_low_FN",
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 2.0,
    },
];

/// NAB's scaled sigmoid: 2·σ(−5x) − 1 for x ≤ 3, else −1. Positive inside a window (x in
/// [−1, 0]), negative after it.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Rows of a file that are not scored.
pub fn probation_rows(rows: usize) -> usize {
    ((rows as f64 * 0.15).floor() as usize).min(750)
}

/// One scorable row of one file: its anomaly score and where it sits relative to the
/// labelled windows.
#[derive(Clone, Copy, Debug)]
struct Point {
    score: f64,
    /// Index of the window this row is in (global over the corpus), if any.
    window: Option<usize>,
    /// Unweighted sigmoid reward: inside a window relative to `max_tp`, outside the raw
    /// (negative) sigmoid of its distance past the previous window.
    unweighted: f64,
}

/// One file's scores and labels, ready to be scored.
#[derive(Clone, Debug, Default)]
pub struct FileInput {
    /// Anomaly score of every row, in row order.
    pub scores: Vec<f64>,
    /// Labelled windows as inclusive row ranges `(first, last)`, sorted, not overlapping.
    pub windows: Vec<(usize, usize)>,
}

/// Map labelled windows given as timestamps to inclusive row ranges: the first row at or after
/// the start up to the last row at or before the end. Windows that contain no row are dropped.
pub fn windows_to_rows(timestamps: &[i64], windows: &[(i64, i64)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &(start, end) in windows {
        let first = timestamps.partition_point(|&t| t < start);
        let after = timestamps.partition_point(|&t| t <= end);
        if first < after {
            out.push((first, after - 1));
        }
    }
    out.sort();
    out
}

/// The corpus, prepared once; scoring at any threshold or profile reuses it.
#[derive(Debug, Default)]
pub struct Corpus {
    points: Vec<Point>,
    windows: usize,
}

/// The score of a corpus under one profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileResult {
    pub profile: Profile,
    /// Normalised NAB score (100 = perfect, 0 = no detections).
    pub score: f64,
    /// Raw corpus score before normalisation.
    pub raw: f64,
    /// The detection threshold used (score ≥ threshold is a detection).
    pub threshold: f64,
}

impl Corpus {
    pub fn new(files: &[FileInput]) -> Self {
        let max_tp = scaled_sigmoid(-1.0);
        let mut corpus = Corpus::default();
        for file in files {
            let n = file.scores.len();
            let probation = probation_rows(n);
            let first_window = corpus.windows;
            // Windows that end inside probation can never be detected; NAB still counts them
            // as windows (and they were labelled), so they stay in the count.
            corpus.windows += file.windows.len();
            let mut next = 0usize; // next window not yet passed
            let mut prev: Option<(usize, usize)> = None;
            for (i, &score) in file.scores.iter().enumerate() {
                while next < file.windows.len() && file.windows[next].1 < i {
                    prev = Some(file.windows[next]);
                    next += 1;
                }
                let inside = next < file.windows.len() && file.windows[next].0 <= i;
                let (window, unweighted) = if inside {
                    let (a, b) = file.windows[next];
                    let width = (b - a + 1) as f64;
                    let pos = -((b - i + 1) as f64) / width;
                    (Some(first_window + next), scaled_sigmoid(pos) / max_tp)
                } else {
                    let u = match prev {
                        None => -1.0,
                        Some((a, b)) => {
                            let width = (b - a + 1) as f64;
                            let denom = (width - 1.0).max(1.0);
                            scaled_sigmoid((i - b) as f64 / denom)
                        }
                    };
                    (None, u)
                };
                if i >= probation {
                    corpus.points.push(Point {
                        score: if score.is_finite() { score } else { 0.0 },
                        window,
                        unweighted,
                    });
                }
            }
        }
        corpus.points.sort_by(|a, b| b.score.total_cmp(&a.score));
        corpus
    }

    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Raw score of the null detector (nothing detected).
    pub fn null_score(&self, p: Profile) -> f64 {
        -(self.windows as f64) * p.fn_weight
    }

    /// Raw score of the perfect detector (every window detected at its first row).
    pub fn perfect_score(&self, p: Profile) -> f64 {
        self.windows as f64 * p.tp_weight
    }

    fn normalise(&self, p: Profile, raw: f64) -> f64 {
        let (null, perfect) = (self.null_score(p), self.perfect_score(p));
        if perfect > null {
            100.0 * (raw - null) / (perfect - null)
        } else {
            0.0
        }
    }

    /// Score at a fixed threshold (e.g. the detector's own operating threshold).
    pub fn score_at(&self, p: Profile, threshold: f64) -> ProfileResult {
        let mut best = vec![f64::NEG_INFINITY; self.windows];
        let mut fp = 0.0;
        for pt in self.points.iter().take_while(|x| x.score >= threshold) {
            match pt.window {
                Some(w) => best[w] = best[w].max(pt.unweighted * p.tp_weight),
                None => fp += pt.unweighted * p.fp_weight,
            }
        }
        let tp_fn: f64 = best
            .iter()
            .map(|&b| if b.is_finite() { b } else { -p.fn_weight })
            .sum();
        let raw = tp_fn + fp;
        ProfileResult {
            profile: p,
            score: self.normalise(p, raw),
            raw,
            threshold,
        }
    }

    /// The best score over every threshold (NAB's optimiser): lowering the threshold through
    /// the distinct scores, keeping the running corpus score up to date.
    pub fn optimise(&self, p: Profile) -> ProfileResult {
        let mut best_in_window = vec![f64::NEG_INFINITY; self.windows];
        // Start with nothing detected: a threshold above every score.
        let mut raw = self.null_score(p);
        let top = self.points.first().map(|x| x.score).unwrap_or(0.0);
        let mut result = ProfileResult {
            profile: p,
            score: 0.0,
            raw,
            threshold: next_up(top),
        };
        let mut i = 0;
        while i < self.points.len() {
            let threshold = self.points[i].score;
            while i < self.points.len() && self.points[i].score == threshold {
                let pt = self.points[i];
                match pt.window {
                    Some(w) => {
                        let reward = pt.unweighted * p.tp_weight;
                        let old = best_in_window[w];
                        if !old.is_finite() {
                            raw += p.fn_weight + reward;
                            best_in_window[w] = reward;
                        } else if reward > old {
                            raw += reward - old;
                            best_in_window[w] = reward;
                        }
                    }
                    None => raw += pt.unweighted * p.fp_weight,
                }
                i += 1;
            }
            if raw > result.raw {
                result.raw = raw;
                result.threshold = threshold;
            }
        }
        result.score = self.normalise(p, result.raw);
        result
    }
}

/// Detections (score ≥ `threshold`) of a file outside its windows, after probation.
pub fn false_positives(file: &FileInput, threshold: f64) -> usize {
    let probation = probation_rows(file.scores.len());
    file.scores
        .iter()
        .enumerate()
        .skip(probation)
        .filter(|&(i, &s)| s >= threshold && !file.windows.iter().any(|&(a, b)| a <= i && i <= b))
        .count()
}

/// The smallest f64 above `x` (a threshold that detects nothing).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

#[cfg(test)]
mod tests;
