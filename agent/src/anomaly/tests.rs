//! The scorer against a real series store: scores published per series, a host event with
//! hysteresis whose finding names the series that jumped.

use super::*;
use crate::series::SeriesStore;

fn ctx() -> Context {
    let mut ctx = Context::for_tests(std::env::temp_dir());
    ctx.series = SeriesStore::new(600);
    ctx
}

/// Seconds of store time between ticks in these tests (5 ticks per downsampled value).
const TICK: f32 = 60.0;

/// Feed one value per series at tick `t` (store time `t × TICK`), run a tick, train inline.
fn step_at(scorer: &mut Scorer, ctx: &Context, t: usize, values: &[(SeriesKey, f64)]) {
    for (k, v) in values {
        ctx.series.record_at(k, t as f32 * TICK, *v);
    }
    let jobs = scorer.tick();
    scorer.install(jobs.into_iter().map(|(k, j)| (k, j.run())).collect());
}

/// Feed one value per series now, run a tick, train inline.
fn step(scorer: &mut Scorer, ctx: &Context, values: &[(SeriesKey, f64)]) {
    for (k, v) in values {
        ctx.series.record(k, *v);
    }
    let jobs = scorer.tick();
    scorer.install(jobs.into_iter().map(|(k, j)| (k, j.run())).collect());
}

fn keys(n: usize) -> Vec<SeriesKey> {
    (0..n)
        .map(|i| SeriesKey::new("test_metric", &[("n", &i.to_string())]))
        .collect()
}

/// Quiet noise (deterministic).
fn noise(i: usize, t: usize) -> f64 {
    (((i * 31 + t * 17) % 23) as f64) / 23.0
}

/// Values of every series at tick `t`: the first `jumped` series at 500, the others at 50.
fn values(keys: &[SeriesKey], t: usize, jumped: usize) -> Vec<(SeriesKey, f64)> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            (
                k.clone(),
                if i < jumped { 500.0 } else { 50.0 } + noise(i, t),
            )
        })
        .collect()
}

fn events(ctx: &Context) -> usize {
    ctx.findings
        .all()
        .iter()
        .filter(|f| f.kind == "anomaly_event")
        .count()
}

#[test]
fn scores_every_series_and_raises_one_event_for_a_host_wide_jump() {
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let keys = keys(10);
    // Ticks of a minute past EVENT_WARMUP downsampled values (832, ~69 h): the models are
    // mature and the series count toward the host rate.
    let live = (EVENT_WARMUP as usize + 8) * 5;
    for t in 0..live {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 0));
    }
    assert_eq!(ctx.series.latest_of(SCORE).len(), 10);
    assert!(!scorer.event_active());
    assert_eq!(ctx.series.latest_of(EVENT)[0].1, 0.0);
    // Half of the series jump far out of their range for four buckets.
    let mut peak_rate = 0.0f64;
    for t in live..live + 20 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 5));
        peak_rate = peak_rate.max(ctx.series.latest_of(RATE)[0].1);
    }
    assert!(scorer.event_active());
    assert_eq!(ctx.series.latest_of(EVENT)[0].1, 1.0);
    // The five series that jumped count as anomalous together (held for HOLD_SECONDS).
    assert!(peak_rate >= 0.5, "{peak_rate}");
    let findings = ctx.findings.all();
    let events_found: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == "anomaly_event")
        .collect();
    assert_eq!(events_found.len(), 1);
    let top = events_found[0].detail["top"].as_array().unwrap();
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
    for t in live + 20..live + 400 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 5));
    }
    assert!(!scorer.event_active());
    assert_eq!(events(&ctx), 1);
}

#[test]
fn a_jump_scored_before_the_event_warm_up_starts_no_event() {
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let keys = keys(10);
    // 360 downsampled values: the models are mature (256) and score, but the series do not
    // count toward the host rate before EVENT_WARMUP (832).
    for t in 0..1800 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 0));
    }
    let mut peak_score = 0.0f64;
    for t in 1800..1820 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 5));
        let scores = ctx.series.latest_of(SCORE);
        peak_score = scores.iter().map(|(_, s)| *s).fold(peak_score, f64::max);
        assert_eq!(ctx.series.latest_of(RATE)[0].1, 0.0, "tick {t}");
    }
    // The jump is scored (the dashboards see it) ...
    assert!(peak_score >= 0.5, "{peak_score}");
    // ... but it pages nobody yet.
    assert!(!scorer.event_active());
    assert_eq!(events(&ctx), 0);
}

#[test]
fn the_detector_sees_one_mean_per_bucket() {
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let keys = keys(1);
    // One sample a minute for an hour: 12 buckets of 5 minutes, 11 of them closed.
    for t in 0..60 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 0));
    }
    let w = &scorer.watched[&keys[0]];
    assert_eq!(w.detector.observed(), 11);
}

#[test]
fn no_anomaly_before_the_models_have_seen_enough_history() {
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let keys = keys(10);
    // 600 ticks: 120 downsampled values (10 h), below maturity; then every series jumps.
    for t in 0..600 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 0));
    }
    for t in 600..700 {
        step_at(&mut scorer, &ctx, t, &values(&keys, t, 10));
        assert_eq!(ctx.series.latest_of(RATE)[0].1, 0.0, "tick {t}");
    }
    assert!(!scorer.event_active());
    assert_eq!(events(&ctx), 0);
}

