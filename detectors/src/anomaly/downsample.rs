//! Downsampling of a fast stream (the agent samples every second) to the resolution the
//! detector works at: one value per [`BUCKET_SECONDS`], the mean of the samples in the bucket.
//!
//! Why: anomalies of hosts live on minutes to days, and the detector's memories are counted
//! in samples ([`HISTORY`](super::HISTORY) = 768 samples of training history): at 1 s they
//! would cover 13 minutes and a daily job would be new every day; at 5 minutes they cover
//! 64 hours (≥ 48 h), the novelty memory its 48 hourly buckets, the context memory a week.
//! Five minutes is also the resolution of most of the NAB corpus the detector is judged on.
//! The mean, not the max: a one-second spike inside five quiet minutes is not what a host
//! anomaly is; a minutes-long change moves the mean.

/// Width of a bucket.
pub const BUCKET_SECONDS: f64 = 300.0;

/// Accumulates samples into fixed buckets aligned on multiples of the width.
#[derive(Clone, Copy, Debug)]
pub struct Downsampler {
    width: f64,
    /// Index of the open bucket (`floor(t / width)`), if any.
    bucket: Option<i64>,
    sum: f64,
    n: u32,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new(BUCKET_SECONDS)
    }
}

impl Downsampler {
    /// Buckets of `width` seconds (0 or less: every sample passes through).
    pub fn new(width: f64) -> Self {
        Self {
            width,
            bucket: None,
            sum: 0.0,
            n: 0,
        }
    }

    /// Add sample `v` at `t` seconds. When `t` falls in a later bucket than the open one, the
    /// open one is closed and returned as (its end time, the mean of its samples). Non-finite
    /// samples are skipped; a bucket without a finite sample yields nothing. Times going back
    /// into a closed bucket are counted into the open one.
    pub fn push(&mut self, t: f64, v: f64) -> Option<(f64, f64)> {
        if self.width <= 0.0 {
            return v.is_finite().then_some((t, v));
        }
        let b = (t / self.width).floor() as i64;
        let mut out = None;
        match self.bucket {
            Some(open) if b > open => {
                if self.n > 0 {
                    out = Some(((open + 1) as f64 * self.width, self.sum / f64::from(self.n)));
                }
                self.bucket = Some(b);
                self.sum = 0.0;
                self.n = 0;
            }
            Some(_) => {}
            None => self.bucket = Some(b),
        }
        if v.is_finite() {
            self.sum += v;
            self.n += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mean_per_bucket_at_its_end() {
        let mut d = Downsampler::new(300.0);
        let mut out = Vec::new();
        for t in 0..1000 {
            out.extend(d.push(f64::from(t), f64::from(t % 300)));
        }
        // Buckets [0,300), [300,600), [600,900) closed; [900,1000) still open.
        assert_eq!(out, vec![(300.0, 149.5), (600.0, 149.5), (900.0, 149.5)]);
    }

    #[test]
    fn missing_samples_and_gaps() {
        let mut d = Downsampler::new(60.0);
        assert_eq!(d.push(0.0, f64::NAN), None);
        assert_eq!(d.push(30.0, 4.0), None);
        // A gap of several buckets: the open one is closed, the empty ones yield nothing.
        assert_eq!(d.push(400.0, 1.0), Some((60.0, 4.0)));
        assert_eq!(d.push(410.0, f64::NAN), None);
        assert_eq!(d.push(500.0, 2.0), Some((420.0, 1.0)));
        // A bucket of only missing samples yields nothing.
        let mut d = Downsampler::new(60.0);
        d.push(0.0, f64::NAN);
        assert_eq!(d.push(61.0, 1.0), None);
    }

    #[test]
    fn zero_width_passes_every_sample() {
        let mut d = Downsampler::new(0.0);
        assert_eq!(d.push(1.0, 2.0), Some((1.0, 2.0)));
        assert_eq!(d.push(2.0, f64::NAN), None);
    }
}
