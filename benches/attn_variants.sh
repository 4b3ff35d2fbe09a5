#!/usr/bin/env bash
# Prefill-attention kernel builds in one binary (ENERGY_FIT_NVRTC_OPTS passes options to NVRTC,
# e.g. --gpu-architecture=sm_90 on Hopper: attention_tc instead of attention_ws): for each, the bf16 kernel selftest plus the LLM's forward check (llama-3.2-1b
# unless LLM says), then bench's prefill rows with per-kernel times. A variant becomes a default
# only after both. Results under $OUT (or /tmp/energy-fit-attn-variants): selftest-NAME.txt,
# bench-NAME.txt, summary.txt.
# Usage: benches/attn_variants.sh BIN [VARIANT...]
#   VARIANT: one quoted option list, "" for the defaults; by default "" and
#   --gpu-architecture=sm_90 (docs/performance.md says which kernel serves which build).
# Env: PREFILL (default 1024,2048,4096), LLM (default llama-3.2-1b: head dim 64; llama-3.1-8b
#   for 128), SELFTEST=0 (timings only, for variants the selftest has passed before).
set -u -o pipefail
. "$(dirname "$0")/variants.sh"
variants_bin "$0 BIN [VARIANT...]" "$@"
shift
[ $# -eq 0 ] && set -- "" "--gpu-architecture=sm_90"
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
