#!/usr/bin/env bash
# scripts/slurm/ against a real Slurm on this host: starts its own munged, slurmctld and slurmd (Debian's
# packages, configuration and state in a temporary directory), submits a sweep with
# scripts/slurm/submit.sh and the stand-in meter (no GPU), SIGKILLs one array task mid-sweep and
# requeues it, lets the merge job run, and checks that
#   - the merged file holds exactly the grid's points, each once, with the values of a single-process
#     sweep of the same grid (exact for the columns the stand-in fixes, within 5 % for the timed ones);
#   - the killed task resumed its shard file: the rows written before the kill are still there,
#     unchanged, and no point of the shard was written twice;
#   - a task whose time limit came before its shard's end stopped (--stop-after-s) and requeued itself.
# Then stops every daemon it started. Needs root (slurmd runs the jobs as root here).
# Usage: tests/slurm/run.sh BIN    (e.g. target/debug/energy-fit)
# Env: KEEP=1 keeps the temporary directory (logs, configuration, shard files) for a look afterwards.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 BIN (got $# arguments)" >&2
    exit 2
fi
[ -x "$1" ] || { echo "error: BIN $1: not an executable file" >&2; exit 2; }
BIN="$(realpath "$1")"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
for t in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
    command -v "$t" > /dev/null || { echo "error: $t not found: apt-get install munge slurmctld slurmd slurm-client" >&2; exit 2; }
done

