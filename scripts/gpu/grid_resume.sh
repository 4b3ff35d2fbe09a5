#!/usr/bin/env bash
# Continue a grid sweep on a GPU machine within one time-limited job: copy the sweep file from the
# working tree into $OUT, resume it there (--resume, --stop-after-s), and leave the updated file in
# $OUT to copy back into the tree before the next job. Nothing measured is lost if the job is cut:
# the file is flushed after every point.
# Usage: scripts/gpu/grid_resume.sh BIN FILE [measure flags...]
#   e.g. STOP=440 scripts/gpu/grid_resume.sh target/release/energy-fit data/llama-3.1-8b-h100.csv \
#        --llm llama-3.1-8b --inputs 2048 --outputs 512
# Env: STOP (seconds after which no new point starts, default 440), LIMIT (hard limit, default 590).
set -u -o pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BIN FILE [measure flags...] (got $# arguments)" >&2
    exit 2
fi
BIN="$1"; FILE="$2"; shift 2
[ -x "$BIN" ] || { echo "error: BIN $BIN: not an executable file (build one: scripts/dev_binary.sh)" >&2; exit 2; }
OUT="${OUT:-/tmp/energy-fit-grid}"
mkdir -p "$OUT"
DST="$OUT/$(basename "$FILE")"
[ -f "$FILE" ] && cp "$FILE" "$DST"
timeout "${LIMIT:-590}" "$BIN" measure "$@" --resume --stop-after-s "${STOP:-440}" --out "$DST" --quiet 2>&1 | tail -3
echo "rows: $(($(wc -l < "$DST") - 1)) in $DST"
