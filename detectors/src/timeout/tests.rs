//! Unit tests of the timeout classification on synthetic samples.

use super::*;

fn client(inode: u64, peer: &str) -> Party {
    Party::Socket {
        inode,
        role: Role::Client,
        state: "ESTABLISHED".into(),
        peer: Some(peer.into()),
        bytes: None,
        link: None,
    }
}

fn call(syscall: &str, timeout: Timeout, parties: Vec<Party>) -> Call {
    Call {
        syscall: syscall.into(),
        timeout,
        timeout_source: TimeoutSource::Argument,
        parties,
        site: 0x1234,
    }
}

fn thread(tid: i32, state: ThreadState, wakeups: u64, io: (u64, u64)) -> ThreadSample {
    ThreadSample {
        tid,
        comm: "t".into(),
        state,
        wakeups,
        blocked_since: None,
        io: Some(io),
    }
}

fn cfg() -> DetectorConfig {
    DetectorConfig {
        quiet_period: 2.0,
        max_timeout: 60.0,
        ..DetectorConfig::default()
    }
}

/// Feed `n` samples 0.1 s apart, built by `f(i)`.
fn run(det: &mut ProcessDetector, n: usize, mut f: impl FnMut(usize) -> Vec<ThreadSample>) {
    for i in 0..n {
        det.observe(&ProcessSample {
            at: 100.0 + i as f64 * 0.1,
            threads: f(i),
        });
    }
}

#[test]
fn client_read_without_timeout_past_threshold_is_missing() {
    let mut det = ProcessDetector::new(cfg());
    let c = call(
        "recvfrom",
        Timeout::Infinite,
        vec![client(7, "10.0.0.1:80")],
    );
    run(&mut det, 10, |_| {
        vec![thread(1, ThreadState::Blocked(c.clone()), 5, (10, 10))]
    });
    assert!(det.suspects().is_empty(), "1 s is below the 2 s threshold");
    run(&mut det, 30, |_| {
        vec![thread(1, ThreadState::Blocked(c.clone()), 5, (10, 10))]
    });
    // The second run restarts the clock at 100 s: the stall began at 100 s, now 102.9 s.
    let s = det.suspects();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].verdict, Verdict::MissingTimeout);
    assert_eq!(s[0].peer, "10.0.0.1:80");
}

#[test]
fn blocked_since_from_the_kernel_counts_time_before_the_first_sample() {
    let mut det = ProcessDetector::new(cfg());
    let c = call(
        "recvfrom",
        Timeout::Infinite,
        vec![client(7, "10.0.0.1:80")],
    );
    let mut t = thread(1, ThreadState::Blocked(c), 5, (0, 0));
    t.blocked_since = Some(50.0);
    det.observe(&ProcessSample {
        at: 100.0,
        threads: vec![t],
    });
    let s = det.suspects();
    assert_eq!(s[0].verdict, Verdict::MissingTimeout);
    assert!((s[0].blocked_seconds - 50.0).abs() < 1e-9);
}

#[test]
fn servers_pools_sleepers_and_terminals_are_ok() {
    let mut det = ProcessDetector::new(cfg());
    let listener = Party::Socket {
        inode: 1,
        role: Role::Listener,
        state: "LISTEN".into(),
        peer: None,
        bytes: None,
        link: None,
    };
    let accepted = Party::Socket {
        inode: 2,
        role: Role::Accepted,
        state: "ESTABLISHED".into(),
        peer: Some("127.0.0.1:5555".into()),
        bytes: None,
        link: None,
    };
    let states = [
        call(
            "epoll_wait",
            Timeout::Infinite,
            vec![listener, client(3, "1.2.3.4:5")],
        ),
        call("recvfrom", Timeout::Infinite, vec![accepted]),
        call("futex", Timeout::Infinite, vec![Party::Park]),
        call("nanosleep", Timeout::Finite(1000.0), vec![Party::Sleep]),
        call("read", Timeout::Infinite, vec![Party::Stream]),
        call(
            "poll",
            Timeout::Infinite,
            vec![Party::Stream, client(9, "1.2.3.4:22")],
        ),
        call("wait4", Timeout::Infinite, vec![Party::Child]),
    ];
    run(&mut det, 100, |_| {
        states
            .iter()
            .enumerate()
            .map(|(i, c)| thread(i as i32 + 1, ThreadState::Blocked(c.clone()), 1, (0, 0)))
            .collect()
    });
    assert!(det.suspects().is_empty(), "{:?}", det.suspects());
}

#[test]
fn large_finite_timeout_is_too_large_and_small_unexpired_is_fine() {
    let mut det = ProcessDetector::new(cfg());
    let large = call(
        "poll",
        Timeout::Finite(3600.0),
        vec![client(7, "10.0.0.1:80")],
    );
    let fine = call(
        "poll",
        Timeout::Finite(10.0),
        vec![client(8, "10.0.0.2:80")],
    );
    run(&mut det, 40, |_| {
        vec![
            thread(1, ThreadState::Blocked(large.clone()), 1, (0, 0)),
            thread(2, ThreadState::Blocked(fine.clone()), 1, (0, 0)),
        ]
    });
    let s = det.suspects();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].verdict, Verdict::TooLargeTimeout);
    assert_eq!(s[0].tid, 1);
}

