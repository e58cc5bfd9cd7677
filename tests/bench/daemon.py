#!/usr/bin/env python3
"""Benchmark of the lookout daemon against Prometheus node_exporter, in the same run.

Default config plus 10 watched services at a 1 s interval: RSS, CPU over the window, /metrics
latency p50/p99 and exec-to-ready time; the same figures for node_exporter (default
collectors), and the ratios. Usage (after `cargo build --release -p lookout-agent -p lookout-e2e`):

    python3 tests/bench/daemon.py [--seconds 60] [--scrapes 1000]

It starts everything on free loopback ports and stops it all when done.
"""
import argparse, http.client, os, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, ticks


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def wait_http(port, path, timeout=30.0, want=200):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == want:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"127.0.0.1:{port}{path} never answered {want}")


def scrape_latencies(port, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/metrics")
        r = c.getresponse()
        r.read()
        out.append((time.perf_counter() - t) * 1000)
    c.close()
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99) - 1]


def measure(name, argv, port, ready_path, seconds, scrapes, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        ready_at = wait_http(port, ready_path)
        ready_ms = (ready_at - t0) * 1000
        self_ms = None
        if name == "lookout":
            # The agent records its own figure a few ms after /readyz turns 200.
            deadline = time.monotonic() + 2
            while self_ms is None and time.monotonic() < deadline:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/metrics")
                for line in c.getresponse().read().decode().splitlines():
                    if line.startswith("lookout_agent_cold_start_seconds "):
                        self_ms = float(line.split()[1]) * 1000
                c.close()
                time.sleep(0.01)
        time.sleep(2)  # let it settle
        ticks0, w0 = proc_stat(p.pid), time.monotonic()
        rss_samples = []
        while time.monotonic() - w0 < seconds:
            rss_samples.append(rss_kib(p.pid))
            time.sleep(1)
        ticks1, w1 = proc_stat(p.pid), time.monotonic()
        cpu_pct = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") / (w1 - w0) * 100
        p50, p99 = scrape_latencies(port, scrapes)
        rss_after = rss_kib(p.pid)
        # Where the resident memory is: the heap and stacks, or pages of the binary and libraries.
        anon, file = status_kib(p.pid, "RssAnon"), status_kib(p.pid, "RssFile")
        return {
            "anon_mib": anon / 1024,
            "file_mib": file / 1024,
            "name": name,
            "rss_mib": max(rss_samples + [rss_after]) / 1024,
            "cpu_pct": cpu_pct,
            "p50_ms": p50,
            "p99_ms": p99,
            "ready_ms": ready_ms,
            "self_ms": self_ms,
        }
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--profile", default="release")
    args = ap.parse_args()
    lookout = os.path.join(TARGET, args.profile, "lookout")
    child = os.path.join(TARGET, args.profile, "lookout-test-child")
    if not os.path.exists(child):
        child = os.path.join(TARGET, "debug", "lookout-test-child")
    node_exporter = shutil.which("prometheus-node-exporter")
    for path in (lookout, child):
        if not os.path.exists(path):
            sys.exit(f"{path} missing: cargo build --{args.profile} -p lookout-agent -p lookout-e2e")
    if not node_exporter:
        sys.exit("prometheus-node-exporter missing: apt-get install prometheus-node-exporter")

    work = tempfile.mkdtemp(prefix="lookout-bench-")
    children = []
    try:
        services = []
        for i in range(10):
            port = free_port()
            children.append(subprocess.Popen([child, "--threads", str(4 + i), "--ready-after", "0", "--port", str(port)]))
            services.append(
                f'[[service]]\nname = "svc{i}"\nmatch = {{ cmdline = \'lookout-test-child .*--port {port}$\' }}\n'
                f'ready = {{ tcp = "127.0.0.1:{port}" }}\nexpected_max_threads = 100\n'
            )
        lport = free_port()
        config = os.path.join(work, "lookout.toml")
        with open(config, "w") as f:
            f.write(f'[agent]\nlisten = "127.0.0.1:{lport}"\ninterval = "1s"\ndata_dir = "{work}/data"\n\n' + "\n".join(services))
        time.sleep(0.5)
        env = dict(os.environ, LOOKOUT_LOG="warn")
        a = measure("lookout", [lookout, "run", "--config", config], lport, "/readyz", args.seconds, args.scrapes, env)
        nport = free_port()
        b = measure("node_exporter", [node_exporter, f"--web.listen-address=127.0.0.1:{nport}"], nport, "/metrics", args.seconds, args.scrapes)
    finally:
        for c in children:
            c.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'':15} {'RSS MiB':>9} {'CPU %':>8} {'p50 ms':>8} {'p99 ms':>8} {'ready ms':>9}")
    for r in (a, b):
        print(f"{r['name']:15} {r['rss_mib']:9.2f} {r['cpu_pct']:8.3f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['ready_ms']:9.1f}")
    for r in (a, b):
        print(f"{r['name']} resident at the end: {r['anon_mib']:.2f} MiB anonymous (heap, stacks), {r['file_mib']:.2f} MiB file-backed (binary, libraries)")
    if a["self_ms"] is not None:
        print(f"lookout's own exec-to-ready (lookout_agent_cold_start_seconds): {a['self_ms']:.1f} ms")
    def ratio(k):
        return a[k] / b[k] if b[k] else float("nan")
    print(f"{'ratio':15} {ratio('rss_mib'):9.2f} {ratio('cpu_pct'):8.2f} {ratio('p50_ms'):8.2f} {ratio('p99_ms'):8.2f} {ratio('ready_ms'):9.2f}")
    print("targets: RSS <= 15 MiB, CPU <= 0.5 %, p50 <= 2 ms, ready <= 100 ms; lower than node_exporter on RSS and p50")


if __name__ == "__main__":
    main()
