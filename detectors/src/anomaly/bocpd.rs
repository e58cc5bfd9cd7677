//! Bayesian online change-point detection (Adams & MacKay 2007) as NAB runs it
//! (`nab/detectors/bayes_changept/`, NAB's `bayesChangePt`), ported to Rust.
//!
//! The detector keeps a probability for every run length r (samples since the last change
//! point) up to [`MAX_RUN`]. Each run length has a Normal-Gamma posterior over the mean and
//! precision of the samples of its run, starting from NAB's prior (α₀ = 0.1, β₀ = 0.001,
//! κ₀ = 1, μ₀ = 0); a new sample's predictive density under run length r is a Student-t with
//! 2αᵣ degrees of freedom, location μᵣ and scale √(βᵣ(κᵣ+1)/(αᵣκᵣ)). The run lengths grow
//! with probability 1 − h and fall back to 0 with probability h (constant hazard,
//! h = 1/[`LAMBDA`]); run lengths past [`MAX_RUN`] are dropped (NAB's truncation). The score
//! is NAB's "option 3": when the most probable run length r* falls below the previous one
//! r*₋₁, `1 − r*/r*₋₁` (a change after a long run scores near 1), else 0.
//!
//! Exactness: on four development files its scores equal NAB's Python (numpy/scipy) code's to
//! 1e-9 (`detectors/tests/bocpd_reference.rs`). Differences from NAB's code, both on purpose:
//! * NAB keeps every posterior ever computed (its parameter arrays grow by one per sample, of
//!   which only the first `MAX_RUN + 1` are read); this keeps those `MAX_RUN + 1`: the same
//!   numbers in bounded memory.
//! * When a sample is so far out that every predictive density underflows to 0, NAB's
//!   normalisation divides 0 by 0 and the detector is NaN (and silent) for the rest of the
//!   file; here the run length restarts at 0 (a certain change point) and the detector goes on.
//!
//! Memory: 3 × (`MAX_RUN` + 2) f64, 12 KB (run-length probabilities, μᵣ, βᵣ); κᵣ and αᵣ depend
//! on r only. The log-gamma terms of the Student-t are a shared table.

use std::sync::OnceLock;

/// Longest run length kept (NAB's `maxRunLength`).
pub const MAX_RUN: usize = 500;
/// Expected run length between change points: hazard = 1 / LAMBDA (NAB's `lambdaConst`).
pub const LAMBDA: f64 = 250.0;
/// NAB's prior.
pub const ALPHA0: f64 = 0.1;
pub const BETA0: f64 = 0.001;
pub const KAPPA0: f64 = 1.0;
pub const MU0: f64 = 0.0;

/// ln Γ(α₀) and ln Γ(α₀ + ½) for α₀ = 0.1 (Python's `math.lgamma`); every other αᵣ = α₀ + r/2
/// follows by Γ(x + 1) = x Γ(x).
const LGAMMA_ALPHA0: f64 = 2.252_712_651_734_205_5;
const LGAMMA_ALPHA0_HALF: f64 = 0.398_233_858_069_234_84;

/// `norm[r]` = ln Γ(αᵣ + ½) − ln Γ(αᵣ) − ½ ln(2αᵣ π): the log of the Student-t's constant
/// without its scale, for r = 0..=MAX_RUN.
fn norm_table() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // lg[k] = ln Γ(α₀ + k/2).
        let mut lg = vec![0.0; MAX_RUN + 2];
        lg[0] = LGAMMA_ALPHA0;
        lg[1] = LGAMMA_ALPHA0_HALF;
        for k in 2..lg.len() {
            let x = ALPHA0 + (k - 2) as f64 / 2.0;
            lg[k] = lg[k - 2] + x.ln();
        }
        (0..=MAX_RUN)
            .map(|r| {
                let alpha = ALPHA0 + r as f64 / 2.0;
                lg[r + 1] - lg[r] - 0.5 * (2.0 * alpha * std::f64::consts::PI).ln()
            })
            .collect()
    })
}

/// A vector holding `first`, with room for every run length (no reallocation later).
fn with_first(first: f64) -> Vec<f64> {
    let mut v = Vec::with_capacity(MAX_RUN + 1);
    v.push(first);
    v
}

/// The change-point detector of one series.
#[derive(Clone, Debug)]
pub struct Bocpd {
    /// Run-length probabilities, index = run length, `MAX_RUN + 2` entries.
    probs: Vec<f64>,
    /// Posterior location and β of each run length (index 0 = the prior).
    mu: Vec<f64>,
    beta: Vec<f64>,
    timestep: usize,
    previous_max_run: usize,
    hazard: f64,
}

impl Default for Bocpd {
    fn default() -> Self {
        Self::new(LAMBDA)
    }
}

impl Bocpd {
    /// A detector with hazard `1 / lambda` (NAB: 250).
    pub fn new(lambda: f64) -> Self {
        let mut probs = vec![0.0; MAX_RUN + 2];
        probs[0] = 1.0;
        Self {
            probs,
            mu: with_first(MU0),
            beta: with_first(BETA0),
            timestep: 0,
            previous_max_run: 1,
            hazard: 1.0 / lambda.max(1.0),
        }
    }

