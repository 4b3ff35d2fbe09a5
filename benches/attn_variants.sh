#!/usr/bin/env bash
# Prefill-attention kernel variants in one binary (ENERGY_FIT_NVRTC_OPTS picks the #defines NVRTC
# compiles with): for each, the bf16 kernel selftest plus the LLM's forward check (llama-3.2-1b
# unless LLM says), then bench's prefill rows with per-kernel times. A variant becomes a default
# only after both. Results under $OUT (or /tmp/energy-fit-attn-variants): selftest-NAME.txt,
# bench-NAME.txt, summary.txt.
# Usage: benches/attn_variants.sh BIN [VARIANT...]
#   VARIANT: one quoted option list, "" for the defaults; by default "", -DTC_EXP2_FTZ=0 and
#   -DTC_EXP2_POLY=2, 3, 4 (src/engine/kernels/attention_tc.cu says what each does).
# Env: PREFILL (default 1024,2048,4096), LLM (default llama-3.2-1b: head dim 64; llama-3.1-8b
#   for 128, e.g. with the variant -DTC_MT_HD128=1, the one-tile kernel), SELFTEST=0 (timings only,
#   for variants the selftest has passed before).
set -u -o pipefail
. "$(dirname "$0")/variants.sh"
variants_bin "$0 BIN [VARIANT...]" "$@"
shift
[ $# -eq 0 ] && set -- "" "-DTC_EXP2_FTZ=0" "-DTC_EXP2_POLY=2" "-DTC_EXP2_POLY=3" "-DTC_EXP2_POLY=4"
variants_res /tmp/energy-fit-attn-variants
rc=0
for v in "$@"; do
    name="$(variant_name "$v")"
    variant_selftest "$RES" "$name" "$v"
    ENERGY_FIT_NVRTC_OPTS="$v" timeout 120 "$BIN" bench --llm "${LLM:-llama-3.2-1b}" --prefill "${PREFILL:-1024,2048,4096}" \
        --batches 256 --contexts 128 --kernels --top 4 > "$RES/bench-$name.txt" 2>&1
    bt=$?
    # The attention kernel's time in each prefill row's breakdown.
    attn="$(awk '$1 == "prefill" { n = $3 } /attention_tc_/ && n { printf "n=%s %s ms  ", n, $2; n = "" }' "$RES/bench-$name.txt")"
    line="${v:-defaults}: $(variant_line "$RES" "$name"); attention $attn"
    echo "$line" | tee -a "$RES/summary.txt"
    [ $st -eq 0 ] && [ $bt -eq 0 ] || rc=1
done
exit $rc