T="$(mktemp -d /tmp/energy-fit-slurm.XXXXXX)"
chmod 755 "$T"
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log" "$T/sweep"
chmod 700 "$T/munge"
pids=(); refpid=
stop_all() {
    local rc=$?
    set +e
    [ -n "$refpid" ] && kill "$refpid" 2> /dev/null
    scancel --full --signal=KILL --user=root 2> /dev/null
    scancel --user=root 2> /dev/null
    sleep 1
    # Reverse order: slurmd before slurmctld before munged.
    for ((k = ${#pids[@]} - 1; k >= 0; k--)); do kill "${pids[k]}" 2> /dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2> /dev/null; done
    if [ "$rc" -ne 0 ]; then
        echo "--- failed; logs under $T/log and $T/sweep/logs:" >&2
        tail -n 20 "$T"/log/slurm*.log "$T"/sweep/logs/*.log >&2 2> /dev/null
    fi
    if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap stop_all EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- the cluster: one node, this host, 8 CPU slots so the whole array runs at once ------------------
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
munged -F -f --socket="$T/munge/sock" --key-file="$T/munge/munge.key" --log-file="$T/log/munged.log" \
    --pid-file="$T/munge/pid" --seed-file="$T/munge/seed" > "$T/log/munged.out" 2>&1 &
pids+=($!)
H="$(hostname)"
export SLURM_CONF="$T/slurm.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=energyfit
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
SlurmdParameters=config_overrides
NodeName=$H NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
for i in $(seq 50); do [ -S "$T/munge/sock" ] && break; sleep 0.2; done
slurmctld -D -f "$SLURM_CONF" > "$T/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" > "$T/log/slurmd.out" 2>&1 &
pids+=($!)
for i in $(seq 60); do
    [ "$(sinfo -h -o %t 2> /dev/null)" = idle ] && break
    [ "$i" -eq 60 ] && fail "the node is not idle after 60 s: $(sinfo 2>&1)"
    sleep 1
done
echo "cluster up: $(sinfo -h -o '%P %D %t %c')"

# --- the sweep ------------------------------------------------------------------------------------
# 16 points in 4 shards, ~11 s of stand-in work per shard. A task's time limit is one minute and it
# keeps 52 s free, so it stops starting points after ~8 s and requeues itself to finish its shard.
export ENERGY_FIT_STANDIN="us_per_token=600"
FLAGS=(--inputs 64,128,256,512 --outputs 64,128,256,512 --requests 10
       --idle-s 0 --min-window-s 0 --sample-ms 20 --quiet)
SHARDS=4
start=$(date +%s)
sub="$(TIME=1 MARGIN_S=52 GRES= SBATCH_ARGS=--cpus-per-task=1 bash "$ROOT/scripts/slurm/submit.sh" "$BIN" "$T/sweep" "$SHARDS" "${FLAGS[@]}")"
echo "$sub" | tail -n 3
A="$(echo "$sub" | sed -n 's/^submitted: array job \([0-9]*\) .*merge job \([0-9]*\) .*/\1/p')"
M="$(echo "$sub" | sed -n 's/^submitted: array job \([0-9]*\) .*merge job \([0-9]*\) .*/\2/p')"
[ -n "$A" ] && [ -n "$M" ] || fail "no job ids in submit.sh's output"

# The same grid in one process, meanwhile (the stand-in sleeps; it needs no CPU).
ref="$T/single.csv"
"$BIN" measure "${FLAGS[@]}" --out "$ref" > "$T/log/single.log" 2>&1 &
refpid=$!

# Slurm makes a requeued job wait ~2 minutes before it may start again; here it waits 3 s. Not less:
# slurmd refuses a job whose credential dates from the second its previous run was killed in
# ("Job credential revoked"), and the task then fails.
hurry() {
    local id reason begin now
    now="$(date +%s)"
    while read -r id reason begin; do
        [ "$reason" = BeginTime ] || continue
        begin="$(date -d "$begin" +%s 2> /dev/null)" || continue
        if [ "$begin" -gt $((now + 10)) ]; then scontrol update JobId="$id" StartTime=now+3 || true; fi
    done < <(squeue -h -t PD -o '%i %r %S' 2> /dev/null || true)
}
state() { squeue -h -t all -j "$1" -o %T 2> /dev/null || true; }

# Kill task 1 once its shard file holds a row and before it holds them all; then requeue it.
victim="$T/sweep/shard-1-of-$SHARDS.csv"
for i in $(seq 600); do
    [ -f "$victim" ] && [ "$(wc -l < "$victim")" -ge 2 ] && [ "$(state "${A}_1")" = RUNNING ] && break
    [ "$i" -eq 600 ] && fail "task ${A}_1 wrote no row within 60 s"
    sleep 0.1
done
scancel --full --signal=KILL "${A}_1"
for i in $(seq 100); do
    case "$(state "${A}_1")" in RUNNING|COMPLETING) sleep 0.1 ;; *) break ;; esac
done
before="$T/shard-1-at-kill.csv"
cp "$victim" "$before"
echo "killed task ${A}_1 with $(($(wc -l < "$before") - 1)) of its 4 rows on disk ($(state "${A}_1"))"
scontrol requeue "${A}_1"

for i in $(seq 300); do
    hurry
    [ -z "$(squeue -h -t PD,CF,R,CG,S -j "$A,$M" 2> /dev/null)" ] && break
    [ "$i" -eq 300 ] && fail "the jobs did not finish within 300 s: $(squeue)"
    sleep 1
done
echo "array and merge done in $(($(date +%s) - start)) s"
scontrol show job "$M" | grep -q 'JobState=COMPLETED' \
    || fail "merge job $M: $(scontrol show job "$M" | grep -o 'JobState=[A-Z_]* Reason=[^ ]*'): $(cat "$T/sweep/logs/merge.log")"
cat "$T/sweep/logs/merge.log"
grep -q 'run 2)' "$T/sweep/logs/shard-1.log" || fail "task 1 did not run again after the kill"
grep -q 'requeueing task' "$T"/sweep/logs/shard-*.log || fail "no task stopped at --stop-after-s and requeued itself"
# A task that requeues itself must requeue nothing else: every run cut by a requeue is one its own
# task asked for. At most as many cuts as requests, not exactly as many: a run that asks and exits
# before slurmstepd cancels it leaves no "DUE TO JOB REQUEUE" line.
for f in "$T"/sweep/logs/shard-*.log; do
    [ "$(grep -c 'DUE TO JOB REQUEUE' "$f")" -le "$(grep -c 'requeueing task' "$f")" ] \
        || fail "$f: a run was requeued that did not requeue itself: $(cat "$f")"
done
echo "tasks that requeued themselves at their time limit: $(grep -l 'requeueing task' "$T"/sweep/logs/shard-*.log | wc -l)"

# --- the comparison with the single-process sweep ---------------------------------------------
wait "$refpid" || fail "the single-process sweep failed: $(cat "$T/log/single.log")"
refpid=
python3 "$ROOT/tests/slurm/compare.py" "$T/sweep/merged.csv" "$ref" "$before" "$victim" 16
echo "PASS: Slurm sweep ($SHARDS shards, one killed and requeued) = single-process sweep"
