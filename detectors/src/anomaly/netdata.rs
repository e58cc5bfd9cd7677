//! The Netdata-style baseline (Netdata's `src/ml`): the features are the last [`LAGS`]
//! values of the 3-point moving average of the first difference; k-means with k = 2; each
//! model scores `(d − min_d)/(max_d − min_d)` with d the MEAN distance to both centres and
//! min/max over its training window; a sample is anomalous only when EVERY kept model calls it
//! anomalous (score ≥ 0.99 of that range). Netdata trains every 3 h on up to 6 h and keeps 18
//! models; per-sample here (bounded memory): a model every [`RETRAIN_EVERY`] samples on the
//! last [`TRAIN_WINDOW`], the last [`MODELS`] kept.
//!
//! The score exported is half the consensus (minimum over models) range ratio, clamped to
//! [0, 1], so Netdata's own "anomalous" bit is score ≥ [`OPERATING_THRESHOLD`] = 0.495.

pub use super::features::LAGS;
use super::kmeans::kmeans;
use std::collections::VecDeque;

/// Samples each model is trained on.
pub const TRAIN_WINDOW: usize = 512;
/// A new model every this many samples (successive windows).
pub const RETRAIN_EVERY: usize = 128;
/// Models kept; all must agree.
pub const MODELS: usize = 4;
/// Netdata's anomaly bit: every model's ratio ≥ 0.99.
pub const OPERATING_THRESHOLD: f64 = 0.495;

#[derive(Clone, Debug)]
pub struct NetdataModel {
    centres: [[f32; LAGS]; 2],
    min_d: f32,
    max_d: f32,
}

impl NetdataModel {
    fn ratio(&self, s: &[f32; LAGS]) -> f32 {
        let d = mean_distance(&self.centres, s);
        (d - self.min_d) / (self.max_d - self.min_d).max(1e-9)
    }
}

fn mean_distance(centres: &[[f32; LAGS]; 2], s: &[f32; LAGS]) -> f32 {
    let mut total = 0.0;
    for c in centres {
        let mut d2 = 0.0;
        for j in 0..LAGS {
            let v = s[j] - c[j];
            d2 += v * v;
        }
        total += d2.sqrt();
    }
    total / 2.0
}

/// Train one model on a window of raw values (oldest first).
pub fn train(history: &[f32]) -> NetdataModel {
    let diffs: Vec<f32> = history.windows(2).map(|w| w[1] - w[0]).collect();
    let smoothed: Vec<f32> = diffs
        .windows(3)
        .map(|w| (w[0] + w[1] + w[2]) / 3.0)
        .collect();
    let rows: Vec<[f32; LAGS]> = smoothed
        .windows(LAGS)
        .map(|w| std::array::from_fn(|j| w[j]))
        .collect();
    let centres = kmeans(&rows, 2)
        .and_then(|c| <[[f32; LAGS]; 2]>::try_from(c).ok())
        .unwrap_or([[0.0; LAGS]; 2]);
    let (mut min_d, mut max_d) = (f32::MAX, 0.0f32);
    for r in &rows {
        let d = mean_distance(&centres, r);
        min_d = min_d.min(d);
        max_d = max_d.max(d);
    }
    if rows.is_empty() {
        min_d = 0.0;
    }
    NetdataModel {
        centres,
        min_d,
        max_d,
    }
}

/// The kept models.
#[derive(Clone, Debug, Default)]
pub struct Ensemble {
    models: VecDeque<NetdataModel>,
}

impl Ensemble {
    pub fn push(&mut self, m: NetdataModel) {
        if self.models.len() == MODELS {
            self.models.pop_front();
        }
        self.models.push_back(m);
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn score(&self, shape: Option<&[f32; LAGS]>) -> f32 {
        let Some(s) = shape else { return 0.0 };
        if self.models.is_empty() {
            return 0.0;
        }
        let consensus = self
            .models
            .iter()
            .map(|m| m.ratio(s))
            .fold(f32::MAX, f32::min);
        (consensus * 0.5).clamp(0.0, 1.0)
    }

    pub fn heap_bytes(&self) -> usize {
        MODELS * std::mem::size_of::<NetdataModel>()
    }
}
