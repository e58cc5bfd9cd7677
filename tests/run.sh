#!/usr/bin/env bash
# The test command of the README: installs whatever real servers the tests need when missing,
# builds the workspace, and runs every test (cargo tests through nextest, then the checks under
# tests/checks/ such as promtool). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

for setup in tests/setup/*.sh; do
    bash "$setup"
done
export PATH="${AZURITE_PREFIX:-/opt/azurite}/node_modules/.bin:$PATH"

# The examples too: they are what a service embedding the cache or the tracker writes, and
# tests/tests/*_example.rs run them.
cargo build --workspace --bins --examples
export LOOKOUT_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/lookout"

status=0
cargo nextest run --workspace --no-fail-fast --profile ci || status=1

for check in tests/checks/*.sh; do
    [[ -e $check ]] || continue
    echo "check: $check"
    if bash "$check"; then
        echo "check passed: $check"
    else
        echo "check FAILED: $check"
        status=1
    fi
done
exit $status
