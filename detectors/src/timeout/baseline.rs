//! The per-process baseline learned online: for each wait site (system call + program
//! counter), how long a stall there has lasted before it ended in progress. A site seen to
//! wait minutes and then succeed (a subscriber, a long poll) is not a hang at the generic
//! threshold; its own threshold becomes twice its longest successful wait.

use std::collections::HashMap;

/// Sites remembered per process; beyond it new sites are not learned (bounded memory).
const MAX_SITES: usize = 4096;

#[derive(Clone, Debug, Default)]
struct SiteStats {
    completed: u32,
    longest: f64,
}

/// Learned wait durations per site of one process.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    sites: HashMap<(String, u64), SiteStats>,
}

impl Baseline {
    /// A stall at `site` ended in progress after `seconds`.
    pub fn observe_completed(&mut self, syscall: &str, site: u64, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let key = (syscall.to_string(), site);
        if !self.sites.contains_key(&key) && self.sites.len() >= MAX_SITES {
            return;
        }
        let s = self.sites.entry(key).or_default();
        s.completed = s.completed.saturating_add(1);
        s.longest = s.longest.max(seconds);
    }

    /// The silence a wait at `site` needs before it is a hang: `base`, or twice the longest wait that ended
    /// well there, whichever is larger.
    pub fn threshold(&self, syscall: &str, site: u64, base: f64) -> f64 {
        match self.sites.get(&(syscall.to_string(), site)) {
            Some(s) if s.completed > 0 => base.max(2.0 * s.longest),
            _ => base,
        }
    }

    /// Number of sites learned.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}
