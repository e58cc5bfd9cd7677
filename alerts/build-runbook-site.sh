#!/usr/bin/env bash
# Build the central runbook site from alerts/runbooks/: a directory of static files that any
# web server (nginx, S3/GCS/Azure static hosting, GitHub Pages) serves with the same layout as
# every agent's own `/runbooks/<AlertName>`:
#
#   OUT/runbooks/<AlertName>/index.html   the guide as a page (what `runbook_url` opens)
#   OUT/runbooks/<AlertName>.md           the markdown itself
#   OUT/runbooks/index.html               the list
#
# Serve OUT at e.g. https://runbooks.example.org/ and set the one base everywhere:
#   agents:       [alerts] runbook_base_url = "https://runbooks.example.org/runbooks/"
#   Prometheus:   the `lookout_runbook_base_url` recording rule in alerts/lookout.rules.yml
#   dashboards:   the `runbook_base` variable = "https://runbooks.example.org"
# The site stays up when a host (and its agent) is sick; the agents' /runbooks/ is the fallback.
#
# Usage: alerts/build-runbook-site.sh OUT_DIR
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
src="$(cd "$(dirname "$0")" && pwd)/runbooks"
mkdir -p "$out/runbooks"

escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }

list=""
for md in "$src"/*.md; do
    name=$(basename "$md" .md)
    mkdir -p "$out/runbooks/$name"
    cp "$md" "$out/runbooks/$name.md"
    {
        printf '<!doctype html><html><head><meta charset="utf-8"><title>%s — lookout runbook</title>' "$name"
        printf '<style>body{max-width:60em;margin:2em auto;font:16px/1.5 sans-serif}pre{white-space:pre-wrap}</style>'
        printf '</head><body><pre>'
        escape <"$md"
        printf '</pre></body></html>\n'
    } >"$out/runbooks/$name/index.html"
    list+="<li><a href=\"$name/\">$name</a></li>"
done
printf '<!doctype html><html><head><meta charset="utf-8"><title>lookout runbooks</title></head><body><h1>lookout runbooks</h1><ul>%s</ul></body></html>\n' "$list" \
    >"$out/runbooks/index.html"
echo "runbook site: $out/runbooks/ ($(ls "$src"/*.md | wc -l) guides)"
