#!/usr/bin/env bash
# Installs the language runtimes of the timeout scenario suite when missing: a JDK (javac and
# java: the JVM scenarios are compiled at test time), Go (go build at test time), Node, ssh
# and Perl clients, Python's requests. Nothing here starts a daemon (policy-rc.d forbids it
# during the install).
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"

need_apt=()
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
command -v go >/dev/null || need_apt+=(golang-go)
command -v node >/dev/null || need_apt+=(nodejs)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v perl >/dev/null || need_apt+=(perl)
python3 -c 'import requests' 2>/dev/null || need_apt+=(python3-requests)

if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
fi
