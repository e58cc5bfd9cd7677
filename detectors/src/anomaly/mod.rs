//! Streaming, unsupervised, strictly causal anomaly detection for metric series.
//!
//! One [`Detector`] per series. [`Detector::observe`] scores a sample in O(1) (the hot path:
//! a few dozen arithmetic operations, no allocation) and returns a score in [0, 1]; the score
//! of a sample depends only on that sample and earlier ones. Training is separate and runs off
//! the hot path: when [`Detector::training_due`] says so, the caller takes a
//! [`TrainingJob`] (an owned copy of the series' recent history), runs it wherever it likes
//! (another thread, a blocking pool) and hands the [`Model`] back with [`Detector::install`].
//! The offline evaluation does the same thing inline, so it scores exactly like the daemon.
//!
//! Methods:
//! * [`Method::Ensemble`] (the default, the daemon's): ½·max(deviation / its threshold,
//!   CAD OSE / its threshold), see [`ensemble`] and [`causal_cad`]: the deviation detector
//!   below and a causal, bounded CAD OSE ([`cad_ose`]: range fixed from the first
//!   [`CAD_WINDOW`] values widened by [`CAD_MARGIN`] × their span each side, at most
//!   [`CAD_MAX_CONTEXTS`] contexts, the least recently used forgotten when full,
//!   [`CAD_MEMORY_CAP`] bytes). Chosen over the deviation
//!   detector alone by leave-one-category-out cross-validation (ARCHITECTURE.md).
//! * [`Method::CadOse`]: that CAD OSE alone; [`Method::Bocpd`]: NAB's Bayesian online
//!   change-point detector ([`bocpd`]).
//! * [`Method::Lookout`] ([`deviation`]): the largest of four normalised
//!   deviations (level against the recent median, first difference, shape of the last smoothed
//!   differences against linfa k-means centres, residual against the last two cycles of a
//!   dominant period; for a strong cycle the seasonal residual alone), each divided by the top
//!   2 % quantile of its kind in the training window, then compared with the second largest
//!   hourly maximum of the last ~48 h ([`novelty`]): a sample is anomalous when it is beyond
//!   what was seen recently more than once. Daily jobs, level shifts that stay and slow cycles
//!   therefore stop scoring high after their first appearances. A context memory
//!   ([`context`], CAD-OSE-like: hashed triples of quantised values, one to two weeks at
//!   5-minute samples) confirms: a sample whose context the series already went through is
//!   damped by [`CONTEXT_DAMP`], so a pattern that recurs beyond the novelty memory's two days
//!   has to be clearly worse to page. Within
//!   [`REFRACTORY_SECONDS`] of an alarm, scores that do not exceed it are damped: one incident pages once
//!   (NAB rewards only the first detection of a window and charges every later one outside
//!   it). Every setting is the same for every series ([`Params::default`]).
//! * [`Method::Netdata`] ([`netdata`]): the known baseline, Netdata's k = 2 k-means on 6 lagged
//!   3-point-smoothed first differences, several models on successive windows that must all
//!   agree.
//!
//! Memory bound per series (see [`Detector::memory_bytes`], checked by a unit test): the
//! history ring of [`HISTORY`] f32 values (3 KiB) plus the model (≤ 250 bytes), the novelty
//! memory (~220 bytes), the context memory (2 × 512 bytes of bit sets and a few fields) and
//! fixed state including the settings: about 5,000 bytes for `Lookout`, 4,900 bytes for
//! `Netdata` with its 4 models (it carries the unused context memory) — both under the 8 KiB
//! target. The ensemble adds CAD OSE's context memory, at most [`CAD_MEMORY_CAP`] (96 KiB;
//! 43 KB on average over the dev corpus's files, 79 KB at most); BOCPD adds 12 KB.

pub mod bocpd;
pub mod cad_ose;
pub mod context;
pub mod deviation;
pub mod downsample;
pub mod features;
pub mod kmeans;
pub mod netdata;
pub mod novelty;
mod prep;

pub use prep::SeriesKind;

use prep::{Prepared, Preprocessor};
use std::collections::VecDeque;

