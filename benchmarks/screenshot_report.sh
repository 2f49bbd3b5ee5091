#!/usr/bin/env bash
# Render an aedr HTML report (report.html or leaderboard.html) in headless Chromium and save a PNG.
#   benchmarks/screenshot_report.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]
# Needs Debian's `chromium` (apt-get install -y chromium) or CHROMIUM=/path/to/chrome.
set -euo pipefail
report="${1:?usage: $0 REPORT.html [OUT.png] [WIDTH,HEIGHT]}"
shot="${2:-${report%.html}.png}"
size="${3:-1400,3000}"
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [ -z "$browser" ]; then
  echo "chromium not found: apt-get install -y chromium (or set CHROMIUM=...)" >&2
  exit 3
fi
[ -f "$report" ] || { echo "no such report: $report" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
shot_abs="$(cd "$(dirname "$shot")" 2>/dev/null && pwd || { mkdir -p "$(dirname "$shot")" && cd "$(dirname "$shot")" && pwd; })/$(basename "$shot")"
rm -f "$shot_abs"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
  --user-data-dir="$profile" --window-size="$size" --screenshot="$shot_abs" "$url" >/dev/null 2>&1 || true
if [ ! -s "$shot_abs" ]; then
  echo "chromium produced no screenshot for $report" >&2
  exit 1
fi
echo "$shot_abs"
