//! Context memory, a bounded contextual component in the spirit of CAD OSE: has the series
//! already gone through this short sequence of values?
//!
//! Values are quantised with a step fixed from the training range of the first mature model
//! divided by [`LEVELS`], anchored at its minimum (from past samples only; a value outside
//! that range simply gets a bin number outside it, so no global range is assumed). The step
//! is re-anchored when the series' scale changes for good: when a newly trained model's
//! spread (a robust one, the top-2 % deviation from the median, so that one outlier in the
//! window does not trigger it) differs from the spread the step was set with by more than
//! [`RESCALE`] × either way, the step and anchor are set again from that model's range and the
//! contexts learnt so far are forgotten (they are in the old quantisation: after a large
//! growth every context would look new, after a large shrink every one would look known).
//! The context of a sample is the triple of bins of the last three samples. Contexts are
//! hashed into a bit set of [`BITS`] bits; two generations age the memory: a context is set
//! in the current one and looked up in both, and every [`GENERATION`] samples the current
//! generation becomes the previous one and a new one starts, so a context is remembered for
//! one to two generations (a week to two at 5-minute samples). Aged in samples rather than in
//! time because what a generation must bound is the load of its bit set. Hash collisions only
//! make a new context look known (a mild damping, never an alarm). Memory: 2 × 512 bytes and a
//! few fields, whatever the series.
//!
//! [`Detector`](super::Detector) uses it as a confirmation of the novelty score: a sample
//! whose context is already known scores [`CONTEXT_DAMP`](super::CONTEXT_DAMP) × its score
//! (a recurring pattern that is beyond the last ~48 h of the novelty memory, such as a weekly
//! peak or a return to a familiar regime, has to be clearly worse to page).

/// Quantisation levels over the training range.
pub const LEVELS: f32 = 16.0;
/// Bits per generation.
pub const BITS: usize = 4096;
const WORDS: usize = BITS / 64;
/// Samples per generation.
pub const GENERATION: u32 = 2048;
/// Change of the training spread (either way) beyond which the quantisation is re-anchored.
pub const RESCALE: f32 = 4.0;

#[derive(Clone, Debug)]
pub struct Context {
    anchor: f32,
    step: f32,
    /// Training spread when the step was set (see [`RESCALE`]).
    spread: f32,
    ready: bool,
    /// Bins of the last two samples (oldest first), and how many of them are valid.
    recent: [i32; 2],
    valid: u8,
    current: [u64; WORDS],
    previous: [u64; WORDS],
    inserted: u32,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            anchor: 0.0,
            step: 1.0,
            spread: 1.0,
            ready: false,
            recent: [0; 2],
            valid: 0,
            current: [0; WORDS],
            previous: [0; WORDS],
            inserted: 0,
        }
    }
}

/// FNV-1a-like hash of a triple of bins, into a bit index.
#[inline]
fn hash(a: i32, b: i32, c: i32) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in [a, b, c] {
        h ^= u64::from(v as u32);
        h = h.wrapping_mul(0x0100_0000_01b3);
        h ^= h >> 29;
    }
    (h % BITS as u64) as usize
}

impl Context {
    /// Fix the quantisation from a training range `lo..=hi` split in `levels` bins, for a
    /// model whose spread is `spread`. The first call sets it; a later one re-anchors it (and
    /// forgets every context) only when `spread` differs from the one it was set with by more
    /// than `rescale` × either way; otherwise the contexts learnt so far stay comparable.
    pub fn setup(&mut self, lo: f32, hi: f32, spread: f32, levels: f32, rescale: f32) {
        if !(lo.is_finite() && hi.is_finite() && spread.is_finite()) || levels < 1.0 {
            return;
        }
        let spread = spread.max(1e-30);
        if self.ready {
            let ratio = spread / self.spread;
            if ratio <= rescale && ratio * rescale >= 1.0 {
                return;
            }
            self.current = [0; WORDS];
            self.previous = [0; WORDS];
            self.inserted = 0;
            self.valid = 0;
        }
        let span = (hi - lo).max(lo.abs().max(hi.abs()) * 1e-6).max(1e-9);
        self.anchor = lo;
        self.step = span / levels;
        self.spread = spread;
        self.ready = true;
    }

    /// Forget the last samples (after a gap: they are not a sequence).
    pub fn break_sequence(&mut self) {
        self.valid = 0;
    }

