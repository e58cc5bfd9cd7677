//! Timeout scenario: a thread waits on a (glibc pthread) mutex another thread holds and never
//! releases — a lock wait with no timeout. The holder sleeps forever inside the critical
//! section. Uses pthread_mutex_t, as C/C++ servers do, so the owner is visible in the mutex.

use std::time::Duration;

static mut LOCK: libc::pthread_mutex_t = libc::PTHREAD_MUTEX_INITIALIZER;

fn lock() {
    // SAFETY: LOCK is a valid, initialized, process-wide mutex that is never moved.
    unsafe { libc::pthread_mutex_lock(&raw mut LOCK) };
}

fn main() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("holder".into())
        .spawn(move || {
            lock();
            tx.send(()).unwrap();
            // Never lets go (bounded: one hour).
            std::thread::sleep(Duration::from_secs(3600));
        })
        .unwrap();
    rx.recv().unwrap();
    println!("ready");
    lock();
}
