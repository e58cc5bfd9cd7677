//! Healthy scenario and overhead-bench target: a pool of N worker threads (default 16, first
//! argument) parked waiting for work that does not come, plus a few timers. Must be `ok`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
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
                if i % 2 == 0 {
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
