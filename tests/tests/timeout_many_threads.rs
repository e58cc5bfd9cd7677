//! A watched service with 5,000 threads and an agent whose RLIMIT_NOFILE is 2,048: the
//! timeout sampler (two fds per followed thread) takes only the fd budget left after the
//! HTTP connections and the reserve, so the API keeps accepting connections, and the threads
//! it could not follow show in `lookout_timeout_unsampled_threads` instead of silently.

use lookout_e2e::{Agent, free_port, spawn_test_child, wait_for};
use std::time::Duration;

const THREADS: usize = 5000;

fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn five_thousand_threads_do_not_exhaust_the_agents_fds() {
    // Inherited by the agent (nextest runs each test in its own process).
    let lim = libc::rlimit {
        rlim_cur: 2048,
        rlim_max: 2048,
    };
    // SAFETY: setrlimit on this test process only.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let port = free_port();
    let _svc = spawn_test_child(env!("CARGO_BIN_EXE_lookout-test-child"), THREADS, 0.0, port);
    let pid = _svc.0.id();
    wait_for("5,000 threads", Duration::from_secs(30), || {
        let n = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count();
        (n > THREADS).then_some(())
    });
    let agent = Agent::start(&format!(
        r#"
[[service]]
name = "many"
match = {{ cmdline = "lookout-test-child --threads {THREADS} .*--port {port}$" }}

[detectors.timeout]
enabled = true
sample_hz = 10
"#
    ));
    let unsampled = wait_for(
        "unsampled threads reported",
        Duration::from_secs(60),
        || {
            agent
                .metric("lookout_timeout_unsampled_threads", &[("service", "many")])
                .filter(|&n| n > 0.0)
        },
    );
    // (2,048 - 512 reserve) / 4 = 384 fds for the sampler = 192 threads followed; the
    // connection limit is lowered to the other 1,152.
    assert!(
        unsampled >= (THREADS - 250) as f64 && unsampled <= THREADS as f64,
        "{unsampled} unsampled"
    );
    // The API still has fds: 100 connections at once, each answered.
    let url = agent.url("/healthz");
    let conns: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap())
        .collect();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || lookout_e2e::http_get(&url).map(|(s, _)| s))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Some(200));
    }
    drop(conns);
    let fds = fds_of(agent.child.id());
    println!("agent fds {fds} of 2048, unsampled threads {unsampled}");
    assert!(fds < 1024, "agent holds {fds} fds");
    assert!(
        !agent.log().contains("Too many open files"),
        "{}",
        agent.log()
    );
    assert!(
        agent
            .metrics()
            .contains("lookout_timeout_unsampled_threads")
    );
}