/// Samples of history kept per series for training.
pub const HISTORY: usize = 768;
/// The first model is trained after this many samples; until then scores are 0.
pub const WARMUP: usize = 32;
/// A model is retrained after this many new samples.
pub const RETRAIN_EVERY: usize = 64;

/// Highest score while the model is immature (below every operating threshold).
pub const IMMATURE_CAP: f32 = 0.45;

/// Seconds after an alarm during which scores not above its peak are damped: one incident,
/// one page (three hours; the same order as an alert manager's repeat interval).
pub const REFRACTORY_SECONDS: f64 = 3.0 * 3600.0;
/// Factor applied to those scores (keeps them below every useful threshold).
pub const REFRACTORY_DAMP: f32 = 0.5;
/// Score that opens an incident: n = 1, a deviation beyond the novelty reference (see
/// [`novelty`]).
pub const ALARM_ARM: f32 = 0.5;

/// Factor applied to the score of a sample whose context (see [`context`]) is already known:
/// at the operating threshold such a sample needs n ≈ 1.41 instead of 1.22.
pub const CONTEXT_DAMP: f32 = 0.9;

/// Settings of the lookout method. The defaults are the shipped configuration, the same for
/// every series; the struct exists for sensitivity studies ([`Detector::with_params`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub train: deviation::TrainParams,
    pub novelty: novelty::NoveltyParams,
    /// See [`REFRACTORY_SECONDS`].
    pub refractory_seconds: f64,
    /// See [`CONTEXT_DAMP`].
    pub context_damp: f32,
    /// See [`context::LEVELS`].
    pub context_levels: f32,
    /// See [`context::GENERATION`].
    pub context_generation: u32,
    /// See [`context::RESCALE`].
    pub context_rescale: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            train: deviation::TrainParams::default(),
            novelty: novelty::NoveltyParams::default(),
            refractory_seconds: REFRACTORY_SECONDS,
            context_damp: CONTEXT_DAMP,
            context_levels: context::LEVELS,
            context_generation: context::GENERATION,
            context_rescale: context::RESCALE,
        }
    }
}

/// Which detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// The deviation detector ([`deviation`]) alone (the default until the ensemble).
    Lookout,
    Netdata,
    /// CAD OSE ([`cad_ose`]), causal: the range fixed from the first [`CAD_WINDOW`] values
    /// widened by [`CAD_MARGIN`] × their span each side, memory bounded by
    /// [`CAD_MAX_CONTEXTS`].
    CadOse,
    /// The larger of the deviation score and the CAD OSE score, each divided by its own
    /// operating threshold, halved (0.5 = one of them at its threshold). See [`ensemble`].
    /// The default: the daemon's detector.
    #[default]
    Ensemble,
    /// Bayesian online change-point detection ([`bocpd`]), NAB's `bayesChangePt`.
    Bocpd,
}

/// CAD OSE's rest period in the ensemble and `cad-ose` (CAD OSE's own default).
pub const CAD_REST: f64 = cad_ose::REST_PERIOD;
/// Values that fix CAD OSE's range (the deviation model's maturity: the same warm-up).
pub const CAD_WINDOW: usize = deviation::MATURE;
/// Margin around the warm-up's span, as a share of it, each side.
pub const CAD_MARGIN: f64 = 1.0;
/// Contexts CAD OSE may hold; when full it forgets all but the [`CAD_KEEP`] most recently
/// used. Chosen by leave-one-category-out CV among 512, 768, 1,024, 1,280 and 1,536: every
/// fold picked 1,024 (ARCHITECTURE.md has the figures).
pub const CAD_MAX_CONTEXTS: usize = 1024;
/// Contexts kept when the memory is full (three quarters).
pub const CAD_KEEP: usize = CAD_MAX_CONTEXTS * 3 / 4;
/// Memory at which CAD OSE's memory forgets contexts even below [`CAD_MAX_CONTEXTS`] (1,024
/// contexts took at most 79 KB on the dev corpus, 43 KB on average).
pub const CAD_MAX_BYTES: usize = 80 * 1024;
/// Upper bound of [`causal_cad`]'s memory (unit-tested on the shapes that make the most
/// contexts): [`CAD_MAX_BYTES`] and what one value may add.
pub const CAD_MEMORY_CAP: usize = 96 * 1024;

