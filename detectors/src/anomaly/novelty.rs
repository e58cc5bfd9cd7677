//! Novelty: how a deviation compares with the largest ones seen recently.
//!
//! Keeps the maximum deviation of each of the last [`BUCKETS`] buckets; a bucket closes after
//! [`BUCKET_SECONDS`] of time AND at least [`BUCKET_MIN_SAMPLES`] samples, so the memory covers
//! about two days at any sampling rate of a few minutes or faster (a daily cron job is seen at
//! least twice before it could page again), and at least `BUCKETS × BUCKET_MIN_SAMPLES`
//! samples for slow series. 48 f32 + a few fields: ~220 bytes.

/// Buckets kept.
pub const BUCKETS: usize = 48;
/// Minimum time span of a bucket.
pub const BUCKET_SECONDS: f64 = 3600.0;
/// Minimum samples in a bucket.
pub const BUCKET_MIN_SAMPLES: u32 = 4;

#[derive(Clone, Debug)]
pub struct Novelty {
    buckets: [f32; BUCKETS],
    head: usize,
    current_max: f32,
    current_start: f64,
    current_count: u32,
    started: bool,
    /// Maximum over the closed buckets, recomputed when a bucket closes.
    closed_max: f32,
}

impl Default for Novelty {
    fn default() -> Self {
        Self {
            buckets: [0.0; BUCKETS],
            head: 0,
            current_max: 0.0,
            current_start: 0.0,
            current_count: 0,
            started: false,
            closed_max: 0.0,
        }
    }
}

impl Novelty {
    /// Score deviation `e` (1 = as large as the largest of the training window) at time `t`,
    /// then remember it. Score = n²/(1+n²) with n = e / max(1, largest recent deviation).
    ///
    /// `remember = false` scores without remembering: deviations measured by an immature
    /// model (trained on a short history) are not evidence of what is normal.
    pub fn score(&mut self, t: f64, e: f32, remember: bool) -> f32 {
        let e = if e.is_finite() { e.max(0.0) } else { f32::MAX };
        if !self.started {
            self.started = true;
            self.current_start = t;
        }
        let reference = self.closed_max.max(self.current_max).max(1.0);
        let n = e / reference;
        let score = if n > 1e6 { 1.0 } else { n * n / (1.0 + n * n) };
        if !remember {
            return score;
        }
        self.current_max = self.current_max.max(e);
        self.current_count += 1;
        if t - self.current_start >= BUCKET_SECONDS && self.current_count >= BUCKET_MIN_SAMPLES {
            self.buckets[self.head] = self.current_max;
            self.head = (self.head + 1) % BUCKETS;
            self.closed_max = self.buckets.iter().copied().fold(0.0, f32::max);
            self.current_max = 0.0;
            self.current_count = 0;
            self.current_start = t;
        }
        score
    }
}
