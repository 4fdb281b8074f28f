#!/usr/bin/env bash
# Screenshot a DART report.html the way a reader sees it, with headless Chromium (no network).
#   bash scripts/render_report.sh outputs/demo/report.html /tmp/report.png [WIDTH] [HEIGHT]
# Needs chromium (Debian: apt-get install -y chromium). The page is self-contained, so the
# browser is started with networking features off; a blank plot would mean a broken data URI.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH=1280] [HEIGHT=2400]" >&2
    exit 2
fi
html=$(realpath "$1")
png=$(realpath -m "$2")
width=${3:-1280}
height=${4:-2400}
[[ -f "$html" ]] || { echo "no such file: $html" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n "$browser" ]] || { echo "chromium not found (apt-get update && apt-get install -y chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$png")"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" \
    --screenshot="$png" --window-size="${width},${height}" "file://$html" 2>/dev/null
[[ -s "$png" ]] || { echo "chromium wrote no screenshot" >&2; exit 1; }
echo "$png"
