//! Faithfulness of the BOCPD port: its scores on four development files equal those of NAB's
//! `bayes_changept_detector.handleRecord` (transcribed in `fixtures/bocpd/nab_bayes_changept.py`,
//! numpy + scipy, which wrote `fixtures/bocpd/<category>/<file>.txt`) to 1e-9.
//!
//! The corpus is the shared data set beside the workspace (`../shared/data/nab`); the test
//! fails when it is missing rather than passing without checking anything.

use lookout_detectors::anomaly::bocpd::Bocpd;
use std::path::Path;

#[test]
fn bocpd_matches_nabs_python_on_four_dev_files() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = here.join("../../shared/data/nab/data");
    assert!(data.is_dir(), "NAB corpus not found at {}", data.display());
    let files = [
        "artificialWithAnomaly/art_daily_jumpsup",
        "realTraffic/speed_7578",
        "realAdExchange/exchange-2_cpc_results",
        "realKnownCause/ec2_request_latency_system_failure",
    ];
    for f in files {
        let csv = std::fs::read_to_string(data.join(format!("{f}.csv"))).unwrap();
        let want: Vec<f64> =
            std::fs::read_to_string(here.join(format!("tests/fixtures/bocpd/{f}.txt")))
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
        let mut d = Bocpd::default();
        let got: Vec<f64> = csv
            .lines()
            .skip(1)
            .map(|l| d.score(l.split(',').nth(1).unwrap().trim().parse().unwrap()))
            .collect();
        assert_eq!(got.len(), want.len(), "{f}");
        let changes = want.iter().filter(|&&s| s > 0.0).count();
        assert!(changes > 0, "{f}: the reference has no change point");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-9, "{f} row {i}: {g} vs NAB {w}");
        }
    }
}
