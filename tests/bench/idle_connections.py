#!/usr/bin/env python3
"""/metrics latency of a lookout agent while 1,000 idle connections are open to its API.

Slowloris-style clients (connected, never sending a byte) must not slow the scrape: the
connection limit and the header-read timeout bound what they hold, and RLIMIT_NOFILE is
raised at start so they do not exhaust the fds. Prints p50/p99/max of N scrapes with and
without the idle connections. Usage (after `cargo build --release -p lookout-agent`):

    python3 tests/bench/idle_connections.py [--idle 1000] [--scrapes 500] [--bin PATH]

Target: p99 within 50 ms with 1,000 idle connections.
"""
import argparse, http.client, os, resource, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_times(port, n):
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        out.append((time.perf_counter() - t) * 1000)
    conn.close()
    return out


def summary(name, ms):
    ms = sorted(ms)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print(f"{name}: scrapes={len(ms)} p50={p(0.5):.2f} ms p99={p(0.99):.2f} ms max={ms[-1]:.2f} ms")
    return p(0.99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--scrapes", type=int, default=500)
    ap.add_argument("--bin", default=os.path.join(TARGET, "release", "lookout"))
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="lookout-idle-")
    port = free_port()
    cfg = os.path.join(work, "lookout.toml")
    with open(cfg, "w") as f:
        # header_timeout above the run's length, so the idle connections stay for all of it.
        f.write(f'[agent]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{work}/data"\nheader_timeout = "10m"\n')
    log = open(os.path.join(work, "agent.log"), "w")
    agent = subprocess.Popen([a.bin, "run", "--config", cfg], stdout=log, stderr=log)
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("agent not ready")
            time.sleep(0.1)
        scrape_times(port, 20)  # warm up
        summary("no idle connections", scrape_times(port, a.scrapes))
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(a.idle)]
        time.sleep(1)
        p99 = summary(f"{a.idle} idle connections", scrape_times(port, a.scrapes))
        print(f"target p99 <= 50 ms: {'met' if p99 <= 50 else 'MISSED'}")
        for s in idle:
            s.close()
    finally:
        agent.terminate()
        agent.wait(10)


if __name__ == "__main__":
    main()
