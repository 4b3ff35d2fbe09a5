#!/usr/bin/env bash
# Look at the report as a reader would: render REPORT_DIR/report.md to HTML and take headless
# Chromium screenshots of the whole page and of every SVG figure (PNG, into REPORT_DIR/screenshots).
# Installs Debian's `chromium` with apt-get when it is missing.
# Usage: scripts/report-screenshots.sh [REPORT_DIR=reports]
set -euo pipefail
dir=${1:-reports}
[ -f "$dir/report.md" ] || { echo "no $dir/report.md: run 'energy-fit report --out $dir' first" >&2; exit 1; }
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ]; then
  echo "installing chromium (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  chrome=$(command -v chromium)
fi
here=$(cd "$(dirname "$0")" && pwd)
# Page text in the repository's DejaVu Sans too, so the page needs no installed font either.
python3 "$here/md2html.py" "$dir/report.md" "$dir/report.html" "file://$(realpath "$here/../assets/fonts/DejaVuSans.ttf")"
shots="$dir/screenshots"
mkdir -p "$shots"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
shoot() { # URL OUT WIDTH HEIGHT
  "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size="$3,$4" \
    --screenshot="$(realpath -m "$2")" "$1" >/dev/null 2>&1
}
abs=$(realpath "$dir")
shoot "file://$abs/report.html" "$shots/report-page.png" 1500 6000
shoot "file://$abs/report.html" "$shots/report-top.png" 1200 1300
for svg in "$dir"/*.svg; do
  [ -e "$svg" ] || continue
  size=$(grep -o '<svg[^>]*' "$svg" | head -1 | sed -E 's/.*width="([0-9]+)".*height="([0-9]+)".*/\1 \2/')
  read -r w h <<<"$size"
  shoot "file://$abs/$(basename "$svg")" "$shots/$(basename "${svg%.svg}").png" "${w:-900}" "${h:-700}"
done
ls "$shots"