#[test]
fn memory_per_series_is_bounded_over_days() {
    // The ensemble's CAD OSE memory is the bulk (bounded by CAD_MEMORY_CAP).
    const { assert!(lookout_detectors::anomaly::CAD_MEMORY_CAP + 8 * 1024 <= MEMORY_CAP) };
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    // Shapes that fill every part of a detector: noise, a daily wave, a counter, steps.
    let keys: Vec<SeriesKey> = (0..4)
        .map(|i| {
            SeriesKey::new(
                if i == 2 { "test_total" } else { "test_metric" },
                &[("n", &i.to_string())],
            )
        })
        .collect();
    let mut total = 0.0;
    // Three days of one sample a minute (864 downsampled values: the history is full).
    for t in 0..4320 {
        total += 3.0 + noise(2, t);
        let day = (t as f64 * std::f64::consts::TAU / 1440.0).sin();
        let vals = vec![
            (keys[0].clone(), noise(0, t)),
            (keys[1].clone(), 50.0 + 20.0 * day + noise(1, t)),
            (keys[2].clone(), total),
            (
                keys[3].clone(),
                if (t / 700) % 2 == 0 { 10.0 } else { 90.0 },
            ),
        ];
        step_at(&mut scorer, &ctx, t, &vals);
        if t % 500 == 0 {
            let (largest, _) = scorer.memory_bytes();
            assert!(largest <= MEMORY_CAP, "tick {t}: {largest} bytes");
        }
    }
    let (largest, sum) = scorer.memory_bytes();
    eprintln!("largest {largest} B, average {} B", sum / keys.len());
    assert!(largest <= MEMORY_CAP, "{largest}");
    assert!(
        sum / keys.len() <= MEMORY_AVERAGE,
        "average {}",
        sum / keys.len()
    );
    // What the bound covers: 768 downsampled values of training history = 64 h ≥ 48 h.
    assert!(lookout_detectors::anomaly::HISTORY as f64 * BUCKET_SECONDS >= 48.0 * 3600.0);
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
        SeriesKey::new("lookout_alert_spool_depth", &[]),
        SeriesKey::new("lookout_cache_version", &[("cache", "c")]),
        SeriesKey::new("process_cpu_utilization_ratio", &[("service", "lookout")]),
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

#[test]
fn a_quiet_host_with_trained_models_raises_no_event_in_a_week() {
    // 30 host-like series, one sample a minute for seven days (2,016 downsampled values: the
    // deviation models mature after ~21 h, CAD OSE joins after ~69 h), nothing anomalous in
    // them: daily waves of different strength, noisy levels, bounded random walks, a nightly
    // job, counters. The host event (and with it `AnomalyDetected`) must never start.
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        (h >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let ctx = ctx();
    let mut scorer = Scorer::new(&ctx);
    let n = 30;
    let keys: Vec<SeriesKey> = (0..n)
        .map(|i| {
            SeriesKey::new(
                if i % 5 == 4 {
                    "test_total"
                } else {
                    "test_metric"
                },
                &[("n", &i.to_string())],
            )
        })
        .collect();
    let mut walks = vec![0.0f64; n];
    let mut totals = vec![0.0f64; n];
    let (mut peak_rate, mut anomalous_ticks) = (0.0f64, 0);
    for t in 0..7 * 1440 {
        let day = (t % 1440) as f64 / 1440.0;
        let wave = (day * std::f64::consts::TAU).sin();
        let vals: Vec<(SeriesKey, f64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let scale = 1.0 + i as f64;
                let v = match i % 5 {
                    0 => 50.0 + 20.0 * wave + 2.0 * rnd(),
                    1 => 200.0 + 3.0 * wave + 8.0 * rnd(),
                    2 => {
                        // Mean-reverting walk: a queue depth, memory in use.
                        walks[i] = 0.98 * walks[i] + rnd();
                        100.0 + 5.0 * walks[i]
                    }
                    3 => {
                        // A nightly job from 02:00 to 02:30.
                        let job = (120..150).contains(&(t % 1440));
                        10.0 + if job { 60.0 } else { 0.0 } + rnd()
                    }
                    _ => {
                        totals[i] += 100.0 * (1.5 + wave) + 20.0 * rnd();
                        totals[i]
                    }
                };
                (k.clone(), v * scale)
            })
            .collect();
        step_at(&mut scorer, &ctx, t, &vals);
        let rate = ctx.series.latest_of(RATE)[0].1;
        peak_rate = peak_rate.max(rate);
        if rate > 0.0 {
            anomalous_ticks += 1;
        }
    }
    eprintln!(
        "peak host anomaly rate {peak_rate:.3}, ticks with an anomalous series {anomalous_ticks} of {}",
        7 * 1440
    );
    assert_eq!(events(&ctx), 0, "peak rate {peak_rate}");
    assert!(!scorer.event_active());
}