    /// Bytes of this detector (inline and heap).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 8 * (self.probs.capacity() + self.mu.capacity() + self.beta.capacity())
    }

    /// The most probable run length after the last sample.
    pub fn run_length(&self) -> usize {
        self.previous_max_run
    }

    /// Score one sample (NAB's `handleRecord`). A non-finite value scores 0 and changes
    /// nothing.
    pub fn score(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let norm = norm_table();
        let n = self.mu.len(); // = min(timestep, MAX_RUN) + 1
        // Predictive density of x under each run length r, then growth (r → r + 1) and
        // change point (→ 0), in place from the top so that each old probability is read
        // before it is overwritten.
        let h = self.hazard;
        let mut change = 0.0;
        for r in (0..n).rev() {
            let alpha = ALPHA0 + r as f64 / 2.0;
            let kappa = KAPPA0 + r as f64;
            let scale = (self.beta[r] * (kappa + 1.0) / (alpha * kappa)).sqrt();
            let z = (x - self.mu[r]) / scale;
            let nu = 2.0 * alpha;
            let log = norm[r] - scale.ln() - (alpha + 0.5) * (z * z / nu).ln_1p();
            let p = self.probs[r] * log.exp();
            change += p * h;
            self.probs[r + 1] = p * (1.0 - h);
        }
        self.probs[0] = change;
        let total: f64 = self.probs.iter().sum();
        if total > 0.0 && total.is_finite() {
            for p in &mut self.probs {
                *p /= total;
            }
        } else {
            // Every density underflowed: a certain change point (NAB would go NaN here).
            self.probs.iter_mut().for_each(|p| *p = 0.0);
            self.probs[0] = 1.0;
        }
        // Posterior update: run length r + 1 from run length r, the prior at 0.
        let keep = (n + 1).min(MAX_RUN + 1);
        self.mu.resize(keep, 0.0);
        self.beta.resize(keep, 0.0);
        for r in (1..keep).rev() {
            let (mu, beta) = (self.mu[r - 1], self.beta[r - 1]);
            let kappa = KAPPA0 + (r - 1) as f64;
            self.mu[r] = (kappa * mu + x) / (kappa + 1.0);
            self.beta[r] = beta + kappa * (x - mu) * (x - mu) / (2.0 * (kappa + 1.0));
        }
        self.mu[0] = MU0;
        self.beta[0] = BETA0;
        // numpy's argmax: the first of equal maxima.
        let mut max_run = 0;
        for (r, &p) in self.probs.iter().enumerate() {
            if p > self.probs[max_run] {
                max_run = r;
            }
        }
        let score = if max_run < self.previous_max_run {
            1.0 - max_run as f64 / self.previous_max_run as f64
        } else {
            0.0
        };
        self.timestep += 1;
        self.previous_max_run = max_run;
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise in [-0.5, 0.5).
    fn noise(i: usize) -> f64 {
        let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
        h as f64 / (1u64 << 53) as f64 - 0.5
    }

    #[test]
    fn the_log_gamma_table_matches_pythons_lgamma() {
        // python3 -c 'import math; print(math.lgamma(3.1)-math.lgamma(2.6), math.lgamma(250.6)-math.lgamma(250.1))'
        let t = norm_table();
        let c = |r: usize| {
            let alpha = ALPHA0 + r as f64 / 2.0;
            t[r] + 0.5 * (2.0 * alpha * std::f64::consts::PI).ln()
        };
        assert!((c(5) - 0.429_963_219_724_883_05).abs() < 1e-12, "{}", c(5));
        assert!(
            (c(500) - 2.760_430_619_194_721_7).abs() < 1e-10,
            "{}",
            c(500)
        );
    }

    #[test]
    fn a_level_shift_after_a_long_run_scores_high_once() {
        let mut d = Bocpd::default();
        let before: Vec<f64> = (0..400).map(|i| d.score(10.0 + noise(i))).collect();
        assert!(d.run_length() > 300, "{}", d.run_length());
        let after: Vec<f64> = (400..420).map(|i| d.score(20.0 + noise(i))).collect();
        let peak = after.iter().copied().fold(0.0, f64::max);
        assert!(peak > 0.9, "{after:?}");
        // Quiet before the shift once the first samples are learnt.
        assert!(before[50..].iter().all(|&s| s < 0.5), "{before:?}");
        let high = after.iter().filter(|&&s| s > 0.5).count();
        assert_eq!(high, 1, "{after:?}");
    }

    #[test]
    fn memory_is_bounded_and_extreme_values_do_not_poison_it() {
        let mut d = Bocpd::default();
        for i in 0..2000 {
            d.score(noise(i));
        }
        let bytes = d.memory_bytes();
        assert!(bytes <= 3 * 8 * (MAX_RUN + 2) + 128, "{bytes}");
        d.score(1e300);
        assert!(d.score(0.1).is_finite());
        let mut longest = 0;
        for i in 0..600 {
            assert!(d.score(noise(i)).is_finite());
            longest = longest.max(d.run_length());
        }
        // It learns the series again instead of staying broken.
        assert!(longest > 100, "{longest}");
        assert_eq!(d.memory_bytes(), bytes);
    }
}
