//! Speed of the anomaly detectors: streaming score throughput (training excluded), training
//! time per series, and (printed) memory per series.
//! `cargo bench -p lookout-detectors --bench anomaly`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lookout_detectors::anomaly::downsample::Downsampler;
use lookout_detectors::anomaly::{Detector, HISTORY, Method, SeriesKind};
use std::hint::black_box;

fn series(n: usize) -> Vec<f64> {
    let mut state = 42u64;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let noise = (state >> 40) as f64 / (1u64 << 24) as f64;
            50.0 + 10.0 * (i as f64 / 50.0).sin() + noise
        })
        .collect()
}

/// A detector with a trained model, as in steady state.
fn trained(method: Method, values: &[f64]) -> Detector {
    let mut d = Detector::new(method, SeriesKind::Gauge);
    for (i, &v) in values.iter().enumerate() {
        d.observe(i as f64, v);
        d.train_if_due();
    }
    d
}

fn bench(c: &mut Criterion) {
    // The daemon's input: 1 s samples downsampled to 5-minute means (one detector step per
    // 300 samples): points per second of raw input.
    let raw = series(300_000);
    let warm5: Vec<f64> = series(2 * HISTORY * 300);
    let mut d = trained(Method::default(), &[]);
    let mut ds = Downsampler::default();
    for (i, &v) in warm5.iter().enumerate() {
        if let Some((t, m)) = ds.push(i as f64, v) {
            d.observe(t, m);
            d.train_if_due();
        }
    }
    let mut g = c.benchmark_group(format!(
        "score/{}_downsampled_1s_input",
        Method::default().name()
    ));
    g.sample_size(10);
    g.throughput(Throughput::Elements(raw.len() as u64));
    g.bench_function("stream_300k_points", |b| {
        b.iter_batched_ref(
            || (d.clone(), ds),
            |(d, ds)| {
                let base = warm5.len() as f64;
                let mut acc = 0.0f32;
                for (i, &v) in raw.iter().enumerate() {
                    if let Some((t, m)) = ds.push(base + i as f64, v) {
                        acc += d.observe(t, m);
                    }
                }
                black_box(acc)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
    let warm = series(2 * HISTORY);
    let points = series(100_000);
    for method in [
        Method::Ensemble,
        Method::Lookout,
        Method::Netdata,
        Method::CadOse,
        Method::Bocpd,
    ] {
        let d = trained(method, &warm);
        // CAD OSE and BOCPD take tens of microseconds a point: fewer points, fewer samples.
        let slow = matches!(method, Method::Ensemble | Method::CadOse | Method::Bocpd);
        let points = if slow { &points[..10_000] } else { &points[..] };
        eprintln!(
            "memory per series ({}): {} bytes",
            method.name(),
            d.memory_bytes()
        );
        let mut g = c.benchmark_group(format!("score/{}", method.name()));
        g.throughput(Throughput::Elements(points.len() as u64));
        if slow {
            g.sample_size(10);
        }
        g.bench_function(format!("stream_{}_points", points.len()), |b| {
            b.iter_batched_ref(
                || d.clone(),
                |d| {
                    let base = 10_000.0;
                    let mut acc = 0.0f32;
                    for (i, &v) in points.iter().enumerate() {
                        acc += d.observe(base + i as f64, v);
                    }
                    black_box(acc)
                },
                criterion::BatchSize::LargeInput,
            )
        });
        g.finish();
        if matches!(method, Method::CadOse | Method::Bocpd) {
            continue; // they learn online: no training job
        }
        let mut g = c.benchmark_group(format!("train/{}", method.name()));
        g.bench_function("one_series_full_history", |b| {
            let mut d = d.clone();
            b.iter(|| black_box(d.training_job().run()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