/// Values after its warm-up for which CAD OSE scores 0 while its memory learns (two days of
/// 5-minute values): a memory that has seen only [`CAD_WINDOW`] values finds much new, and
/// those false positives came right after maturity (on the synthetic-wide suite a third of
/// CAD's false positives fell in the first 12 h). Chosen by leave-one-category-out CV on the
/// dev corpus and synthetic-wide pooled, among 0, 72, 144, 230, 288, 346, 576, 864 and
/// 1,152: every fold picked 576 (ARCHITECTURE.md has the figures). The deviation detector
/// covers those days alone.
pub const CAD_QUIET: usize = 576;

/// The bounded causal CAD OSE of [`Method::CadOse`] and [`Method::Ensemble`].
pub fn causal_cad() -> cad_ose::CadOse {
    cad_ose::CadOse::buffered(CAD_REST, CAD_WINDOW, CAD_MARGIN)
        .bounded(CAD_MAX_CONTEXTS, CAD_MAX_BYTES, CAD_KEEP)
        .quiet_for(CAD_QUIET)
}

/// The ensemble's combination of a deviation score and a CAD OSE score.
pub fn ensemble(deviation: f32, cad: f32) -> f32 {
    let d = deviation / deviation::OPERATING_THRESHOLD as f32;
    let c = cad / cad_ose::BASE_THRESHOLD as f32;
    (0.5 * d.max(c)).clamp(0.0, 1.0)
}

/// Operating threshold of the ensemble: one part at its own threshold.
pub const ENSEMBLE_THRESHOLD: f64 = 0.5;
/// Operating threshold of BOCPD (NAB's detector scores 1 − r*/r*₋₁): what leave-one-
/// category-out CV chose in every fold on the dev corpus (0.978–0.982).
pub const BOCPD_THRESHOLD: f64 = 0.98;

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lookout" => Ok(Method::Lookout),
            "netdata" => Ok(Method::Netdata),
            "cad-ose" => Ok(Method::CadOse),
            "ensemble" => Ok(Method::Ensemble),
            "bocpd" => Ok(Method::Bocpd),
            other => Err(format!(
                "unknown detector {other:?} (lookout, ensemble, netdata, cad-ose or bocpd)"
            )),
        }
    }
}

impl Method {
    /// The score at or above which this method calls a sample anomalous (what would page).
    pub fn operating_threshold(self) -> f64 {
        match self {
            Method::Lookout => deviation::OPERATING_THRESHOLD,
            Method::Netdata => netdata::OPERATING_THRESHOLD,
            Method::CadOse => cad_ose::BASE_THRESHOLD,
            Method::Ensemble => ENSEMBLE_THRESHOLD,
            Method::Bocpd => BOCPD_THRESHOLD,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Lookout => "lookout",
            Method::Netdata => "netdata",
            Method::CadOse => "cad-ose",
            Method::Ensemble => "ensemble",
            Method::Bocpd => "bocpd",
        }
    }
}

/// A trained model of either method.
#[derive(Clone, Debug)]
pub enum Model {
    Deviation(deviation::DeviationModel),
    Netdata(netdata::NetdataModel),
}

/// Everything training needs, owned, so it can run on another thread.
#[derive(Clone, Debug)]
pub struct TrainingJob {
    method: Method,
    history: Vec<f32>,
    params: deviation::TrainParams,
}

impl TrainingJob {
    /// Fit the model (k-means and statistics over the history). Pure and deterministic.
    pub fn run(self) -> Model {
        match self.method {
            Method::Netdata => Model::Netdata(netdata::train(&self.history)),
            _ => Model::Deviation(deviation::train(&self.history, &self.params)),
        }
    }

    pub fn len(&self) -> usize {
        self.history.len()
    }

    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }
}