#[test]
fn re_armed_short_waits_on_a_silent_peer_are_a_missing_overall_timeout() {
    let mut det = ProcessDetector::new(cfg());
    let tick = call(
        "poll",
        Timeout::Finite(1.0),
        vec![client(7, "10.0.0.1:80"), Party::Local],
    );
    // Wakes every second (wakeups move), reads nothing.
    run(&mut det, 40, |i| {
        vec![thread(
            1,
            ThreadState::Blocked(tick.clone()),
            i as u64 / 10,
            (5, 5),
        )]
    });
    let s = det.suspects();
    assert_eq!(s[0].verdict, Verdict::MissingTimeout);
}

/// The same silent 1 s poll loop, as curl with the given command line, watched for 4 s.
fn curl_poll_loop(argv: &[&str]) -> Vec<Suspect> {
    let mut det = ProcessDetector::new(cfg());
    det.set_declared(declared_deadline(argv));
    let tick = call("poll", Timeout::Finite(1.0), vec![client(7, "10.0.0.1:80")]);
    run(&mut det, 40, |i| {
        vec![thread(
            1,
            ThreadState::Blocked(tick.clone()),
            i as u64 / 10,
            (5, 5),
        )]
    });
    det.suspects()
}

#[test]
fn a_user_space_deadline_comes_from_the_command_line_of_known_clients() {
    let large = curl_poll_loop(&["curl", "-s", "--max-time", "3600", "http://x/"]);
    assert_eq!(large[0].verdict, Verdict::TooLargeTimeout);
    assert_eq!(large[0].timeout, Timeout::Finite(3600.0));
    assert!(
        large[0].detail.contains("curl --max-time"),
        "{}",
        large[0].detail
    );
    let none = curl_poll_loop(&["curl", "-s", "http://x/"]);
    assert_eq!(none[0].verdict, Verdict::MissingTimeout);
    assert!(
        none[0].advice.contains("curl --max-time"),
        "{}",
        none[0].advice
    );
    // A short deadline not yet reached: it will give up in time.
    assert!(curl_poll_loop(&["curl", "-m", "20", "http://x/"]).is_empty());
    // Past 1.5 x its own deadline and still there: the deadline does not work.
    assert_eq!(
        curl_poll_loop(&["curl", "-m", "1", "http://x/"])[0].verdict,
        Verdict::MissingTimeout
    );
    // Programs the table does not know keep the kernel's view.
    assert_eq!(
        curl_poll_loop(&["wget", "-T", "3600", "http://x/"])[0].verdict,
        Verdict::MissingTimeout
    );
}

#[test]
fn retries_on_new_connections_with_nothing_back_are_too_small() {
    let mut det = ProcessDetector::new(cfg());
    // A new connection every 0.3 s, each waited on for 0.2 s, a short sleep between.
    run(&mut det, 12, |i| {
        let attempt = (i / 3) as u64;
        let state = if i % 3 == 2 {
            ThreadState::Blocked(call("nanosleep", Timeout::Finite(0.1), vec![Party::Sleep]))
        } else {
            ThreadState::Blocked(call(
                "poll",
                Timeout::Finite(0.2),
                vec![client(100 + attempt, "10.0.0.1:80")],
            ))
        };
        vec![thread(1, state, i as u64, (0, attempt * 40))]
    });
    let s = det.suspects();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].verdict, Verdict::TooSmallTimeout);
    assert!(s[0].attempts >= 3);
}

#[test]
fn retries_that_get_answers_are_healthy() {
    let mut det = ProcessDetector::new(cfg());
    run(&mut det, 60, |i| {
        let attempt = (i / 3) as u64;
        vec![thread(
            1,
            ThreadState::Blocked(call(
                "poll",
                Timeout::Finite(0.2),
                vec![client(100 + attempt, "10.0.0.1:80")],
            )),
            i as u64,
            // Every attempt reads its answer.
            (attempt * 100, attempt * 40),
        )]
    });
    assert!(det.suspects().is_empty(), "{:?}", det.suspects());
}

#[test]
fn lock_wait_with_holder_is_missing_timeout() {
    let mut det = ProcessDetector::new(cfg());
    let c = call(
        "flock",
        Timeout::Infinite,
        vec![Party::Lock {
            kind: "file lock".into(),
            holder: Some("pid 42 (flock)".into()),
            holder_tid: None,
        }],
    );
    run(&mut det, 30, |_| {
        vec![thread(1, ThreadState::Blocked(c.clone()), 1, (0, 0))]
    });
    let s = det.suspects();
    assert_eq!(s[0].verdict, Verdict::MissingTimeout);
    assert!(s[0].peer.contains("pid 42"));
}

