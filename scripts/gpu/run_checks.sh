#!/usr/bin/env bash
# One command for every GPU check of the engine: kernel selftest (bf16 + fp16, CPU references, then
# random-weights forwards of llama, opt, falcon-rw and gemma-2), HF transformers comparison on tiny
# random checkpoints of every architecture, and a llama-3.2-1b smoke run. ALL_LLMS=1 also runs
# run_all_llms.sh (all 13 catalog LLMs at n = m = 64 and 4096; about 8-10 more minutes).
# Usage: scripts/gpu/run_checks.sh [path/to/energy-fit]   (results also under $OUT or /tmp/energy-fit-checks)
set -u -o pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath -m "${1:-${BIN:-$HERE/../../target/release/energy-fit}}")"
[ -x "$BIN" ] || { echo "error: BIN ${1:-${BIN:-$HERE/../../target/release/energy-fit}}: not an executable file (build one: scripts/dev_binary.sh)" >&2; exit 2; }
RES="${OUT:-/tmp/energy-fit-checks}"
mkdir -p "$RES"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm --format=csv 2>&1 | tee "$RES/gpu.txt"
"$BIN" selftest --dtype all 2>&1 | tee "$RES/selftest.txt"; st=$?
python3 "$HERE/hf_compare.py" --bin "$BIN" --work /tmp/hf_compare --out "$RES/hf_compare.json" 2>&1 | tee "$RES/hf_compare.txt"; hc=$?
"$BIN" engine-run --llm llama-3.2-1b --requests 256 --input-tokens 128 --output-tokens 128 2>&1 | tee "$RES/smoke.txt"; sm=$?
"$BIN" engine-run --llm llama-3.2-1b --requests 1024 --input-tokens 64 --output-tokens 256 2>&1 | tee -a "$RES/smoke.txt"; sm2=$?
al=0
if [ "${ALL_LLMS:-0}" = 1 ]; then "$HERE/run_all_llms.sh" "$BIN"; al=$?; fi
echo "SUMMARY selftest rc=$st hf_compare rc=$hc smoke rc=$sm/$sm2${ALL_LLMS:+ all_llms rc=$al}"
[ $st -eq 0 ] && [ $hc -eq 0 ] && [ $sm -eq 0 ] && [ $sm2 -eq 0 ] && [ $al -eq 0 ]