    /// Whether the context ending at `x` is new, then remember it; a generation lasts
    /// `generation` samples. `None` until the quantisation is set and three samples are known.
    #[inline]
    pub fn observe(&mut self, x: f32, generation: u32) -> Option<bool> {
        if !self.ready {
            return None;
        }
        let q = ((x - self.anchor) / self.step).floor().clamp(-1e6, 1e6) as i32;
        let complete = self.valid >= 2;
        let (a, b) = (self.recent[0], self.recent[1]);
        self.recent = [b, q];
        self.valid = (self.valid + 1).min(2);
        if !complete {
            return None;
        }
        let i = hash(a, b, q);
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let new = (self.current[word] | self.previous[word]) & bit == 0;
        self.current[word] |= bit;
        self.inserted += 1;
        if self.inserted >= generation.max(1) {
            self.previous = self.current;
            self.current = [0; WORDS];
            self.inserted = 0;
        }
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_before_setup_and_three_samples() {
        let mut c = Context::default();
        assert_eq!(c.observe(1.0, GENERATION), None);
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        assert_eq!(c.observe(1.0, GENERATION), None);
        assert_eq!(c.observe(2.0, GENERATION), None);
        assert_eq!(c.observe(3.0, GENERATION), Some(true));
    }

    #[test]
    fn a_repeated_sequence_becomes_known_and_a_new_one_is_new() {
        let mut c = Context::default();
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        let cycle = [1.5, 4.5, 9.5, 4.5];
        let first: Vec<_> = (0..8)
            .map(|i| c.observe(cycle[i % 4], GENERATION))
            .collect();
        assert_eq!(&first[2..6], &[Some(true); 4]);
        assert_eq!(&first[6..], &[Some(false); 2]);
        assert_eq!(c.observe(1.5, GENERATION), Some(false));
        // Known values in a new order, and a value outside the training range.
        assert_eq!(c.observe(9.5, GENERATION), Some(true));
        assert_eq!(c.observe(40.0, GENERATION), Some(true));
    }

    #[test]
    fn old_contexts_are_forgotten_after_two_generations() {
        let mut c = Context::default();
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        let generation = 16;
        for v in [1.5, 4.5, 9.5] {
            c.observe(v, generation);
        }
        // Constant samples fill two generations with one other context.
        for _ in 0..2 * generation {
            c.observe(12.5, generation);
        }
        for v in [1.5, 4.5] {
            c.observe(v, generation);
        }
        assert_eq!(c.observe(9.5, generation), Some(true));
    }

    #[test]
    fn a_gap_breaks_the_sequence() {
        let mut c = Context::default();
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        for v in [1.5, 4.5, 9.5] {
            c.observe(v, GENERATION);
        }
        c.break_sequence();
        assert_eq!(c.observe(1.5, GENERATION), None);
    }

    /// Goes through the cycle until all its contexts are known.
    fn learn(c: &mut Context, cycle: &[f32]) {
        for i in 0..3 * cycle.len() {
            c.observe(cycle[i % cycle.len()], GENERATION);
        }
    }

    #[test]
    fn a_small_change_of_scale_keeps_the_contexts() {
        let mut c = Context::default();
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        let cycle = [1.5, 4.5, 9.5, 4.5];
        learn(&mut c, &cycle);
        c.setup(0.0, 40.0, 10.0, 16.0, RESCALE);
        assert_eq!(c.observe(1.5, GENERATION), Some(false));
    }

    #[test]
    fn a_large_growth_of_scale_re_anchors() {
        // Trained on 0..16, the series now moves over 0..1600: with the old step every
        // context would stay new (each value in its own bin, noise never repeating).
        let mut c = Context::default();
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        learn(&mut c, &[1.5, 4.5, 9.5, 4.5]);
        c.setup(0.0, 1600.0, 400.0, 16.0, RESCALE);
        // The old contexts are forgotten and the sequence restarts.
        assert_eq!(c.observe(1.5, GENERATION), None);
        let wobbly = [150.0, 470.0, 930.0, 440.0, 130.0, 460.0, 960.0, 480.0];
        let seen: Vec<_> = wobbly.iter().map(|&v| c.observe(v, GENERATION)).collect();
        // Same bins of 100 each cycle, despite values that never repeat exactly.
        assert_eq!(&seen[6..], &[Some(false); 2]);
        let mut old = Context::default();
        old.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        let seen: Vec<_> = wobbly.iter().map(|&v| old.observe(v, GENERATION)).collect();
        assert_eq!(&seen[6..], &[Some(true); 2]);
    }

    #[test]
    fn a_large_shrink_of_scale_re_anchors() {
        // Trained on 0..1600, the series now moves over 0..16: with the old step every value
        // falls in bin 0 and every context would look known.
        let mut c = Context::default();
        c.setup(0.0, 1600.0, 400.0, 16.0, RESCALE);
        learn(&mut c, &[50.0, 50.0, 50.0]);
        c.setup(0.0, 16.0, 4.0, 16.0, RESCALE);
        assert_eq!(c.observe(1.5, GENERATION), None);
        assert_eq!(c.observe(4.5, GENERATION), None);
        assert_eq!(c.observe(9.5, GENERATION), Some(true));
        let mut old = Context::default();
        old.setup(0.0, 1600.0, 400.0, 16.0, RESCALE);
        learn(&mut old, &[50.0, 50.0, 50.0]);
        for v in [1.5, 4.5] {
            old.observe(v, GENERATION);
        }
        assert_eq!(old.observe(9.5, GENERATION), Some(false));
    }
}