/// The streaming detector of one series.
#[derive(Clone, Debug)]
pub struct Detector {
    method: Method,
    prep: Preprocessor,
    history: VecDeque<f32>,
    /// Recent first differences, newest last, for the 3-point smoothing.
    diffs: [f32; 3],
    /// Smoothed differences, newest last: the shape features.
    lags: [f32; netdata::LAGS],
    /// Valid differences since the last gap (features are only complete past LAGS + 2).
    run: usize,
    last_value: Option<f32>,
    since_training: usize,
    training_pending: bool,
    deviation: Option<deviation::DeviationModel>,
    netdata: netdata::Ensemble,
    novelty: novelty::Novelty,
    context: context::Context,
    /// Only for [`Method::CadOse`] and [`Method::Ensemble`].
    cad: Option<Box<cad_ose::CadOse>>,
    /// Only for [`Method::Bocpd`].
    bocpd: Option<Box<bocpd::Bocpd>>,
    params: Params,
    /// Highest score of the current alarm and the samples since it (refractory period).
    alarm_peak: f32,
    alarm_t: f64,
    observed: u64,
}

impl Detector {
    pub fn new(method: Method, kind: SeriesKind) -> Self {
        Self::with_params(method, kind, Params::default())
    }

    /// A detector with other settings than the shipped ones (sensitivity studies).
    pub fn with_params(method: Method, kind: SeriesKind, params: Params) -> Self {
        Self {
            method,
            prep: Preprocessor::new(kind),
            history: VecDeque::with_capacity(HISTORY),
            diffs: [0.0; 3],
            lags: [0.0; netdata::LAGS],
            run: 0,
            last_value: None,
            since_training: 0,
            training_pending: false,
            deviation: None,
            netdata: netdata::Ensemble::default(),
            novelty: novelty::Novelty::default(),
            context: context::Context::default(),
            cad: matches!(method, Method::CadOse | Method::Ensemble)
                .then(|| Box::new(causal_cad())),
            bocpd: (method == Method::Bocpd).then(|| Box::new(bocpd::Bocpd::default())),
            params,
            alarm_peak: 0.0,
            alarm_t: f64::NEG_INFINITY,
            observed: 0,
        }
    }

