#!/usr/bin/env bash
# Submit a measurement sweep to Slurm: a job array of SHARDS tasks (scripts/slurm/shard.sbatch, one
# shard of the grid each, resumed across requeues and time limits) and a merge job
# (scripts/slurm/merge.sbatch) that starts once every task has ended and writes DIR/merged.csv.
# The measure flags are checked and the plan printed (`measure --dry-run`) before anything is
# submitted. Prints the two job ids and the commands to watch them.
# Usage: scripts/slurm/submit.sh BIN DIR SHARDS [measure flags...]
#   e.g. scripts/slurm/submit.sh ~/energy-fit /scratch/$USER/sweep 8 --llm llama-3.1-8b
# Env: TIME (each task's time limit, sbatch --time, default 04:00:00), MARGIN_S (seconds before it at
#      which a task starts no new point, default 600), GRES (GPUs per task, default gpu:1; empty for
#      none), SBATCH_ARGS (more sbatch options for both jobs, e.g. "--partition=gpu --account=lab"),
#      MERGED (the merged file, default DIR/merged.csv).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 BIN DIR SHARDS [measure flags...] (got $# arguments)" >&2
    exit 2
fi
BIN="$1"; DIR="$2"; SHARDS="$3"; shift 3
GRES="${GRES-gpu:1}"
[ -x "$BIN" ] || { echo "error: BIN $BIN: not an executable file (build one: cargo build --release)" >&2; exit 2; }
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "error: SHARDS $SHARDS: expected a positive whole number" >&2; exit 2; }
for a in "$@"; do
    case "$a" in
        --out|--out=*|--shard|--shard=*|--resume|--stop-after-s|--stop-after-s=*|--dry-run)
            echo "error: measure flag $a: the jobs set it themselves; leave it out" >&2; exit 2 ;;
    esac
done
here="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath "$BIN")"
mkdir -p "$DIR/logs"
DIR="$(realpath "$DIR")"
MERGED="${MERGED:-$DIR/merged.csv}"
[ -e "$MERGED" ] && { echo "error: MERGED $MERGED already exists; choose another file or DIR" >&2; exit 2; }

plan="$DIR/plan.csv"
"$BIN" measure "$@" --dry-run --plan-csv "$plan" --out "$MERGED"
points=$(($(wc -l < "$plan") - 1))
[ "$SHARDS" -le "$points" ] || { echo "error: SHARDS $SHARDS: the sweep has only $points points; use at most $points shards" >&2; exit 2; }

array="$(sbatch --parsable --array="0-$((SHARDS - 1))" --time="${TIME:-04:00:00}" ${GRES:+--gres="$GRES"} \
    --output="$DIR/logs/shard-%a.log" --export=ALL,MARGIN_S="${MARGIN_S:-600}" ${SBATCH_ARGS:-} \
    "$here/shard.sbatch" "$BIN" "$DIR" "$SHARDS" "$@")"
array="${array%%;*}"
merge="$(sbatch --parsable --dependency="afterany:$array" --output="$DIR/logs/merge.log" ${SBATCH_ARGS:-} \
    "$here/merge.sbatch" "$BIN" "$DIR" "$SHARDS" "$MERGED" "$@")"
merge="${merge%%;*}"
echo "submitted: array job $array ($SHARDS shards of $points points into $DIR/shard-I-of-$SHARDS.csv), merge job $merge (into $MERGED)"
echo "watch: squeue -j $array,$merge; tail -f $DIR/logs/shard-*.log"
echo "merge log: $DIR/logs/merge.log"
