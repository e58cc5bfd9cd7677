//! k-means over shape features, shared by the deviation model and the Netdata baseline: linfa's
//! (k-means++ initialisation, fixed seed, so training is deterministic).

use super::features::LAGS;
use linfa::DatasetBase;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;

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
