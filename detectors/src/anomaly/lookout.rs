//! The lookout detector's model: three deviations of a sample, each normalised by the largest
//! of its kind in the training window (so 1.0 = "as unusual as the worst of the last
//! [`HISTORY`](super::HISTORY) samples"):
//!
//! * level: distance from the training median (values outside the recent range);
//! * jump: the absolute first difference (spikes and steps);
//! * shape: distance of the last six 3-point-smoothed differences (scaled by the mean absolute
//!   difference) to the nearest of k = 4 k-means centres fitted with linfa (changes of
//!   behaviour: a cycle that stops, noise that changes character, a flat line in a busy series).
//!
//! Why k-means earns its place: level and jump alone miss changes of shape whose values stay
//! in range (a daily wave that goes flat, noise that turns periodic); the centres describe the
//! series' normal short-term motions, so a motion unlike all of them stands out.

use super::netdata::LAGS;
use linfa::DatasetBase;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;

/// Score at or above which a sample is anomalous: n = 2, i.e. twice beyond the largest
/// deviation of the training window and of the last ~48 h.
pub const OPERATING_THRESHOLD: f64 = 0.8;
/// Samples of training history after which a model's deviations are remembered by the
/// novelty memory.
pub const MATURE: usize = 256;
/// Clusters of short-term motion.
pub const CLUSTERS: usize = 4;

#[derive(Clone, Debug)]
pub struct LookoutModel {
    median: f32,
    level_scale: f32,
    jump_scale: f32,
    /// Features are smoothed differences divided by this.
    shape_norm: f32,
    centres: Vec<[f32; LAGS]>,
    shape_scale: f32,
    /// The dominant period in samples (daily wave in 5-minute data, ...), if any, and the
    /// largest seasonal residual |x_t − x_{t−period}| of the training window.
    period: Option<(usize, f32)>,
    /// Samples it was trained on.
    trained_on: usize,
}

impl LookoutModel {
    /// Largest of the normalised deviations of sample `x` (with its first difference and
    /// shape features when available).
    #[inline]
    pub fn deviation(
        &self,
        x: f32,
        diff: Option<f32>,
        shape: Option<&[f32; LAGS]>,
        ago: impl Fn(usize) -> Option<f32>,
    ) -> f32 {
        let mut e = (x - self.median).abs() / self.level_scale;
        if let Some((period, scale)) = self.period
            && let Some(past) = ago(period)
        {
            e = e.max((x - past).abs() / scale);
        }
        if let Some(d) = diff {
            e = e.max(d.abs() / self.jump_scale);
        }
        if let (Some(s), false) = (shape, self.centres.is_empty()) {
            let d2 = nearest_sq(&self.centres, s, self.shape_norm);
            e = e.max(d2.sqrt() / self.shape_scale);
        }
        e
    }

    /// Trained on enough history for its deviations to be remembered as normal.
    pub fn mature(&self) -> bool {
        self.trained_on >= MATURE
    }

    pub fn heap_bytes(&self) -> usize {
        self.centres.capacity() * std::mem::size_of::<[f32; LAGS]>()
    }
}

/// Squared distance of `s / norm` to the nearest centre.
#[inline]
fn nearest_sq(centres: &[[f32; LAGS]], s: &[f32; LAGS], norm: f32) -> f32 {
    let inv = 1.0 / norm;
    let mut best = f32::MAX;
    for c in centres {
        let mut d2 = 0.0;
        for j in 0..LAGS {
            let v = s[j] * inv - c[j];
            d2 += v * v;
        }
        best = best.min(d2);
    }
    best
}

/// A scale that is never zero: flat history makes any change stand out instead of dividing
/// by zero.
fn floor_scale(scale: f32, magnitude: f32) -> f32 {
    scale.max(magnitude.abs() * 1e-6).max(1e-9)
}

