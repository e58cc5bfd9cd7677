#!/usr/bin/env bash
# Installs the language runtimes of the timeout scenario suite when missing: a JDK (javac and
# java: the JVM scenarios are compiled at test time), Go (go build at test time), Node, ssh
# and Perl clients, Python's requests. Nothing here starts a daemon (policy-rc.d forbids it
# during the install).
set -euo pipefail

need_apt=()
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
command -v go >/dev/null || need_apt+=(golang-go)
command -v node >/dev/null || need_apt+=(nodejs)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v perl >/dev/null || need_apt+=(perl)
python3 -c 'import requests' 2>/dev/null || need_apt+=(python3-requests)

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
