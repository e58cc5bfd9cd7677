//! CAD OSE, the Contextual Anomaly Detector (Open Source Edition, M. Smirnov 2016) as NAB runs
//! it (`nab/detectors/context_ose/`, NAB's current Python 3 code), ported to Rust.
//!
//! Each value is quantised into `2^3` bins over a value range and encoded as three "sensor
//! facts" (bit i of the bin number is fact `2i + bit`). The detector keeps a memory of
//! *contexts*: a left semi-context (the facts of the previous step: its sensor facts and the
//! contexts that were active then, as "neuron facts" `2^31 + id`) and a right semi-context (the
//! sensor facts that followed). At each step the contexts whose left part matched the previous
//! facts are checked against the new sensor facts: those that predicted them become active;
//! partial matches of newly seen sequences are crossed into new, more general contexts. The
//! anomaly score is `(1 − active/selected + new/potential) / 2`: high when what came was not
//! predicted and much had to be learnt. After a score of at least [`BASE_THRESHOLD`] the
//! output is 0 for `rest_period` steps.
//!
//! Exactness: the port reproduces NAB's scores bit for bit on the development corpus (the
//! test `cad_ose_matches_nab_reference` against `data/nab/reference/contextOSE`). That needs
//! three of the Python code's incidental behaviours, kept on purpose:
//! * semi-contexts are keyed by Python's `hash()` of the fact tuple (CPython's xxHash-based
//!   tuple hash, [`py_tuple_hash`]), and ties between active contexts of equal activation
//!   count are broken by those hashes;
//! * `newContextID` starts (and is reset to) `False`, which equals `0` in Python: context 0 is
//!   never updated unless it is the new zero-level context of the step;
//! * the rest period looks at the last `int(rest_period)` scores including an initial `1.0`.
//!
//! Three ways to feed it: [`CadOse::with_range`] is NAB's (the file's minimum and maximum
//! given up front — not causal); [`CadOse::causal`] learns the range online (running minimum
//! and maximum of the values seen so far, the current one included) and the encoding follows
//! it (CV 38.3 on the dev corpus against 64.4 NAB's way: every new record re-encodes, the
//! contexts churn); [`CadOse::buffered`] fixes the range once from the first values (they
//! score 0), widened by a margin, and replays them (what the daemon runs, see
//! [`super::causal_cad`]).
//!
//! Memory grows with what the series shows (every new context is kept): unbounded, as in NAB.
//! [`CadOse::memory_bytes`] reports it and [`CadOse::contexts`] the count; [`CadOse::bounded`]
//! restarts the memory when it is full, from the last values replayed.

use std::collections::{HashMap, HashSet};

/// Score at or above which the rest period starts (CAD OSE's `baseThreshold`).
pub const BASE_THRESHOLD: f64 = 0.75;
/// Longest left semi-context that may be crossed into a new context.
pub const MAX_LEFT_SEMI_CONTEXT_LEN: usize = 7;
/// Active contexts that become neuron facts of the next step.
pub const MAX_ACTIVE_NEURONS: usize = 15;
/// Bits of the quantised value (8 bins).
pub const NORM_VALUE_BITS: u32 = 3;
/// Shortest replay after a restart of a bounded memory (see [`CadOse::bounded`]).
pub const MIN_REPLAY: usize = 8;
/// CAD OSE's default rest period (NAB passes `probationaryPeriod / 5` instead).
pub const REST_PERIOD: f64 = 30.0;

/// How far past a new extreme the causal range is widened, as a share of the new span. 0:
/// widening it (0.25, 1.0) lowered the cross-validated score (35.9 and −306 against 38.3).
pub const RANGE_MARGIN: f64 = 0.0;

const NEURON: u64 = 1 << 31;
/// Dense index of sensor facts below this; neuron facts above.
const SENSOR_SLOTS: usize = 128;

