//! Healthy scenario and overhead-bench target: a pool of N worker threads (default 16, first
//! argument) parked waiting for work that does not come. Must be `ok`. With `tick` as second
//! argument every worker instead wakes every 50 ms (the sampler's worst case: every thread
//! has run since the last look, so every syscall line is re-read and decoded). With `churn`
//! threads come and go all the time (each lives ~20 ms): threads that exit between being
//! listed and being read must not disturb a diagnosis.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
    let tick = std::env::args().nth(2).as_deref() == Some("tick");
    if std::env::args().nth(2).as_deref() == Some("churn") {
        println!("ready");
        // Bounded: an hour of churn at most.
        for _ in 0..(3600 * 50) {
            let batch: Vec<_> = (0..n)
                .map(|_| std::thread::spawn(|| std::thread::sleep(Duration::from_millis(20))))
                .collect();
            for t in batch {
                let _ = t.join();
            }
        }
        return;
    }
    let work = Arc::new((Mutex::new(Vec::<u64>::new()), Condvar::new()));
    let (_tx, rx) = std::sync::mpsc::channel::<u64>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let work = work.clone();
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .stack_size(64 << 10)
            .spawn(move || {
                if tick {
                    for _ in 0..72_000 {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                } else if i % 2 == 0 {
                    // Condition-variable pool.
                    let (lock, cv) = &*work;
                    let mut q = lock.lock().unwrap();
                    while q.is_empty() {
                        q = cv.wait(q).unwrap();
                    }
                } else {
                    // Channel pool: the receiver mutex is contended by the idle workers,
                    // as in the classic `Arc<Mutex<Receiver>>` pool — still just idle.
                    let _ = rx.lock().map(|r| r.recv_timeout(Duration::from_secs(3600)));
                }
            })
            .unwrap();
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(3600));
}
