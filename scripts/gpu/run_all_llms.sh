#!/usr/bin/env bash
# Every catalog LLM (random weights, its real structure) through the engine at the smallest and the
# largest grid point, prefill + decode, printing time and tokens/s per point (`energy-fit engine-run`,
# no NVML). One engine per LLM runs both points.
# Usage: scripts/gpu/run_all_llms.sh [path/to/energy-fit] [LLM ...]   (default: all 13 catalog LLMs)
# Env: REQUESTS (default 4), POINTS (default 64x64,4096x4096); results also under $OUT or
# /tmp/energy-fit-checks (all_llms.txt). All 13 take about 8-10 minutes on an H100: where a job
# may run 10 minutes at most, split the list over two jobs.
set -u -o pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath "${1:-${BIN:-$HERE/../../target/release/energy-fit}}")"
shift || true
RES="${OUT:-/tmp/energy-fit-checks}"
mkdir -p "$RES"
REQUESTS="${REQUESTS:-4}"
POINTS="${POINTS:-64x64,4096x4096}"
if [ $# -gt 0 ]; then LLMS=("$@"); else mapfile -t LLMS < <("$BIN" llms --json | python3 -c 'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)]'); fi
LOG="$RES/all_llms.txt"
: > "$LOG"
failed=()
for llm in "${LLMS[@]}"; do
  echo "=== $llm (R=$REQUESTS, points $POINTS)" | tee -a "$LOG"
  t0=$(date +%s)
  if ! "$BIN" engine-run --llm "$llm" --requests "$REQUESTS" --points "$POINTS" 2>&1 | tee -a "$LOG"; then failed+=("$llm"); fi
  echo "    $llm: $(( $(date +%s) - t0 )) s including engine start" | tee -a "$LOG"
done
echo "SUMMARY (tokens/s generated per point):"
grep -E "^[a-z0-9.-]+: R=" "$LOG" | sed 's/^/  /'
if [ ${#failed[@]} -gt 0 ]; then echo "run_all_llms: ${#LLMS[@]} LLMs, ${#failed[@]} failed: ${failed[*]}"; else echo "run_all_llms: ${#LLMS[@]} LLMs, 0 failed"; fi
[ ${#failed[@]} -eq 0 ]
