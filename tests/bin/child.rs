//! A watched-service stand-in for the daemon tests: starts `--threads N` extra threads that
//! park, waits `--ready-after SECS`, then listens on `--port P` (its readiness) until killed.

use std::net::TcpListener;
use std::time::Duration;

fn main() {
    let mut threads = 0usize;
    let mut ready_after = 0.0f64;
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--threads" => threads = v.parse().expect("--threads N"),
            "--ready-after" => ready_after = v.parse().expect("--ready-after SECS"),
            "--port" => port = v.parse().expect("--port P"),
            other => panic!("unknown flag {other}"),
        }
    }
    for _ in 0..threads {
        std::thread::spawn(|| {
            loop {
                std::thread::park();
            }
        });
    }
    std::thread::sleep(Duration::from_secs_f64(ready_after));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for conn in listener.incoming() {
        drop(conn);
    }
}
