//! Where axis ticks go: round values (1, 2, 5 × 10^k) and round UTC times.

use super::format::{civil_date, utc_clock};

/// Round tick values within [lo, hi], at most about `max` of them.
pub fn values(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if hi <= lo || lo.is_nan() || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / max.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && out.len() < 100 {
        // Avoid "-0" and float dust such as 0.30000000000000004.
        let r = (v / step).round() * step;
        out.push(if r.abs() < step * 1e-9 { 0.0 } else { r });
        v += step;
    }
    out
}

/// Round time steps in seconds.
const STEPS: &[f64] = &[
    1.0,
    2.0,
    5.0,
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    10_800.0,
    21_600.0,
    43_200.0,
    86_400.0,
    172_800.0,
    604_800.0,
    2_592_000.0,
    31_536_000.0,
];

/// A round step and the ticks (aligned to it in UTC) within [x0, x1].
pub fn times(x0: f64, x1: f64, max: usize) -> (f64, Vec<f64>) {
    let span = (x1 - x0).max(1e-9);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max.max(1) as f64)
        .unwrap_or(31_536_000.0);
    let mut out = Vec::new();
    let mut t = (x0 / step).ceil() * step;
    while t <= x1 && out.len() < 100 {
        out.push(t);
        t += step;
    }
    (step, out)
}

/// The label of a time tick: the clock for sub-day steps (seconds when the step is), the
/// date for longer ones.
pub fn time_label(t: f64, step: f64) -> String {
    if step < 60.0 {
        utc_clock(t, true)
    } else if step < 86_400.0 {
        utc_clock(t, false)
    } else {
        civil_date(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ticks_are_round() {
        assert_eq!(values(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(values(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let t = values(-0.3, 0.3, 6);
        assert!(
            t.contains(&0.0) && t.iter().all(|v| v.abs() <= 0.3 + 1e-12),
            "{t:?}"
        );
    }

    #[test]
    fn time_ticks_align_to_utc() {
        let (step, t) = times(1_700_000_000.0, 1_700_000_600.0, 6);
        assert_eq!(step, 120.0);
        assert!(t.iter().all(|x| x % 120.0 == 0.0));
        assert_eq!(time_label(t[0], step), "22:14");
        let (step, _) = times(0.0, 30.0 * 86_400.0, 6);
        assert_eq!(step, 604_800.0);
        assert_eq!(time_label(86_400.0 * 31.0, step), "1970-02-01");
    }
}
