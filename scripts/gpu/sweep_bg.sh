#!/usr/bin/env bash
# A sweep that outlives one time-limited job. Where each command may run only a few minutes, a
# grid point's window can be longer (llama-3.1-8b at n = 2048, m = 4096: ~18 minutes by `measure
# --dry-run`'s roofline bound). A process in its own session (setsid) runs on after the command
# that started it ends. So: `start` prints what is left (`measure --dry-run --resume`: points and
# roofline seconds, and the time left at the pace the file's rows ran), launches `measure --resume`
# that way on a copy of the sweep file and then waits like `wait`; each later command runs `wait`,
# which sleeps until the sweep ends or its time is up and copies the file and the log to $OUT. Copy
# the file back into the tree after every command: if the machine is lost, the point in flight is
# lost, nothing before it.
# Usage: scripts/gpu/sweep_bg.sh start BIN FILE [measure flags...]
#        scripts/gpu/sweep_bg.sh wait FILE
# A second `start` on the same machine resumes the first's working copy where it has more rows,
# and hands the first's log back as $OUT/NAME.before-start.log. A `start` of another FILE while a
# sweep runs queues behind it: the sweeps of one machine run one after another in the order they
# were started, never two at once on its GPU (two would share the card and each measure the other's
# energy). `wait` on the last one started waits for the whole queue.
# Env: WAIT (seconds `wait` may take, default 570), DIR (working copy, default /var/tmp/energy-fit-sweep).
set -u -o pipefail
usage() { echo "usage: $0 start BIN FILE [measure flags...] | $0 wait FILE (got: $*)" >&2; exit 2; }
[ $# -ge 2 ] || usage "$@"
CMD="$1"; shift
DIR="${DIR:-/var/tmp/energy-fit-sweep}"
OUT="${OUT:-/tmp/energy-fit-sweep-out}"
mkdir -p "$DIR" "$OUT"
if [ "$CMD" = start ]; then
    [ $# -ge 2 ] || usage start "$@"
    BIN="$(realpath -m "$1")"; FILE="$2"; shift 2
    [ -x "$BIN" ] || { echo "error: BIN $BIN: not an executable file (build one: scripts/dev_binary.sh)" >&2; exit 2; }
else
    [ "$CMD" = wait ] || usage "$CMD" "$@"
    FILE="$1"
fi
NAME="$(basename "$FILE")"
WORK="$DIR/$NAME"; LOG="$DIR/$NAME.log"; PID="$DIR/$NAME.pid"
running() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }
if [ "$CMD" = start ]; then
    if running; then echo "error: a sweep of $NAME is already running (pid $(cat "$PID"))" >&2; exit 1; fi
    # A working copy left by an earlier start on this machine may hold rows FILE lacks (FILE is the
    # tree's copy, as the command began): keep whichever has more rows; both only ever grow.
    if [ -f "$FILE" ] && { [ ! -f "$WORK" ] || [ "$(wc -l < "$FILE")" -ge "$(wc -l < "$WORK")" ]; }; then
        cp "$FILE" "$WORK"
    elif [ -f "$WORK" ]; then
        echo "keeping $WORK: $(( $(wc -l < "$WORK") - 1 )) rows, more than $FILE's"
    fi
    # The new sweep's log replaces an earlier start's: hand that one back first.
    [ -f "$LOG" ] && cp "$LOG" "$OUT/$NAME.before-start.log"
    # What is left, by the roofline bound (a lower bound: load, warm-up and idle windows excluded),
    # and at the pace of the rows the file already holds, where it holds some.
    PLAN="$("$BIN" measure "$@" --resume --out "$WORK" --dry-run 2>&1)"
    echo "left: $(grep -E '^[0-9]+ points, ' <<< "$PLAN" || tail -n 1 <<< "$PLAN")"
    grep -E '^(pace so far|  on |at that pace)' <<< "$PLAN"
    # The sweep started last on this machine, if it still runs: this one waits for it to end.
    AFTER=""
    if [ -f "$DIR/last.pid" ] && kill -0 "$(cat "$DIR/last.pid")" 2>/dev/null; then AFTER="$(cat "$DIR/last.pid")"; fi
    setsid bash -c 'while [ -n "$1" ] && kill -0 "$1" 2>/dev/null; do sleep 1; done; shift; exec "$@"' \
        queue "$AFTER" "$BIN" measure "$@" --resume --out "$WORK" --quiet > "$LOG" 2>&1 < /dev/null &
    echo $! > "$PID"
    cp "$PID" "$DIR/last.pid"
    echo "started pid $(cat "$PID"): measure $* --resume --out $WORK${AFTER:+ (queued behind pid $AFTER)}"
fi
[ -f "$PID" ] || { echo "error: no sweep of $NAME was started here ($DIR has no $NAME.pid)" >&2; exit 2; }
T0=$(date +%s)
while running && [ $(( $(date +%s) - T0 )) -lt "${WAIT:-570}" ]; do sleep 5; done
[ -f "$WORK" ] && cp "$WORK" "$OUT/$NAME"
cp "$LOG" "$OUT/$NAME.log" 2>/dev/null
state="finished"; running && state="still running (pid $(cat "$PID"))"
rows=0; [ -f "$WORK" ] && rows=$(( $(wc -l < "$WORK") - 1 ))
echo "$NAME: $state; $rows rows; last log line: $(tail -n 1 "$LOG" 2>/dev/null)"
