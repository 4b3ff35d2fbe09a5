#!/usr/bin/env bash
# Build and run overlap_probe.cu on the GPU machine (nvcc, cuBLAS, NVML there; no Rust needed).
# Three stand-ins for llama-3.2-1b decode steps: batch 1024 at context 512 and 128, batch 256 at 512
# (rows per micro-batch, K/V MB per layer and micro-batch), after the read's bandwidth and J/GB
# against the number of SMs it runs on. Results to $OUT (or benches/results/overlap).
# Usage: benches/overlap_probe.sh   (env NVCC: the compiler, default nvcc on PATH or in /usr/local/cuda*)
set -euo pipefail
RES="${OUT:-benches/results/overlap}"; mkdir -p "$RES"
NVCC="${NVCC:-$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -n 1)}"
[ -x "$NVCC" ] || { echo "error: NVCC '$NVCC': no nvcc to build overlap_probe.cu (PATH, /usr/local/cuda*/bin; this runs on the GPU machine)" >&2; exit 2; }
BIN="$(mktemp -d)/overlap_probe"
"$NVCC" -O2 -std=c++17 -arch=sm_90a -o "$BIN" "$(dirname "$0")/overlap_probe.cu" -lcublas -lcuda -lnvidia-ml
echo "== streaming read on S SMs (green contexts)"
"$BIN" 512 537 bw | tee "$RES/probe-bw.txt"
for cfg in "512 537" "512 134" "128 134"; do
    set -- $cfg
    echo "== rows $1, K/V $2 MB"
    "$BIN" "$1" "$2" | tee "$RES/probe-$1-$2.txt"
done
