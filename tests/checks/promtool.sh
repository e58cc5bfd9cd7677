#!/usr/bin/env bash
# Checks the central alerting files: `promtool check rules` and `promtool test rules` on
# alerts/lookout.rules.yml, and `amtool check-config` on alerts/alertmanager.example.yml
# (also checking that its routes send page and ticket to different receivers).
set -euo pipefail
cd "$(dirname "$0")/../.."

promtool check rules alerts/lookout.rules.yml
promtool test rules alerts/lookout.rules.test.yml
amtool check-config alerts/alertmanager.example.yml

# The routing itself: page and ticket must land on different receivers.
page=$(amtool config routes test --config.file=alerts/alertmanager.example.yml severity=page alertname=X)
ticket=$(amtool config routes test --config.file=alerts/alertmanager.example.yml severity=ticket alertname=X)
echo "routes: page -> $page, ticket -> $ticket"
if [[ $page == "$ticket" ]]; then
    echo "alertmanager.example.yml routes page and ticket to the same receiver ($page)" >&2
    exit 1
fi
