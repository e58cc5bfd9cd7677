#!/usr/bin/env bash
# Installs Debian's chromium (headless browser for the status-page tests, tests/tests/page_*.rs)
# and a font for its text, when missing. Nothing starts on install (policy-rc.d).
set -euo pipefail

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need_apt+=(fonts-dejavu-core)

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
fi
