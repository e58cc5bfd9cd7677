#!/usr/bin/env bash
# What the fleet tests (tests/tests/fleet_*.rs) need beyond servers.sh, when missing: openssl
# (a throwaway CA for OTLP over TLS), systemd-analyze (the unit check), nginx (a prefork
# server) and wrk (load for it). A policy-rc.d keeps nginx from starting its own daemon on
# port 80: the tests start private instances on free ports.
set -euo pipefail

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
[[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)

if ((${#need_apt[@]})); then
    echo "setup: installing ${need_apt[*]}"
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    ((created_policy)) && rm -f "$policy"
    if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl stop nginx || true
    fi
fi
exit 0
