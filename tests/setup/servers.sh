#!/usr/bin/env bash
# Installs the real servers the tests talk to, when missing: Debian packages (started by
# nothing: a policy-rc.d forbids daemons from starting on install) and Azurite from npm.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v prometheus-node-exporter >/dev/null || need_apt+=(prometheus-node-exporter)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
command -v nc.openbsd >/dev/null || need_apt+=(netcat-openbsd)
command -v curl >/dev/null || need_apt+=(curl)
command -v wget >/dev/null || need_apt+=(wget)

if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
    # Packages may still have started their daemons (on default ports): stop them, the tests
    # start private instances.
    for unit in prometheus prometheus-alertmanager etcd prometheus-node-exporter redis-server; do
        if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
            systemctl stop "$unit" || true
        fi
    done
fi

AZURITE_PREFIX=${AZURITE_PREFIX:-/opt/azurite}
if [[ ! -x $AZURITE_PREFIX/node_modules/.bin/azurite-blob ]]; then
    echo "setup: installing azurite@3.35.0 into $AZURITE_PREFIX"
    mkdir -p "$AZURITE_PREFIX"
    npm install --silent --no-audit --no-fund --prefix "$AZURITE_PREFIX" azurite@3.35.0 >/dev/null
fi
