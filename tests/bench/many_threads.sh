#!/usr/bin/env bash
# A watched service of 5,000 parked threads under the daemon's timeout detector (10 Hz): the
# agent's CPU over BENCH_SECONDS (default 30) as % of one core, its fds, and the threads left
# unsampled; once with the machine's RLIMIT_NOFILE and once with 2,048 (where the sampler's fd
# budget leaves most threads unsampled instead of exhausting the agent's fds).
# Usage: tests/bench/many_threads.sh   (LOOKOUT_BIN=.../release/lookout for release figures)
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q -p lookout-agent --bin lookout -p lookout-e2e --bin lookout-test-child
lookout="${LOOKOUT_BIN:-$target/debug/lookout}"
child="$target/debug/lookout-test-child"
seconds=${BENCH_SECONDS:-30}
threads=${THREADS:-5000}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# cpu_ticks PID: utime + stime of PID in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

svc_port=$(port)
"$child" --threads "$threads" --ready-after 0 --port "$svc_port" &
pids+=($!)
svc=$!
until [ "$(ls /proc/$svc/task | wc -l)" -gt "$threads" ]; do sleep 0.2; done

run() { # run LABEL NOFILE
    local api; api=$(port)
    cat >"$work/lookout.toml" <<TOML
[agent]
listen = "127.0.0.1:$api"
interval = "1s"
data_dir = "$work/data-$1"

[[service]]
name = "many"
match = { cmdline = "lookout-test-child --threads $threads .*--port $svc_port\$" }

[detectors.timeout]
enabled = true
sample_hz = 10
TOML
    if [ "$2" = default ]; then
        "$lookout" run --config "$work/lookout.toml" >"$work/log-$1" 2>&1 &
    else
        prlimit --nofile="$2:$2" "$lookout" run --config "$work/lookout.toml" >"$work/log-$1" 2>&1 &
    fi
    local agent=$!
    pids+=($agent)
    until curl -sf "127.0.0.1:$api/readyz" >/dev/null; do sleep 0.2; done
    sleep 5 # the service is found and its threads opened
    local t0 c0 t1 c1
    t0=$(date +%s.%N); c0=$(cpu_ticks "$agent")
    sleep "$seconds"
    t1=$(date +%s.%N); c1=$(cpu_ticks "$agent")
    local fds unsampled
    fds=$(ls "/proc/$agent/fd" | wc -l)
    unsampled=$(curl -s "127.0.0.1:$api/metrics" | awk '/^lookout_timeout_unsampled_threads\{.*service="many"/ {print $2}')
    awk -v l="$1" -v n="$threads" -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v f="$fds" -v u="${unsampled:-?}" 'BEGIN {
        printf "%-16s %d threads watched at 10 Hz: agent cpu %.2f s in %.1f s = %.2f %% of one core, %d fds, %s threads unsampled\n",
               l, n, c / hz, t1 - t0, 100 * c / hz / (t1 - t0), f, u }'
    kill "$agent"; wait "$agent" 2>/dev/null || true
}
run "nofile=$(ulimit -Hn)" default
run "nofile=2048" 2048
