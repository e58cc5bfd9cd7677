//! Load figure for the anomaly scorer: CPU per tick with N series (default 1,000), each
//! getting one new sample per tick, training inline (as a 1 s daemon tick would do on the
//! blocking pool). Prints ms of CPU per tick = % of one core at a 1 s interval.
//! `cargo run --release -p lookout-agent --example anomaly_load -- 1000 600`

use lookout_agent::anomaly::Scorer;
use lookout_agent::context::Context;
use lookout_agent::series::{SeriesKey, SeriesStore};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let series: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let ticks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(600);
    let mut ctx = Context::for_tests(std::env::temp_dir());
    ctx.series = SeriesStore::new(600);
    let keys: Vec<SeriesKey> = (0..series)
        .map(|i| SeriesKey::new("load_metric", &[("n", &i.to_string())]))
        .collect();
    let mut scorer = Scorer::new(&ctx);
    let mut state = 1u64;
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let mut trainings = 0;
    for t in 0..ticks {
        for (i, k) in keys.iter().enumerate() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let noise = (state >> 40) as f64 / (1u64 << 24) as f64;
            ctx.series
                .record(k, 50.0 + 10.0 * ((t + i) as f64 / 60.0).sin() + noise);
        }
        let jobs = scorer.tick();
        trainings += jobs.len();
        scorer.install(jobs.into_iter().map(|(k, j)| (k, j.run())).collect());
    }
    let cpu = cpu_seconds() - cpu;
    println!(
        "{series} series, {ticks} ticks, {trainings} trainings: {:.2} ms CPU per tick ({:.1}% of a core at 1 s), wall {:.1} s",
        cpu * 1000.0 / ticks as f64,
        cpu * 100.0 / ticks as f64,
        wall.elapsed().as_secs_f64()
    );
}
