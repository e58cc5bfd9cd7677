#!/usr/bin/env python3
"""False alarms of the agent's alerts on a quiet host, with services starting and stopping.

A quiet host has nothing to page about: every alert the agent raises here is a false alarm
(target: 0 in 30 minutes). The run: the agent with its default rules and detectors (anomaly
and timeout on, 1 s interval) watching 4 services — `sleep` processes that start and stop
on a fixed pseudo-random schedule (up 40-150 s, down 20-90 s), ready at once, well within
their expected threads — plus unwatched processes coming and going, and alerts sent to a
real Alertmanager (prometheus-alertmanager) that routes them to a webhook receiver here.

Counted: alert instances that fired at the agent (polled every second from /api/v1/alerts),
and alerts that reached the receiver through Alertmanager, per alert name; plus the
resolutions for the firings (each should come back). Prints the figures and the rate per
hour. Usage (after `cargo build -p lookout-agent`; a release build works the same):

    python3 tests/bench/quiet_host_alerts.py [--minutes 30] [--bin PATH]

Everything runs on free loopback ports in a temporary directory and is stopped at the end.
"""
import argparse, collections, http.server, json, os, random, shutil, signal, socket
import subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ok(url, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


class Webhook(http.server.BaseHTTPRequestHandler):
    received = []  # (time, status, labels)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        with Webhook.lock:
            for a in payload.get("alerts", []):
                Webhook.received.append((time.time(), a.get("status"), a.get("labels", {})))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--bin", default=os.path.join(TARGET, "debug", "lookout"))
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="lookout-quiet-")
    # A private copy: a rebuild during the run must not change the binary under test.
    binary = os.path.join(work, "lookout")
    shutil.copy2(args.bin, binary)
    procs = []
    watched = {}

    def stop_all():
        for p in list(watched.values()) + procs:
            if p and p.poll() is None:
                p.kill()
                p.wait()

    try:
        hook_port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Webhook)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        am_port = free_port()
        am_cfg = os.path.join(work, "am.yml")
        with open(am_cfg, "w") as f:
            f.write(f"""route:
  receiver: hook
  group_by: [alertname, host]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: "http://127.0.0.1:{hook_port}/", send_resolved: true}}]
""")
        am = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={am_cfg}",
             f"--storage.path={work}/am", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(am)
        wait_ok(f"http://127.0.0.1:{am_port}/-/ready")

        tag = f"{os.getpid()}"
        services = [f"quiet-{i}" for i in range(4)]
        port = free_port()
        cfg = os.path.join(work, "lookout.toml")
        with open(cfg, "w") as f:
            f.write(f"""[agent]
listen = "127.0.0.1:{port}"
interval = "1s"
data_dir = "{work}/data"
host = "quiet-host"

[alerts]
alertmanager = ["http://127.0.0.1:{am_port}"]
""")
            for i, name in enumerate(services):
                f.write(f"""
[[service]]
name = "{name}"
match = {{ cmdline = "^sleep 86400\\\\.{i}{tag}$" }}
ready = {{ exec = ["true"] }}
expected_max_threads = 10
cold_start_budget = "60s"
""")
        log = open(os.path.join(work, "agent.log"), "w")
        agent = subprocess.Popen([binary, "run", "--config", cfg], stdout=log, stderr=log)
        procs.append(agent)
        wait_ok(f"http://127.0.0.1:{port}/readyz")
        print(f"quiet host: agent {binary} on :{port}, Alertmanager :{am_port}, "
              f"{len(services)} services starting and stopping, {args.minutes:g} min", flush=True)

        rng = random.Random(args.seed)
        # Per service: when it next changes state.
        next_change = {i: time.monotonic() + rng.uniform(0, 30) for i in range(len(services))}
        churn_next = time.monotonic() + 5
        starts = stops = churned = 0
        fired = {}  # (alertname, labels json, startsAt) -> first seen
        polls = poll_errors = 0
        start = time.monotonic()
        end = start + args.minutes * 60
        last_report = start
        while time.monotonic() < end:
            now = time.monotonic()
            for i in range(len(services)):
                if now < next_change[i]:
                    continue
                p = watched.get(i)
                if p is None or p.poll() is not None:
                    watched[i] = subprocess.Popen(["sleep", f"86400.{i}{tag}"])
                    starts += 1
                    next_change[i] = now + rng.uniform(40, 150)
                else:
                    p.terminate()
                    p.wait()
                    watched[i] = None
                    stops += 1
                    next_change[i] = now + rng.uniform(20, 90)
            if now >= churn_next:
                # Unwatched processes come and go too (cron jobs, shells).
                n = rng.randint(1, 4)
                procs.extend(subprocess.Popen(["sleep", str(rng.uniform(1, 20))]) for _ in range(n))
                procs[:] = [p for p in procs if p.poll() is None or p in (am, agent)]
                churned += n
                churn_next = now + rng.uniform(5, 30)
            try:
                for a in get_json(f"http://127.0.0.1:{port}/api/v1/alerts"):
                    if a.get("status", {}).get("state") != "active":
                        continue
                    key = (a["labels"]["alertname"], json.dumps(a["labels"], sort_keys=True),
                           a["startsAt"])
                    if key not in fired:
                        fired[key] = now - start
                        print(f"  {now - start:7.0f} s  FIRED {a['labels']['alertname']} "
                              f"{a['annotations'].get('summary', '')}", flush=True)
                polls += 1
            except (OSError, ValueError):
                poll_errors += 1
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited ({agent.returncode}); see {work}/agent.log")
            if now - last_report >= 300:
                last_report = now
                print(f"  {now - start:7.0f} s  {starts} starts, {stops} stops, "
                      f"{len(fired)} alerts so far", flush=True)
            time.sleep(1)

        # Let Alertmanager flush the last group, then read what reached the receiver.
        time.sleep(7)
        with Webhook.lock:
            received = list(Webhook.received)
        minutes = (time.monotonic() - start) / 60
        per_name = collections.Counter(k[0] for k in fired)
        delivered = collections.Counter(l.get("alertname") for _, s, l in received if s == "firing")
        resolved = collections.Counter(l.get("alertname") for _, s, l in received if s == "resolved")
        print()
        print(f"figure: quiet host {minutes:.1f} min, {starts} service starts, {stops} stops, "
              f"{churned} unwatched processes, {polls} polls ({poll_errors} failed)")
        print(f"figure: alerts fired at the agent: {len(fired)} "
              f"({len(fired) / minutes * 60:.2f} per hour); by name: {dict(per_name) or '{}'}")
        print(f"figure: AnomalyDetected fired: {per_name.get('AnomalyDetected', 0)}")
        print(f"figure: alerts at the receiver through Alertmanager: firing "
              f"{sum(delivered.values())} {dict(delivered) or '{}'}, resolved "
              f"{sum(resolved.values())} {dict(resolved) or '{}'}")
        print(f"false alarms: {len(fired)} (target 0)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        time.sleep(1)
        stop_all()
        print(f"(work dir kept for inspection: {work})")


if __name__ == "__main__":
    sys.exit(main())
