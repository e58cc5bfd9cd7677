//! What the anomaly scorer costs the agent: one tick over 1,000 series (a sample recorded in
//! each and read by the scorer). Two cases: the ordinary tick, where each sample only goes
//! into its series' 5-minute bucket, and the tick where every bucket closes and every series
//! is scored (with the trainings that fell due run inline as the blocking pool would; the
//! scorer is set to buckets of 0 s so that every tick is such a tick). A bucket closes once
//! per 300 ticks, so the agent's cost at a 1 s interval is
//! (299 × ordinary + 1 × closing) / 300 per second: 10 ms = 1 % of a core.
//! Run: `cargo bench -p lookout-agent --bench anomaly`.

use criterion::{Criterion, criterion_group, criterion_main};
use lookout_agent::anomaly::Scorer;
use lookout_agent::context::Context;
use lookout_agent::series::{SeriesKey, SeriesStore};

const SERIES: usize = 1_000;

/// A host-like value: a slow wave, a per-series level and deterministic noise.
fn value(series: usize, t: usize) -> f64 {
    let wave = ((t as f64) / 300.0 + series as f64).sin() * 10.0;
    let noise = ((series * 31 + t * 17) % 23) as f64 / 23.0;
    100.0 + series as f64 + wave + noise
}

fn tick(scorer: &mut Scorer, ctx: &Context, keys: &[SeriesKey], t: usize) {
    for (i, k) in keys.iter().enumerate() {
        ctx.series.record(k, value(i, t));
    }
    let jobs = scorer.tick();
    scorer.install(jobs.into_iter().map(|(k, j)| (k, j.run())).collect());
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("lookout-bench-anomaly-{}", std::process::id()));
    let mut ctx = Context::for_tests(dir);
    ctx.series = SeriesStore::new(600);
    let keys: Vec<SeriesKey> = (0..SERIES)
        .map(|i| SeriesKey::new("bench_metric", &[("n", &i.to_string())]))
        .collect();
    let mut scorer = Scorer::new(&ctx);
    let mut t = 0;
    c.bench_function(
        "anomaly scorer tick, 1,000 series (samples into buckets)",
        |b| {
            b.iter(|| {
                tick(&mut scorer, &ctx, &keys, t);
                t += 1;
            })
        },
    );
    let mut scorer = Scorer::new(&ctx);
    scorer.set_bucket_seconds(0.0);
    // Past the first trainings, so models are mature and retrain on their normal schedule.
    let mut t = 0;
    while t < 400 {
        tick(&mut scorer, &ctx, &keys, t);
        t += 1;
    }
    c.bench_function(
        "anomaly scorer tick, 1,000 series (every series scored, with due trainings)",
        |b| {
            b.iter(|| {
                tick(&mut scorer, &ctx, &keys, t);
                t += 1;
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