#[test]
fn baseline_raises_the_threshold_of_a_site_known_to_wait_long_and_succeed() {
    let mut det = ProcessDetector::new(cfg());
    let c = call(
        "recvfrom",
        Timeout::Infinite,
        vec![client(7, "10.0.0.1:6379")],
    );
    // A subscriber: waits 5 s, then a message arrives (rchar moves).
    for round in 0..2u64 {
        for i in 0..50 {
            let at = 100.0 + round as f64 * 5.0 + i as f64 * 0.1;
            det.observe(&ProcessSample {
                at,
                threads: vec![thread(
                    1,
                    ThreadState::Blocked(c.clone()),
                    round,
                    (round * 10, 0),
                )],
            });
        }
    }
    // The first 5 s wait was flagged while it lasted; after it completed, 5 s waits are normal.
    assert!(det.baseline().threshold("recvfrom", 0x1234, 2.0) >= 9.0);
    assert!(det.suspects().is_empty(), "{:?}", det.suspects());
}

#[test]
fn verdict_is_the_worst_and_counts_group_by_call() {
    let mut det = ProcessDetector::new(cfg());
    let miss = call(
        "recvfrom",
        Timeout::Infinite,
        vec![client(7, "10.0.0.1:80")],
    );
    let large = call(
        "poll",
        Timeout::Finite(3600.0),
        vec![client(8, "10.0.0.1:81")],
    );
    let sample = ProcessSample {
        at: 0.0,
        threads: vec![
            thread(1, ThreadState::Blocked(miss.clone()), 0, (0, 0)),
            thread(2, ThreadState::Blocked(large.clone()), 0, (0, 0)),
            thread(3, ThreadState::Running, 0, (0, 0)),
        ],
    };
    let counts = blocked_counts(&sample);
    assert_eq!(counts.get(&("recvfrom".to_string(), true)), Some(&1));
    assert_eq!(counts.get(&("poll".to_string(), false)), Some(&1));
    run(&mut det, 30, |_| sample.threads.clone());
    let s = det.suspects();
    assert_eq!(ProcessDetector::verdict_of(&s), Verdict::MissingTimeout);
    assert_eq!(s[0].verdict, Verdict::MissingTimeout);
    assert_eq!(ProcessDetector::verdict_of(&[]), Verdict::Ok);
    assert_eq!(Timeout::Finite(0.2).contract_text(), "0.2");
    assert_eq!(Timeout::Finite(3600.0).contract_text(), "3600");
    assert_eq!(Timeout::Unknown.contract_text(), "infinite");
}

#[test]
fn a_mutex_held_by_a_parked_worker_is_an_idle_pool() {
    let mut det = ProcessDetector::new(cfg());
    let waiter = call(
        "futex",
        Timeout::Infinite,
        vec![Party::Lock {
            kind: "mutex".into(),
            holder: Some("thread 2 (worker)".into()),
            holder_tid: Some(2),
        }],
    );
    let parked = call("futex", Timeout::Infinite, vec![Party::Park]);
    let sleeping = call("nanosleep", Timeout::Finite(3600.0), vec![Party::Sleep]);
    run(&mut det, 30, |_| {
        vec![
            thread(1, ThreadState::Blocked(waiter.clone()), 0, (0, 0)),
            thread(2, ThreadState::Blocked(parked.clone()), 0, (0, 0)),
        ]
    });
    assert!(det.suspects().is_empty(), "{:?}", det.suspects());
    // The same wait while the holder sleeps inside the critical section is a hang.
    let mut det = ProcessDetector::new(cfg());
    run(&mut det, 30, |_| {
        vec![
            thread(1, ThreadState::Blocked(waiter.clone()), 0, (0, 0)),
            thread(2, ThreadState::Blocked(sleeping.clone()), 0, (0, 0)),
        ]
    });
    assert_eq!(det.suspects()[0].verdict, Verdict::MissingTimeout);
}

#[test]
fn fast_answered_attempts_are_not_timeouts_even_when_reads_are_invisible() {
    let mut det = ProcessDetector::new(cfg());
    // A new connection per request, each seen once while waiting (answered within a tick);
    // recv() does not move rchar, so only the spans tell these attempts did not expire.
    run(&mut det, 60, |i| {
        vec![thread(
            1,
            ThreadState::Blocked(call(
                "poll",
                Timeout::Finite(1.0),
                vec![client(100 + i as u64, "10.0.0.1:80")],
            )),
            i as u64,
            (0, 0),
        )]
    });
    assert!(det.suspects().is_empty(), "{:?}", det.suspects());
}

#[test]
fn bytes_arriving_on_the_same_connection_are_progress() {
    let mut det = ProcessDetector::new(cfg());
    // A slow download: poll wakes every second and data keeps arriving on the socket.
    run(&mut det, 60, |i| {
        let mut c = client(7, "10.0.0.1:80");
        if let Party::Socket { bytes, .. } = &mut c {
            *bytes = Some((i as u64 / 10 * 1000, 100));
        }
        vec![thread(
            1,
            ThreadState::Blocked(call("poll", Timeout::Finite(1.0), vec![c])),
            i as u64 / 10,
            (0, 0),
        )]
    });
    assert!(det.suspects().is_empty(), "{:?}", det.suspects());
}