/// CPython's `hash()` of a tuple of non-negative ints below 2^61 − 1 (whose hash is the value
/// itself): the xxHash-based `tuplehash` of CPython ≥ 3.8 on 64-bit platforms.
pub fn py_tuple_hash(items: &[u64]) -> i64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P5: u64 = 2_870_177_450_012_600_261;
    let mut acc = P5;
    for &lane in items {
        let lane = lane % ((1u64 << 61) - 1);
        acc = acc.wrapping_add(lane.wrapping_mul(P2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(P1);
    }
    acc = acc.wrapping_add((items.len() as u64) ^ (P5 ^ 3_527_539));
    if acc == u64::MAX {
        return 1_546_275_796;
    }
    acc as i64
}

#[derive(Clone, Debug)]
struct Semi {
    /// Facts of the last crossing that belong to this semi-context, in crossing order.
    crossed: Vec<u64>,
    /// Facts it is made of.
    len: u32,
    /// `crossed.len()` as of the last crossing (0 when not crossed).
    count: u32,
    /// Left semi-contexts only: (right semi-context, context), in insertion order.
    contexts: Vec<(u32, u32)>,
}

impl Semi {
    fn new(len: usize) -> Self {
        Self {
            crossed: Vec::new(),
            len: len as u32,
            count: 0,
            contexts: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Ctx {
    activations: u32,
    zero_level: bool,
    left_hash: i64,
    right_hash: i64,
}

/// One side (left or right) of the semi-context memory.
#[derive(Clone, Debug, Default)]
struct Side {
    /// Python hash of the fact tuple → semi-context id.
    ids: HashMap<i64, u32>,
    semis: Vec<Semi>,
    /// Fact (dense index) → semi-contexts containing it.
    index: Vec<Vec<u32>>,
    /// Semi-contexts with at least one fact in the last crossing, in id order.
    crossed: Vec<u32>,
}

fn slot(fact: u64) -> usize {
    if fact >= NEURON {
        SENSOR_SLOTS + (fact - NEURON) as usize
    } else {
        fact as usize
    }
}

impl Side {
    /// The id of the semi-context of `facts`, created when its hash is new.
    fn id(&mut self, facts: &[u64], hash: i64) -> u32 {
        let next = self.semis.len() as u32;
        let id = *self.ids.entry(hash).or_insert(next);
        if id == next {
            self.semis.push(Semi::new(facts.len()));
            for &f in facts {
                let s = slot(f);
                if self.index.len() <= s {
                    self.index.resize_with(s + 1, Vec::new);
                }
                self.index[s].push(id);
            }
        }
        id
    }

    /// Cross the semi-contexts with `facts`: each records which of them it contains.
    fn cross(&mut self, facts: &[u64]) {
        for &s in &self.crossed {
            let semi = &mut self.semis[s as usize];
            semi.crossed.clear();
            semi.count = 0;
        }
        self.crossed.clear();
        for &f in facts {
            let Some(list) = self.index.get(slot(f)) else {
                continue;
            };
            for &s in list {
                let semi = &mut self.semis[s as usize];
                if semi.crossed.is_empty() {
                    self.crossed.push(s);
                }
                semi.crossed.push(f);
            }
        }
        self.crossed.sort_unstable();
        for &s in &self.crossed {
            let semi = &mut self.semis[s as usize];
            semi.count = semi.crossed.len() as u32;
        }
    }

    fn heap_bytes(&self) -> usize {
        let semis: usize = self
            .semis
            .iter()
            .map(|s| {
                s.crossed.capacity() * 8 + s.contexts.capacity() * 8 + std::mem::size_of::<Semi>()
            })
            .sum();
        let index: usize = self
            .index
            .iter()
            .map(|v| v.capacity() * 4 + std::mem::size_of::<Vec<u32>>())
            .sum();
        // hashbrown: key, value and one control byte per bucket.
        semis + index + self.ids.capacity() * 13 + self.crossed.capacity() * 4
    }
}

type Pair = (Vec<u64>, Vec<u64>);
/// An active context: (id, activations, left hash, right hash).
type Active = (u32, u32, i64, i64);

/// The context memory (NAB's `ContextOperator`).
#[derive(Clone, Debug, Default)]
struct Operator {
    left: Side,
    right: Side,
    contexts: Vec<Ctx>,
    /// Python's `newContextID`: `False` is 0.
    new_context_id: u32,
}

impl Operator {
    /// Look up or create the context `(left, right)`; true when it was new.
    fn context(&mut self, left: &[u64], right: &[u64], zero_level: bool) -> bool {
        let (lh, rh) = (py_tuple_hash(left), py_tuple_hash(right));
        let lid = self.left.id(left, lh);
        let rid = self.right.id(right, rh);
        let next = self.contexts.len() as u32;
        let semi = &mut self.left.semis[lid as usize];
        let cid = match semi.contexts.iter().find(|(r, _)| *r == rid) {
            Some(&(_, c)) => c,
            None => {
                semi.contexts.push((rid, next));
                next
            }
        };
        if cid == next {
            self.contexts.push(Ctx {
                activations: 0,
                zero_level,
                left_hash: lh,
                right_hash: rh,
            });
            if zero_level {
                self.new_context_id = cid;
            }
            true
        } else {
            if zero_level {
                self.contexts[cid as usize].zero_level = true;
            }
            false
        }
    }

    /// NAB's `contextCrosser(1, ...)` and `updateContextsAndGetActive`: cross the right
    /// semi-contexts with the new sensor facts and update the contexts whose left part matched
    /// the previous step. Returns the active contexts `(id, activations, left hash, right
    /// hash)`, the number selected, and the potential new contexts.
    fn cross_right(
        &mut self,
        facts: &[u64],
        new_flag: bool,
        max_left: usize,
    ) -> (Vec<Active>, usize, Vec<Pair>) {
        self.right.cross(facts);
        let mut active = Vec::new();
        let mut selected = 0;
        let mut potential = Vec::new();
        for &lid in &self.left.crossed {
            let l = &self.left.semis[lid as usize];
            for &(rid, cid) in &l.contexts {
                if self.new_context_id == cid {
                    continue;
                }
                let ctx = &mut self.contexts[cid as usize];
                let r = &self.right.semis[rid as usize];
                let crossable = ctx.zero_level
                    && new_flag
                    && r.count > 0
                    && l.count as usize <= max_left
                    && r.count != r.len;
                if l.len == l.count {
                    selected += 1;
                    if r.count > 0 && r.count == r.len {
                        ctx.activations += 1;
                        active.push((cid, ctx.activations, ctx.left_hash, ctx.right_hash));
                    } else if crossable {
                        potential.push((l.crossed.clone(), r.crossed.clone()));
                    }
                } else if ctx.zero_level && new_flag && r.count > 0 && l.count as usize <= max_left
                {
                    potential.push((l.crossed.clone(), r.crossed.clone()));
                }
            }
        }
        self.new_context_id = 0;
        (active, selected, potential)
    }

    /// NAB's `contextCrosser(0, ...)`: store the potential new contexts, then cross the left
    /// semi-contexts with the new left facts. Returns how many contexts were new.
    fn cross_left(&mut self, facts: &[u64], potential: &[Pair]) -> usize {
        let mut added = 0;
        for (l, r) in potential {
            if self.context(l, r, false) {
                added += 1;
            }
        }
        self.left.cross(facts);
        added
    }
}

/// How the value range of the encoding is known.
#[derive(Clone, Debug, PartialEq)]
enum Range {
    /// Given up front (NAB's way).
    Fixed,
    /// Learnt online from the values seen so far, current value included; a new extreme
    /// widens the range past it by `margin` × the new span, so that the quantisation (and
    /// with it every context learnt) does not move at each small new record.
    Online { seen: bool, margin: f64 },
    /// Fixed once from the first `window` values: they are buffered (scoring 0), the range is
    /// set to their span widened by `margin` × the span on both sides, they are replayed into
    /// the context memory, and from then on the range never moves (values beyond it fall in
    /// the end bins). Causal: the score of a value depends only on it and earlier ones.
    Buffered {
        window: usize,
        margin: f64,
        buffer: Vec<f64>,
    },
}

/// The CAD OSE detector of one series.
#[derive(Clone, Debug)]
pub struct CadOse {
    min: f64,
    max: f64,
    step: f64,
    range: Range,
    rest_period: usize,
    left_facts: Vec<u64>,
    op: Operator,
    /// Scores produced (the history list has one more entry, the initial 1.0).
    steps: u64,
    /// Index in the score history of the last score ≥ BASE_THRESHOLD (0 = the initial 1.0).
    last_high: u64,
    /// The memory bound, when there is one (the daemon's).
    bound: Option<Bound>,
}

/// A bound on the context memory: when it holds `max_contexts` contexts it is cleared and the
/// last `replay` values are replayed into the empty memory (so that what the series does now
/// is known again at once, rather than every context looking new after the reset), and the
/// next `replay` scores are 0. When a replay alone fills more than half the memory (a series
/// so irregular that every value makes new contexts) the next replay is half as long, down to
/// [`MIN_REPLAY`]; one that fills less than a quarter doubles it back: a restart never
/// follows a restart at once, so the work per value stays bounded.
#[derive(Clone, Debug)]
struct Bound {
    max_contexts: usize,
    /// Memory ([`CadOse::memory_bytes`]) that also counts as full, checked once the memory
    /// holds three quarters of `max_contexts`.
    max_bytes: usize,
    replay: usize,
    /// Length of the next replay (adaptive, `MIN_REPLAY..=replay`).
    replay_now: usize,
    recent: std::collections::VecDeque<f32>,
    resets: u64,
    replaying: bool,
    /// Values still to score 0 after a reset (the restarted memory is still learning).
    mute: usize,
}

impl CadOse {
    /// NAB's way: the value range known in advance, and NAB's rest period
    /// (`probationaryPeriod / 5`, pass it as is: it is truncated like Python's `int()`).
    pub fn with_range(min: f64, max: f64, rest_period: f64) -> Self {
        let mut d = Self::empty(Range::Fixed, rest_period);
        d.set_range(min, max);
        d
    }

    /// Strictly causal: the range is learnt from the values seen so far.
    pub fn causal(rest_period: f64) -> Self {
        Self::causal_with_margin(rest_period, RANGE_MARGIN)
    }

    /// Strictly causal with a range fixed after a warm-up (see [`Range`]): the first `window`
    /// values score 0 and set the range, their span widened by `margin` × span each side.
    pub fn buffered(rest_period: f64, window: usize, margin: f64) -> Self {
        Self::empty(
            Range::Buffered {
                window: window.max(1),
                margin,
                buffer: Vec::with_capacity(window.max(1)),
            },
            rest_period,
        )
    }

    /// Whether the range is known (NAB's way: always; buffered: after the warm-up).
    pub fn ready(&self) -> bool {
        !matches!(self.range, Range::Buffered { .. }) || self.steps > 0
    }

    /// [`CadOse::causal`] with another range margin (sensitivity studies).
    pub fn causal_with_margin(rest_period: f64, margin: f64) -> Self {
        Self::empty(
            Range::Online {
                seen: false,
                margin,
            },
            rest_period,
        )
    }

    fn empty(range: Range, rest_period: f64) -> Self {
        Self {
            min: 0.0,
            max: 0.0,
            step: 1.0,
            range,
            rest_period: if rest_period.is_finite() && rest_period > 0.0 {
                rest_period as usize
            } else {
                0
            },
            left_facts: Vec::new(),
            op: Operator::default(),
            steps: 0,
            last_high: 0,
            bound: None,
        }
    }

    /// Bound the context memory to `max_contexts` contexts and about `max_bytes` bytes: when
    /// full it is cleared and the last `replay` values are replayed into it (see
    /// [`CadOse::resets`]). The check runs before each value, so the memory may pass
    /// `max_bytes` by what one value adds.
    pub fn bounded(mut self, max_contexts: usize, max_bytes: usize, replay: usize) -> Self {
        self.bound = Some(Bound {
            max_contexts: max_contexts.max(1),
            max_bytes,
            replay,
            replay_now: replay,
            recent: std::collections::VecDeque::with_capacity(replay),
            resets: 0,
            replaying: false,
            mute: 0,
        });
        self
    }

    /// How many times the bounded memory was full and restarted.
    pub fn resets(&self) -> u64 {
        self.bound.as_ref().map_or(0, |b| b.resets)
    }

    /// Quantise `value` in the current range into its sensor facts.
    fn facts(&self, value: f64) -> Vec<u64> {
        let ratio = (value - self.min) / self.step;
        // Python's int() truncates toward zero; a value outside a given range is clamped to
        // the end bins (NAB's way never has one).
        let max_bin = (1i64 << NORM_VALUE_BITS) - 1;
        let norm = (ratio.trunc() as i64).clamp(0, max_bin) as u64;
        (0..u64::from(NORM_VALUE_BITS))
            .map(|i| i * 2 + ((norm >> i) & 1))
            .collect()
    }

    /// The bound: restart a full memory from the recent values, and remember `value`.
    fn enforce_bound(&mut self, value: f64) {
        let Some(b) = self.bound.as_ref() else {
            return;
        };
        if b.replaying {
            return;
        }
        let full = self.op.contexts.len() >= b.max_contexts
            || (self.op.contexts.len() * 4 >= b.max_contexts * 3
                && self.memory_bytes() >= b.max_bytes);
        let Some(b) = self.bound.as_mut() else {
            return;
        };
        if full {
            b.resets += 1;
            b.replaying = true;
            let skip = b.recent.len().saturating_sub(b.replay_now);
            let recent: Vec<f32> = b.recent.iter().skip(skip).copied().collect();
            self.op = Operator::default();
            self.left_facts = Vec::new();
            for &v in &recent {
                let facts = self.facts(f64::from(v));
                self.step(&facts);
            }
            let filled = self.op.contexts.len();
            if let Some(b) = self.bound.as_mut() {
                b.replaying = false;
                b.mute = recent.len();
                if filled * 2 > b.max_contexts {
                    b.replay_now = (b.replay_now / 2).max(MIN_REPLAY);
                } else if filled * 4 < b.max_contexts {
                    b.replay_now = (b.replay_now * 2).min(b.replay);
                }
            }
        }
        if let Some(b) = self.bound.as_mut()
            && b.replay > 0
        {
            if b.recent.len() == b.replay {
                b.recent.pop_front();
            }
            b.recent.push_back(value as f32);
        }
    }

    fn set_range(&mut self, min: f64, max: f64) {
        let max_bin = f64::from((1u32 << NORM_VALUE_BITS) - 1);
        self.min = min;
        self.max = max;
        let mut full = max - min;
        if full == 0.0 {
            full = max_bin;
        }
        self.step = full / max_bin;
    }

    /// Contexts in memory.
    pub fn contexts(&self) -> usize {
        self.op.contexts.len()
    }

    /// Heap and inline bytes of the context memory (an estimate of the allocator's view).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.op.left.heap_bytes()
            + self.op.right.heap_bytes()
            + self.op.contexts.capacity() * std::mem::size_of::<Ctx>()
            + self.left_facts.capacity() * 8
            + match &self.range {
                Range::Buffered { buffer, .. } => buffer.capacity() * 8,
                _ => 0,
            }
            + self.bound.as_ref().map_or(0, |b| b.recent.capacity() * 4)
    }

    /// Score one value (NAB's `getAnomalyScore`). A non-finite value scores 0 and changes
    /// nothing.
    pub fn score(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        match &mut self.range {
            Range::Fixed => {}
            Range::Online { seen, margin } => {
                let margin = *margin;
                if !*seen {
                    *seen = true;
                    self.set_range(value, value);
                } else if value < self.min || value > self.max {
                    let (lo, hi) = (self.min.min(value), self.max.max(value));
                    let pad = margin * (hi - lo);
                    if value < self.min {
                        self.set_range(lo - pad, hi);
                    } else {
                        self.set_range(lo, hi + pad);
                    }
                }
            }
            Range::Buffered {
                window,
                margin,
                buffer,
            } => {
                if self.steps > 0 {
                    // Range fixed: fall through.
                } else {
                    buffer.push(value);
                    if buffer.len() < *window {
                        return 0.0;
                    }
                    let values = std::mem::take(buffer);
                    let margin = *margin;
                    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let pad = margin * (hi - lo);
                    self.set_range(lo - pad, hi + pad);
                    // Replay the warm-up into the context memory; the last one is this value.
                    let (replay, last) = values.split_at(values.len() - 1);
                    for &v in replay {
                        self.encode_and_score(v);
                    }
                    let _ = self.encode_and_score(last[0]);
                    return 0.0;
                }
            }
        }
        self.encode_and_score(value)
    }

    /// Quantise `value` in the current range and score it.
    fn encode_and_score(&mut self, value: f64) -> f64 {
        self.enforce_bound(value);
        let muted = match self.bound.as_mut() {
            Some(b) if b.mute > 0 && !b.replaying => {
                b.mute -= 1;
                true
            }
            _ => false,
        };
        let facts = self.facts(value);
        let (active, added) = self.step(&facts);
        let current = (1.0 - active + added) / 2.0;
        // History entries 0..=steps (entry 0 is the initial 1.0); Python looks at the last
        // int(rest_period) of them, or all of them when that is 0.
        let len = self.steps + 1;
        let from = if self.rest_period == 0 {
            0
        } else {
            len.saturating_sub(self.rest_period as u64)
        };
        let out = if self.last_high >= from || muted {
            0.0
        } else {
            current
        };
        self.steps += 1;
        if current >= BASE_THRESHOLD {
            self.last_high = self.steps;
        }
        out
    }

    /// NAB's `step`: returns (share of selected contexts that were active, share of potential
    /// new contexts that were new).
    fn step(&mut self, sensor: &[u64]) -> (f64, f64) {
        let mut current = sensor.to_vec();
        current.sort_unstable();
        current.dedup();
        let mut unique: HashSet<Pair> = HashSet::new();
        let new_flag = if !self.left_facts.is_empty() && !current.is_empty() {
            unique.insert((self.left_facts.clone(), current.clone()));
            let left = std::mem::take(&mut self.left_facts);
            let new = self.op.context(&left, &current, true);
            self.left_facts = left;
            new
        } else {
            false
        };
        let (mut active, selected, potential) =
            self.op
                .cross_right(&current, new_flag, MAX_LEFT_SEMI_CONTEXT_LEN);
        for p in &potential {
            if !unique.contains(p) {
                unique.insert(p.clone());
            }
        }
        let share_active = if selected > 0 {
            active.len() as f64 / selected as f64
        } else {
            0.0
        };
        active.sort_unstable_by_key(|&(_, n, lh, rh)| (n, lh, rh));
        let keep = active.len().saturating_sub(MAX_ACTIVE_NEURONS);
        let mut left: Vec<u64> = current.clone();
        left.extend(
            active[keep..]
                .iter()
                .map(|&(id, ..)| NEURON + u64::from(id)),
        );
        left.sort_unstable();
        left.dedup();
        self.left_facts = left;
        let mut new = self.op.cross_left(&self.left_facts, &potential);
        if new_flag {
            new += 1;
        }
        let share_added = if new_flag && !unique.is_empty() {
            new as f64 / unique.len() as f64
        } else {
            0.0
        };
        (share_active, share_added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_hash_is_cpythons() {
        // python3 -c 'print(hash(()), hash((1,)), hash((0, 2, 5)), hash((1, 2**31 + 7)))'
        assert_eq!(py_tuple_hash(&[]), 5_740_354_900_026_072_187);
        assert_eq!(py_tuple_hash(&[1]), -6_644_214_454_873_602_895);
        assert_eq!(py_tuple_hash(&[0, 2, 5]), -8_354_938_516_439_037_705);
        assert_eq!(py_tuple_hash(&[1, NEURON + 7]), 462_164_602_108_730_558);
    }

    #[test]
    fn a_repeating_pattern_is_learnt() {
        let mut d = CadOse::with_range(0.0, 7.0, 0.0);
        let pattern = [0.0, 3.0, 7.0, 5.0, 1.0];
        let scores: Vec<f64> = (0..200).map(|i| d.score(pattern[i % 5])).collect();
        // Rest period 0 means "always resting" in NAB's code (the initial 1.0 is always in
        // the window), so this one checks the raw learning through a second detector.
        assert!(scores.iter().all(|&s| s == 0.0));
        let mut d = CadOse::with_range(0.0, 7.0, 1.0);
        let scores: Vec<f64> = (0..200).map(|i| d.score(pattern[i % 5])).collect();
        assert!(
            scores[150..].iter().all(|&s| s < 0.2),
            "{:?}",
            &scores[150..]
        );
        let novel = d.score(6.0);
        assert!(novel > 0.4, "{novel}");
    }
}
