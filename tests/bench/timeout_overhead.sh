#!/usr/bin/env bash
# Sampler overhead of the timeout detector: CPU time lookout spends sampling a process of
# 500 threads at 10 Hz for 60 s (start-up and the 3 s before threads count as calm included),
# as % of one core (target <= 1 %), then the same for a JVM of 200 threads (its own ~14 and
# 186 Java threads, parked in Object.wait or waking every 50 ms in Thread.sleep). Targets:
#   parked  500 workers parked on futexes (the common case: one schedstat read per thread)
#   tick    500 workers waking every 50 ms (every look re-reads and decodes the syscall line;
#           like parked ones they are looked at once a second after 3 s without a peer wait)
# Usage: tests/bench/timeout_overhead.sh   (builds the debug lookout and the scenario bins;
#        LOOKOUT_BIN=.../release/lookout for release figures, SECONDS_PER_RUN=N to shorten)
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q -p lookout-agent -p lookout-e2e --bins
lookout="${LOOKOUT_BIN:-$target/debug/lookout}"
pool="$target/debug/scenario-pool-idle"
seconds=${SECONDS_PER_RUN:-60}

# report MODE THREADS "USER SYS REAL"
report() {
    read -r user sys real <<<"$3"
    awk -v m="$1" -v n="$2" -v u="$user" -v s="$sys" -v r="$real" 'BEGIN {
        printf "timeout sampler, %-10s %d threads, 10 Hz, %.1f s: cpu %.3f s = %.2f %% of one core\n",
               m, n, r, u + s, 100 * (u + s) / r }'
}

# utime+stime of the lookout process, from the shell's own accounting of its child.
TIMEFORMAT='%U %S %R'
for mode in parked tick; do
    "$pool" 500 "$mode" >/dev/null &
    pid=$!
    sleep 1
    threads=$(ls /proc/$pid/task | wc -l)
    t=$( { time "$lookout" diagnose "$pid" --seconds "$seconds" --hz 10 --json >/dev/null; } 2>&1 )
    kill "$pid"; wait "$pid" 2>/dev/null || true
    report "$mode" "$threads" "$t"
done

# The JVM: javac into a temp dir, then the same measurement.
jdir=$(mktemp -d)
trap 'rm -rf "$jdir"' EXIT
javac -d "$jdir" tests/scenarios/jvm/Scenarios.java
for mode in parked tick; do
    java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss256k -Xmx64m -XX:-UsePerfData \
        -cp "$jdir" Scenarios threads 186 "$mode" >"$jdir/out" &
    pid=$!
    until grep -q ready "$jdir/out" 2>/dev/null; do sleep 0.2; done
    sleep 1
    threads=$(ls /proc/$pid/task | wc -l)
    t=$( { time "$lookout" diagnose "$pid" --seconds "$seconds" --hz 10 --json >/dev/null; } 2>&1 )
    kill "$pid"; wait "$pid" 2>/dev/null || true
    report "jvm-$mode" "$threads" "$t"
done
