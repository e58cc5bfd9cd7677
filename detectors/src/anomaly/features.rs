//! Feature code shared by the models: the shape features (the last [`LAGS`] 3-point-smoothed
//! first differences, Netdata's), the distance to k-means centres, high quantiles, scale
//! floors and the dominant period of a history.

/// Lagged features per vector.
pub const LAGS: usize = 6;

/// Squared distance of `s / norm` to the nearest centre.
#[inline]
pub fn nearest_sq(centres: &[[f32; LAGS]], s: &[f32; LAGS], norm: f32) -> f32 {
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
pub fn floor_scale(scale: f32, magnitude: f32) -> f32 {
    scale.max(magnitude.abs() * 1e-6).max(1e-9)
}

/// The `rank`-th largest (1 = the largest) of non-negative values; 0 when there are none.
pub fn kth_largest(values: impl Iterator<Item = f32>, rank: usize) -> f32 {
    let mut v: Vec<f32> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    let k = rank.clamp(1, v.len());
    let (_, kth, _) = v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    kth.max(0.0)
}

/// Shortest lag at which the series repeats itself, with its autocorrelation: the highest
/// autocorrelation after the first zero crossing, when it is at least [`MIN_SEASONAL_ACF`]
/// and at least [`MIN_CYCLES`] periods fit in the history. Hand-written: a plain
/// autocorrelation.
pub fn dominant_period(history: &[f32]) -> Option<(usize, f32)> {
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
            best_lag = Some((l, a));
        }
    }
    best_lag
}

/// Autocorrelation needed to call a series periodic.
pub const MIN_SEASONAL_ACF: f32 = 0.5;
/// Periods that must fit in the history.
pub const MIN_CYCLES: usize = 2;
