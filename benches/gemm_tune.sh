#!/usr/bin/env bash
# GEMM tuning (`--tune-gemms`, src/engine/lt_gemm.rs) checked and timed in one run: the bf16
# selftest (every cuBLASLt candidate against the CPU), then `bench` without and with tuning (same
# binary, per-GEMM times), then an interleaved energy A/B of one decode-bound point. Tuning becomes
# the default only after all three. Results under $OUT (or /tmp/energy-fit-gemm-tune):
# selftest.txt, bench-default.txt, bench-tuned.txt, ab/ (benches/ab_energy.sh's files), summary.txt.
# Usage: benches/gemm_tune.sh BIN
# Env: LLM (default llama-3.1-8b), AB_LLM (default llama-3.2-1b), AB_POINT (default 64x256: n x m),
#   ROUNDS (A/B rounds, default 2; 0 skips the A/B).
set -u -o pipefail
. "$(dirname "$0")/variants.sh"
variants_bin "$0 BIN" "$@"
RES="${OUT:-/tmp/energy-fit-gemm-tune}"
LLM="${LLM:-llama-3.1-8b}"
mkdir -p "$RES"
rc=0
timeout 200 "$BIN" selftest --dtype bf16 > "$RES/selftest.txt" 2>&1 || rc=1
echo "selftest: $(grep -c '^ok' "$RES/selftest.txt") ok, $(grep -c '^FAIL' "$RES/selftest.txt") failed; cuBLASLt checks: $(grep -c 'cublasLt' "$RES/selftest.txt")" | tee "$RES/summary.txt"
for side in default tuned; do
    flag=""; [ "$side" = tuned ] && flag="--tune-gemms"
    # shellcheck disable=SC2086 # empty for the default side
    timeout 200 "$BIN" bench --llm "$LLM" --prefill 4096 --batches 256,512,1024 --contexts 128,1024 --kernels --top 6 $flag > "$RES/bench-$side.txt" 2>&1 || rc=1
    echo "bench $side: $(grep -E '^GEMM shapes of .* tuned' "$RES/bench-$side.txt")" | tee -a "$RES/summary.txt"
    grep -E '^(prefill|decode) ' "$RES/bench-$side.txt" | tee -a "$RES/summary.txt"
done
if [ "${ROUNDS:-2}" -gt 0 ]; then
    n="${AB_POINT:-64x256}"; m="${n#*x}"; n="${n%x*}"
    OUT="$RES/ab" FLAGS_B=--tune-gemms ROUNDS="${ROUNDS:-2}" "$(dirname "$0")/ab_energy.sh" "$BIN" "$BIN" \
        --llm "${AB_LLM:-llama-3.2-1b}" --inputs "$n" --outputs "$m" | tee -a "$RES/summary.txt" || rc=1
fi
echo "gemm_tune rc=$rc"
exit $rc
