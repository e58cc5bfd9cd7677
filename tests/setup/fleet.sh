#!/usr/bin/env bash
# What the fleet tests (tests/tests/fleet_*.rs) need beyond servers.sh, when missing: openssl
# (a throwaway CA for OTLP over TLS), systemd-analyze (the unit check), nginx (a prefork
# server) and wrk (load for it). A policy-rc.d keeps nginx from starting its own daemon on
# port 80: the tests start private instances on free ports.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
[[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)

if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
    if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl stop nginx || true
    fi
fi
exit 0
