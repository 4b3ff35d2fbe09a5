#!/usr/bin/env bash
# Nsight Compute on one prefill-attention kernel launch, per kernel variant: which unit binds it
# (tensor pipe, MUFU "xu", FMA/ALU pipes, issue slots) and why warps stall. Answers what the
# timings alone cannot: whether the softmax's exponentials overlap the mma (docs/performance.md).
# Clocks are left as found (--clock-control none). Results under $OUT (or /tmp/energy-fit-ncu):
# metrics.txt (the chip's metric names), ncu-NAME.txt per variant.
# Usage: benches/ncu_attention.sh BIN [VARIANT...]   VARIANT as in benches/attn_variants.sh
# Env: KERNEL (default attention_tc_bf16_64), N (prompt length, default 4096), LLM (default
#   llama-3.2-1b; llama-3.1-8b with KERNEL=attention_tc_bf16_128 for head dim 128).
set -u -o pipefail
. "$(dirname "$0")/variants.sh"
variants_bin "$0 BIN [VARIANT...]" "$@"
shift
[ $# -eq 0 ] && set -- ""
variants_res /tmp/energy-fit-ncu
NCU="$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -n 1)"
if [ -z "$NCU" ]; then echo "error: ncu not found on PATH or under /usr/local/cuda*/bin" >&2; exit 1; fi
"$NCU" --query-metrics --chip gh100 > "$RES/metrics.txt" 2>&1
# Only the per-pipe metrics this ncu knows (an unknown name would fail the whole run).
have=""
# (gmma: wgmma's tensor pipe, attention_wg.cu.)
for m in sm__pipe_tensor_op_hmma_cycles_active sm__pipe_tensor_op_gmma_cycles_active sm__inst_executed_pipe_xu \
         sm__pipe_fma_cycles_active sm__pipe_alu_cycles_active sm__inst_executed_pipe_fma sm__inst_executed_pipe_alu \
         smsp__issue_active; do
    grep -q "^$m[[:space:]]" "$RES/metrics.txt" && have="$have,$m.avg.pct_of_peak_sustained_active"
done
# Why warps stall: cycles per issued instruction spent in each stall reason.
for m in $(grep -oE '^smsp__average_warps_issue_stalled_[a-z_]+_per_issue_active' "$RES/metrics.txt" | sort -u); do
    have="$have,$m.ratio"
done
rc=0
for v in "$@"; do
    name="$(variant_name "$v")"
    ENERGY_FIT_NVRTC_OPTS="$v" timeout 240 "$NCU" --clock-control none -k "regex:^${KERNEL:-attention_tc_bf16_64}\$" -c 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
        ${have:+--metrics "${have#,}"} \
        "$BIN" bench --llm "${LLM:-llama-3.2-1b}" --prefill "${N:-4096}" --batches 256 --contexts 128 > "$RES/ncu-$name.txt" 2>&1 || rc=1
    echo "${v:-defaults}: $(grep -cE 'pct|%' "$RES/ncu-$name.txt") metric lines in ncu-$name.txt"
done
exit $rc
