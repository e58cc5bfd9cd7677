//! Novelty: how a deviation compares with the largest ones seen recently.
//!
//! Keeps the maximum deviation of each of the last [`BUCKETS`] buckets and compares a new
//! deviation with the [`REFERENCE_RANK`]-th largest of them (the second: a single burst in two
//! days does not hide the next one, while what happened in two different buckets is
//! normal); a bucket closes after [`BUCKET_SECONDS`] of time AND at least
//! [`BUCKET_MIN_SAMPLES`] samples, so the memory covers about two days at any sampling rate
//! of a few minutes or faster (a daily cron job that the seasonal model does not explain can
//! page on its first two days, not after), and at least `BUCKETS × BUCKET_MIN_SAMPLES`
//! samples for slow series. 48 f32 + a few fields: ~220 bytes.

/// Buckets kept.
pub const BUCKETS: usize = 48;
/// Minimum time span of a bucket.
pub const BUCKET_SECONDS: f64 = 3600.0;
/// Minimum samples in a bucket.
pub const BUCKET_MIN_SAMPLES: u32 = 4;

/// Which of the bucket maxima is the reference (1 = the largest).
pub const REFERENCE_RANK: usize = 2;

/// How much worse a deviation must get to score as high as the record before it.
pub const INCIDENT_GROWTH: f32 = 1.25;

/// The novelty memory's settings (the constants above; a struct for sensitivity studies).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoveltyParams {
    pub bucket_seconds: f64,
    pub bucket_min_samples: u32,
    pub growth: f32,
    pub rank: usize,
}

impl Default for NoveltyParams {
    fn default() -> Self {
        Self {
            bucket_seconds: BUCKET_SECONDS,
            bucket_min_samples: BUCKET_MIN_SAMPLES,
            growth: INCIDENT_GROWTH,
            rank: REFERENCE_RANK,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Novelty {
    buckets: [f32; BUCKETS],
    head: usize,
    current_max: f32,
    current_start: f64,
    current_count: u32,
    started: bool,
    /// The reference over the closed buckets, recomputed when a bucket closes.
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
    /// then remember it. Score = n²/(1+n²) with n = e / max(1, reference), the reference being
    /// the larger of the current bucket's maximum and the `rank`-th largest closed bucket
    /// maximum.
    ///
    /// `remember = false` scores without remembering: deviations measured by an immature
    /// model (trained on a short history) are not evidence of what is normal.
    pub fn score(&mut self, t: f64, e: f32, remember: bool, p: &NoveltyParams) -> f32 {
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
        // A new record is remembered inflated: the same incident (a drift, a wobble around
        // its new extreme) does not score high again unless it gets clearly worse.
        let remembered = if n > 1.0 { e * p.growth } else { e };
        self.current_max = self.current_max.max(remembered);
        self.current_count += 1;
        if t - self.current_start >= p.bucket_seconds && self.current_count >= p.bucket_min_samples
        {
            self.buckets[self.head] = self.current_max;
            self.head = (self.head + 1) % BUCKETS;
            let mut sorted = self.buckets;
            let k = p.rank.clamp(1, BUCKETS);
            sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            self.closed_max = sorted[k - 1];
            self.current_max = 0.0;
            self.current_count = 0;
            self.current_start = t;
        }
        score
    }
}
