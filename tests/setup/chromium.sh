#!/usr/bin/env bash
# Installs Debian's chromium (headless browser for the status-page tests, tests/tests/page_*.rs)
# and a font for its text, when missing. Nothing starts on install (policy-rc.d).
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need_apt+=(fonts-dejavu-core)

if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
fi
