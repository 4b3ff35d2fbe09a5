#!/usr/bin/env bash
# The engine's performance measurements on a GPU machine, each step under its own time limit, results
# under $OUT (or /tmp/energy-fit-perf): roofline bench (bench.txt / bench.json), whole points on the
# engine (engine_run.txt), the HF transformers peer metered like `measure` (peer_hf.csv).
# Usage: benches/gpu_perf.sh [path/to/energy-fit] [steps: bench,ab,peer (default all)]
# Env: LLM (default llama-3.2-1b), AB_POINTS (default 4096x64,1024x64), PEER_POINTS (default 64x256).
set -u -o pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath -m "${1:-$HERE/../target/release/energy-fit}")"
[ -x "$BIN" ] || { echo "error: BIN ${1:-$HERE/../target/release/energy-fit}: not an executable file (build one: scripts/dev_binary.sh)" >&2; exit 2; }
STEPS="${2:-bench,ab,peer}"
RES="${OUT:-/tmp/energy-fit-perf}"
LLM="${LLM:-llama-3.2-1b}"
mkdir -p "$RES"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm,temperature.gpu,power.draw --format=csv | tee "$RES/gpu.txt"
rc=0
if [[ ",$STEPS," == *",bench,"* ]]; then
    timeout 300 "$BIN" bench --llm "$LLM" --kernels --json > "$RES/bench.json" 2> "$RES/bench.err" || rc=1
    python3 - "$RES/bench.json" <<'EOF' | tee "$RES/bench.txt"
import json, sys
j = json.load(open(sys.argv[1]))
print(f"{j['llm']} on {j['gpu']}: GEMM peak {j['gemm_peak_tflops']:.0f} TFLOP/s, copy {j['copy_gbps']:.0f} GB/s, attention {j.get('attention')}")
for r in j["rows"]:
    t = "-" if r["achieved_ms"] is None else f"{r['achieved_ms']:.3f}"
    x = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
    sf = "" if r.get("serial_floor_ms") is None else f"{r['serial_floor_ms']:>9.3f}"
    sx = "" if r.get("serial_ratio") is None else f"{r['serial_ratio']:>6.2f}"
    print(f"{r['phase']:<8}{r['batch']:>6}{r['tokens']:>7}{t:>11}{r['floor_ms']:>10.3f} {r['bound']:<6}{x:>6}{sf}{sx}  {r['note'] or ''}")
    ks = r.get("kernels") or []
    total = sum(k["ms"] for k in ks)
    for k in ks[:6]:
        print(f"          {k['name']:<30}{k['ms']:>9.3f} ms {100 * k['ms'] / max(total, 1e-12):5.1f} % x{k['launches']}")
EOF
fi
if [[ ",$STEPS," == *",ab,"* ]]; then
    for att in tc ${AB_SCALAR:+scalar}; do
        timeout 300 "$BIN" engine-run --llm "$LLM" --requests 1000 --points "${AB_POINTS:-4096x64,1024x64}" --attention $att 2>&1 | tee -a "$RES/engine_run.txt" || rc=1
    done
fi
if [[ ",$STEPS," == *",peer,"* ]]; then
    "$BIN" llms --json > "$RES/llms.json"
    timeout 240 python3 "$HERE/peer_hf.py" --llms-json "$RES/llms.json" --llm "$LLM" --requests 1024 --points "${PEER_POINTS:-64x256}" \
        --out "$RES/peer_hf.csv" 2>&1 | tail -20 | tee "$RES/peer.txt" || rc=1
fi
echo "gpu_perf rc=$rc"
exit $rc
