# Sourced by the tests/setup/*.sh scripts (this folder is not run by tests/run.sh itself).
# apt_install PKG...: installs Debian packages non-interactively under a policy-rc.d that
# forbids starting daemons, so no package starts its server on a default port: the tests start
# private instances on free ports with their own data dirs.
apt_install() {
    (($#)) || return 0
    echo "setup: installing $*"
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if ((created_policy)); then
        rm -f "$policy"
    fi
}
