//! The scorer against a real series store: scores published per series, a host event with
//! hysteresis whose finding names the series that jumped.

use super::*;
use crate::series::SeriesStore;

fn ctx() -> Context {
    let mut ctx = Context::for_tests(std::env::temp_dir());
    ctx.series = SeriesStore::new(600);
    ctx
}

/// Feed one value per series, run a tick, train inline.
fn step(scorer: &mut Scorer, ctx: &Context, values: &[(SeriesKey, f64)]) {
    for (k, v) in values {
        ctx.series.record(k, *v);
    }
    let jobs = scorer.tick();
    scorer.install(jobs.into_iter().map(|(k, j)| (k, j.run())).collect());
}

#[test]
fn scores_every_series_and_raises_one_event_for_a_host_wide_jump() {
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let keys: Vec<SeriesKey> = (0..10)
        .map(|i| SeriesKey::new("test_metric", &[("n", &i.to_string())]))
        .collect();
    // Quiet noise (deterministic), long enough for mature models (256 samples).
    let noise = |i: usize, t: usize| (((i * 31 + t * 17) % 23) as f64) / 23.0;
    for t in 0..400 {
        let vals: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), 50.0 + noise(i, t)))
            .collect();
        step(&mut scorer, &ctx, &vals);
    }
    assert_eq!(ctx.series.latest_of(SCORE).len(), 10);
    assert!(!scorer.event_active());
    assert_eq!(ctx.series.latest_of(EVENT)[0].1, 0.0);
    // Half of the series jump far out of their range.
    for t in 400..410 {
        let vals: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), if i < 5 { 500.0 } else { 50.0 } + noise(i, t)))
            .collect();
        step(&mut scorer, &ctx, &vals);
    }
    assert!(scorer.event_active());
    assert_eq!(ctx.series.latest_of(EVENT)[0].1, 1.0);
    assert!(ctx.series.latest_of(RATE)[0].1 >= 0.5);
    let findings = ctx.findings.all();
    let events: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == "anomaly_event")
        .collect();
    assert_eq!(events.len(), 1);
    let top = events[0].detail["top"].as_array().unwrap();
    assert!(!top.is_empty());
    for t in top {
        let m = t["metric"].as_str().unwrap();
        assert!(
            ["\"0\"", "\"1\"", "\"2\"", "\"3\"", "\"4\""]
                .iter()
                .any(|n| m.ends_with(&format!("{n}}}"))),
            "{m}"
        );
    }
    // The new level becomes normal: the event ends (after the hold and the off period) and
    // does not restart.
    for t in 410..600 {
        let vals: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), if i < 5 { 500.0 } else { 50.0 } + noise(i, t)))
            .collect();
        step(&mut scorer, &ctx, &vals);
    }
    assert!(!scorer.event_active());
    let events = ctx
        .findings
        .all()
        .iter()
        .filter(|f| f.kind == "anomaly_event")
        .count();
    assert_eq!(events, 1);
}

#[test]
fn scores_measurements_not_configuration_state_or_other_detectors() {
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let svc = [("service", "api")];
    let measured = SeriesKey::new("process.thread.count", &svc);
    let skipped = [
        SeriesKey::new(
            "lookout_service_thread_limit",
            &[("service", "api"), ("kind", "expected")],
        ),
        SeriesKey::new("process_start_time_seconds", &svc),
        SeriesKey::new("lookout_service_up", &svc),
        SeriesKey::new(
            "lookout_timeout_suspects",
            &[("service", "api"), ("verdict", "missing_timeout")],
        ),
        SeriesKey::new("lookout_alerts_firing", &[("alertname", "HostAnomaly")]),
    ];
    let mut vals = vec![(measured.clone(), 12.0)];
    vals.extend(skipped.iter().map(|k| (k.clone(), 1.0)));
    step(&mut scorer, &ctx, &vals);
    let scored: Vec<String> = ctx
        .series
        .latest_of(SCORE)
        .into_iter()
        .map(|(k, _)| k.label("metric").unwrap_or_default().to_string())
        .collect();
    assert_eq!(scored, vec![measured.to_string()]);
}
