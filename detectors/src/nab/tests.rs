//! Hand-computed NAB cases (numbers worked out with the formulas of NAB's sweeper.py).

use super::*;

fn file(n: usize, hits: &[(usize, f64)], windows: &[(usize, usize)]) -> FileInput {
    let mut scores = vec![0.0; n];
    for &(i, s) in hits {
        scores[i] = s;
    }
    FileInput {
        scores,
        windows: windows.to_vec(),
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{a} != {b}");
}

#[test]
fn sigmoid_matches_nab() {
    close(scaled_sigmoid(-1.0), 0.986_614_298_151_430_5);
    close(scaled_sigmoid(0.0), 0.0);
    close(scaled_sigmoid(3.5), -1.0);
    assert_eq!(probation_rows(100), 15);
    assert_eq!(probation_rows(100_000), 750);
}

#[test]
fn detection_at_window_start_is_perfect() {
    let c = Corpus::new(&[file(100, &[(50, 1.0)], &[(50, 59)])]);
    let r = c.optimise(PROFILES[0]);
    close(r.score, 100.0);
    close(r.threshold, 1.0);
}

#[test]
fn only_earliest_detection_counts_and_late_fp_is_cheap() {
    // TP at 55 (relative position −0.5 → 0.859 793), FP at 64, 5 rows past a 10-row window
    // (sigmoid(5/9) = −0.882 926). The FP scores higher than the TP, so any threshold that
    // detects the TP also detects the FP; the later detection at 58 adds nothing.
    let c = Corpus::new(&[file(100, &[(55, 0.8), (58, 0.85), (64, 0.9)], &[(50, 59)])]);
    let std = c.optimise(PROFILES[0]);
    close(std.score, 88.133_534_277_107_23);
    close(std.threshold, 0.8);
    let low_fp = c.optimise(PROFILES[1]);
    close(low_fp.score, 83.277_440_208_725_27);
    let low_fn = c.optimise(PROFILES[2]);
    close(low_fn.score, 92.089_022_851_404_82);
}

#[test]
fn fp_before_any_window_costs_full_weight_and_optimiser_avoids_it() {
    let c = Corpus::new(&[file(100, &[(20, 1.0)], &[(50, 59)])]);
    // At threshold 1: missed window (−1) and a full FP (−0.11): 100·(−1.11+1)/2 = −5.5.
    close(c.score_at(PROFILES[0], 1.0).score, -5.5);
    // The optimiser prefers detecting nothing: 0.
    close(c.optimise(PROFILES[0]).score, 0.0);
}

#[test]
fn probation_rows_are_ignored_and_files_add_up() {
    // Row 10 is inside the 15-row probation: not an FP. The second file's window is found at
    // its start, the first file's window is missed: (1 − 1) → 100·(0 + 2)/4 = 50.
    let c = Corpus::new(&[
        file(100, &[(10, 1.0)], &[(50, 59)]),
        file(100, &[(70, 1.0)], &[(70, 79)]),
    ]);
    assert_eq!(c.windows(), 2);
    close(c.optimise(PROFILES[0]).score, 50.0);
    close(c.null_score(PROFILES[2]), -4.0);
}

#[test]
fn windows_map_to_rows_inclusively() {
    let ts = [0, 300, 600, 900, 1200];
    assert_eq!(windows_to_rows(&ts, &[(300, 900)]), vec![(1, 3)]);
    assert_eq!(windows_to_rows(&ts, &[(301, 1000)]), vec![(2, 3)]);
    assert!(windows_to_rows(&ts, &[(301, 302)]).is_empty());
}