/// Fit the model on the history (oldest first). Never fails: degenerate data (flat lines,
/// too few points) gives a model without shape centres.
pub fn train(history: &[f32]) -> LookoutModel {
    let mut sorted: Vec<f32> = history.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let magnitude = sorted
        .first()
        .map_or(0.0, |lo| lo.abs().max(sorted[sorted.len() - 1].abs()));
    let level = history
        .iter()
        .map(|v| (v - median).abs())
        .fold(0.0, f32::max);
    let diffs: Vec<f32> = history.windows(2).map(|w| w[1] - w[0]).collect();
    let jump = diffs.iter().map(|d| d.abs()).fold(0.0, f32::max);
    let mean_abs = diffs.iter().map(|d| d.abs()).sum::<f32>() / diffs.len().max(1) as f32;
    let shape_norm = floor_scale(mean_abs, magnitude);
    let smoothed: Vec<f32> = diffs
        .windows(3)
        .map(|w| (w[0] + w[1] + w[2]) / 3.0)
        .collect();
    let mut model = LookoutModel {
        median,
        level_scale: floor_scale(level, magnitude),
        jump_scale: floor_scale(jump, magnitude),
        shape_norm,
        centres: Vec::new(),
        shape_scale: 1.0,
        period: None,
        trained_on: history.len(),
    };
    if let Some(p) = dominant_period(history) {
        let residual = history[p..]
            .iter()
            .zip(history)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        model.period = Some((p, floor_scale(residual, magnitude)));
    }
    if smoothed.len() < LAGS + CLUSTERS * 4 || mean_abs <= 0.0 {
        return model;
    }
    let rows: Vec<[f32; LAGS]> = smoothed
        .windows(LAGS)
        .map(|w| std::array::from_fn(|j| w[j] / shape_norm))
        .collect();
    let Some(centres) = kmeans(&rows, CLUSTERS) else {
        return model;
    };
    let largest = rows
        .iter()
        .map(|r| nearest_sq(&centres, r, 1.0).sqrt())
        .fold(0.0, f32::max);
    model.centres = centres;
    model.shape_scale = largest.max(1e-3);
    model
}

/// Shortest lag at which the series repeats itself: the highest autocorrelation after the
/// first zero crossing, when it is at least [`MIN_SEASONAL_ACF`] and at least
/// [`MIN_CYCLES`] periods fit in the history. Hand-written: a plain autocorrelation.
pub fn dominant_period(history: &[f32]) -> Option<usize> {
    let n = history.len();
    let max_lag = n / MIN_CYCLES;
    if max_lag < 4 {
        return None;
    }
    let mean = history.iter().sum::<f32>() / n as f32;
    let centred: Vec<f32> = history.iter().map(|v| v - mean).collect();
    let var: f32 = centred.iter().map(|v| v * v).sum();
    if var <= 0.0 || !var.is_finite() {
        return None;
    }
    let acf = |lag: usize| -> f32 {
        let s: f32 = centred[lag..]
            .iter()
            .zip(&centred)
            .map(|(a, b)| a * b)
            .sum();
        // Normalised by the overlap so long lags are not penalised.
        s / var * n as f32 / (n - lag) as f32
    };
    let mut lag = 1;
    while lag <= max_lag && acf(lag) > 0.0 {
        lag += 1;
    }
    let (mut best, mut best_lag) = (MIN_SEASONAL_ACF, None);
    for l in lag..=max_lag {
        let a = acf(l);
        if a > best {
            best = a;
            best_lag = Some(l);
        }
    }
    best_lag
}

/// Autocorrelation needed to call a series periodic.
pub const MIN_SEASONAL_ACF: f32 = 0.5;
/// Periods that must fit in the history.
pub const MIN_CYCLES: usize = 2;

/// k-means with linfa (k-means++ init, fixed seed: deterministic). `None` when it fails or
/// gives non-finite centres.
pub(crate) fn kmeans(rows: &[[f32; LAGS]], k: usize) -> Option<Vec<[f32; LAGS]>> {
    if rows.len() < k {
        return None;
    }
    let data = Array2::from_shape_fn((rows.len(), LAGS), |(i, j)| f64::from(rows[i][j]));
    let dataset = DatasetBase::from(data);
    let model = KMeans::params(k)
        .n_runs(2)
        .max_n_iterations(40)
        .tolerance(1e-4)
        .fit(&dataset)
        .ok()?;
    let centres: Vec<[f32; LAGS]> = model
        .centroids()
        .rows()
        .into_iter()
        .map(|r| std::array::from_fn(|j| r[j] as f32))
        .collect();
    centres
        .iter()
        .all(|c| c.iter().all(|v| v.is_finite()))
        .then_some(centres)
}