    /// Samples observed (finite ones; what the model has seen).
    pub fn observed(&self) -> u64 {
        self.observed
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Score the sample `value` taken at `t` seconds (any monotonic origin). Non-finite values
    /// are missing samples: they score 0 and change nothing. Returns a score in [0, 1].
    pub fn observe(&mut self, t: f64, value: f64) -> f32 {
        let x = match self.prep.prepare(t, value) {
            Prepared::Missing => return 0.0,
            Prepared::AfterGap(x) => {
                // Differences across a gap of missing samples would be artefacts.
                self.run = 0;
                self.last_value = None;
                self.context.break_sequence();
                x
            }
            Prepared::Value(x) => x,
        };
        self.observed += 1;
        let diff = self.last_value.map(|p| x - p);
        self.last_value = Some(x);
        if let Some(d) = diff {
            self.diffs.rotate_left(1);
            self.diffs[2] = d;
            self.run += 1;
            if self.run >= 3 {
                self.lags.rotate_left(1);
                self.lags[netdata::LAGS - 1] =
                    (self.diffs[0] + self.diffs[1] + self.diffs[2]) / 3.0;
            }
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(x);
        self.since_training += 1;
        let shape_ready = self.run >= netdata::LAGS + 2;
        let shape = shape_ready.then_some(&self.lags);
        let score = match self.method {
            Method::Lookout | Method::Ensemble => match &self.deviation {
                Some(m) => {
                    let history = &self.history;
                    let newest = history.len() - 1;
                    let ago = |lag: usize| newest.checked_sub(lag).map(|i| history[i]);
                    let e = m.deviation(x, diff, shape, ago);
                    let score = self.novelty.score(t, e, m.mature(), &self.params.novelty);
                    // A sample whose context the series already went through must be
                    // clearly worse to page.
                    let generation = self.params.context_generation;
                    let score = match self.context.observe(x, generation) {
                        Some(false) => score * self.params.context_damp,
                        _ => score,
                    };
                    // An immature model (short history) never calls a sample anomalous:
                    // no burst of alarms while a new series warms up.
                    let score = if m.mature() {
                        score
                    } else {
                        score.min(IMMATURE_CAP)
                    };
                    self.refractory(t, score)
                }
                None => 0.0,
            },
            Method::Netdata => self.netdata.score(shape),
            Method::CadOse => 0.0,
            Method::Bocpd => self
                .bocpd
                .as_mut()
                .map_or(0.0, |b| b.score(f64::from(x)) as f32),
        };
        let score = match (&mut self.cad, self.method) {
            (Some(c), Method::CadOse) => c.score(f64::from(x)) as f32,
            (Some(c), Method::Ensemble) => {
                let cad = c.score(f64::from(x)) as f32;
                ensemble(if score.is_finite() { score } else { 0.0 }, cad)
            }
            _ => score,
        };
        if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Repeated alarms of one incident: within [`REFRACTORY_SECONDS`] of an alarm (a score of
    /// at least [`ALARM_ARM`]), a score that does not exceed the alarm's peak is damped by
    /// [`REFRACTORY_DAMP`]. Only the first sample of an incident (or one that is clearly
    /// worse) pages; the wobble around it does not. In time rather than samples, so that it
    /// means the same at any sampling interval.
    fn refractory(&mut self, t: f64, score: f32) -> f32 {
        let peak = if t - self.alarm_t <= self.params.refractory_seconds {
            self.alarm_peak
        } else {
            0.0
        };
        if score > peak {
            if score >= ALARM_ARM {
                self.alarm_peak = score;
                self.alarm_t = t;
            }
            score
        } else {
            score * REFRACTORY_DAMP
        }
    }

    /// Whether a (re)training is due: after the warm-up, then every [`RETRAIN_EVERY`]
    /// samples (more often while the history is still filling).
    pub fn training_due(&self) -> bool {
        if self.training_pending
            || self.history.len() < WARMUP
            || matches!(self.method, Method::CadOse | Method::Bocpd)
        {
            return false;
        }
        let trained = match self.method {
            Method::Lookout | Method::Ensemble => self.deviation.is_some(),
            Method::Netdata => !self.netdata.is_empty(),
            Method::CadOse | Method::Bocpd => true,
        };
        let every = match self.method {
            Method::Netdata => netdata::RETRAIN_EVERY.min(self.history.len()),
            _ => RETRAIN_EVERY.min(self.history.len()),
        };
        !trained || self.since_training >= every
    }

    /// The job to train on the current history; marks training as pending until
    /// [`Detector::install`] (so a slow trainer is not handed the same work twice).
    pub fn training_job(&mut self) -> TrainingJob {
        self.training_pending = true;
        self.since_training = 0;
        let history = match self.method {
            Method::Lookout | Method::Ensemble | Method::CadOse | Method::Bocpd => {
                self.history.iter().copied().collect()
            }
            // Netdata trains each model on its own window: the samples since the last model.
            Method::Netdata => {
                let n = self.history.len().min(netdata::TRAIN_WINDOW);
                self.history
                    .iter()
                    .skip(self.history.len() - n)
                    .copied()
                    .collect()
            }
        };
        TrainingJob {
            method: self.method,
            history,
            params: self.params.train,
        }
    }

    /// Put a trained model in service.
    pub fn install(&mut self, model: Model) {
        self.training_pending = false;
        match model {
            Model::Deviation(m) => {
                // The context memory's quantisation: set by the first mature model,
                // re-anchored by one whose scale is far from it.
                if m.mature() {
                    let p = &self.params;
                    let (lo, hi) = m.range;
                    self.context
                        .setup(lo, hi, m.spread(), p.context_levels, p.context_rescale);
                }
                self.deviation = Some(m);
            }
            Model::Netdata(m) => self.netdata.push(m),
        }
    }

    /// Train inline if due (the offline evaluation; strictly causal: the job sees only the
    /// samples observed so far).
    pub fn train_if_due(&mut self) {
        if self.training_due() {
            let job = self.training_job();
            self.install(job.run());
        }
    }

    /// Upper bound of the heap and inline memory of this detector, in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + HISTORY * std::mem::size_of::<f32>()
            + self.netdata.heap_bytes()
            + self.deviation.as_ref().map_or(0, |m| m.heap_bytes())
            + self.cad.as_ref().map_or(0, |c| c.memory_bytes())
            + self.bocpd.as_ref().map_or(0, |b| b.memory_bytes())
    }
}

#[cfg(test)]
mod tests;
