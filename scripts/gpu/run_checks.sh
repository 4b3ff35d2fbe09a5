#!/usr/bin/env bash
# One command for every GPU check of the engine: kernel selftest (bf16 + fp16, CPU references),
# HF transformers comparison on tiny random checkpoints, and a llama-3.2-1b smoke run.
# Usage: scripts/gpu/run_checks.sh [path/to/energy-fit]   (results also under $OUT or /tmp/energy-fit-checks)
set -u -o pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath "${1:-${BIN:-$HERE/../../target/release/energy-fit}}")"
RES="${OUT:-/tmp/energy-fit-checks}"
mkdir -p "$RES"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm --format=csv 2>&1 | tee "$RES/gpu.txt"
"$BIN" selftest --dtype all 2>&1 | tee "$RES/selftest.txt"; st=$?
python3 "$HERE/hf_compare.py" --bin "$BIN" --work /tmp/hf_compare --out "$RES/hf_compare.json" 2>&1 | tee "$RES/hf_compare.txt"; hc=$?
"$BIN" engine-run --llm llama-3.2-1b --requests 256 --input-tokens 128 --output-tokens 128 2>&1 | tee "$RES/smoke.txt"; sm=$?
"$BIN" engine-run --llm llama-3.2-1b --requests 1024 --input-tokens 64 --output-tokens 256 2>&1 | tee -a "$RES/smoke.txt"; sm2=$?
echo "SUMMARY selftest rc=$st hf_compare rc=$hc smoke rc=$sm/$sm2"
[ $st -eq 0 ] && [ $hc -eq 0 ] && [ $sm -eq 0 ] && [ $sm2 -eq 0 ]
