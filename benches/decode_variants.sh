#!/usr/bin/env bash
# Decode-attention builds in one binary (ENERGY_FIT_NVRTC_OPTS passes options to NVRTC, e.g.
# --gpu-architecture=sm_90 on Hopper: cp.async instead of TMA loads in attention_tcd.cu): for
# each, the bf16 kernel selftest plus the LLM's forward check, then bench's decode rows with
# per-kernel times. Results under $OUT (or /tmp/energy-fit-decode-variants): selftest-NAME.txt,
# bench-NAME.txt, summary.txt (per decode row: step time, floor ratio, attention_tcd time).
# Usage: benches/decode_variants.sh BIN [VARIANT...]   VARIANT: one quoted option list, "" for the defaults
# Env: LLM (default llama-3.2-1b), BATCHES (default 256,1024), CONTEXTS (default 512,1024,2048,4096),
#   SELFTEST=0 (timings only).
set -u -o pipefail
. "$(dirname "$0")/variants.sh"
variants_bin "$0 BIN [VARIANT...]" "$@"
shift
[ $# -eq 0 ] && set -- ""
variants_res /tmp/energy-fit-decode-variants
rc=0
for v in "$@"; do
    name="$(variant_name "$v")"
    variant_selftest "$RES" "$name" "$v"
    ENERGY_FIT_NVRTC_OPTS="$v" timeout 150 "$BIN" bench --llm "${LLM:-llama-3.2-1b}" --prefill 512 --batches "${BATCHES:-256,1024}" \
        --contexts "${CONTEXTS:-512,1024,2048,4096}" --kernels --top 3 > "$RES/bench-$name.txt" 2>&1
    bt=$?
    rows="$(awk '$1 == "decode" { r = $2 "x" $3 ": " $4 " ms (" $7 "x)" } /attention_tcd_/ && r { printf "%s attn %s  ", r, $2; r = "" }' "$RES/bench-$name.txt")"
    line="${v:-defaults}: $(variant_line "$RES" "$name"); $rows"
    echo "$line" | tee -a "$RES/summary.txt"
    [ $st -eq 0 ] && [ $bt -eq 0 ] || rc=1
done
exit $rc
