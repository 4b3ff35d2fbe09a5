#!/usr/bin/env bash
# Energy A/B of two engine binaries on the same points, interleaved so that the GPU's drift (its
# temperature climbs over a run, and a hotter H100 at the 700 W cap runs slower clocks) falls on
# both alike: rounds alternate A B, B A, ... and each round measures every point once with each.
# Results under $OUT (or /tmp/energy-fit-ab): ab-{A,B}-rR.csv (dataset rows) and summary.txt
# (per point: tokens/J of A and B in each round, and B/A of their means).
# Usage: benches/ab_energy.sh BIN_A BIN_B [measure flags...]
#   e.g. benches/ab_energy.sh /tmp/energy-fit-old target/release/energy-fit --llm llama-3.2-1b --inputs 64,4096 --outputs 64,256
#   or one binary with and without a flag: FLAGS_B=--tune-gemms benches/ab_energy.sh BIN BIN --llm ...
# Env: ROUNDS (default 2); FLAGS_A, FLAGS_B: measure flags for that side only (space-separated).
set -u -o pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BIN_A BIN_B [measure flags...] (got $# arguments)" >&2
    exit 2
fi
A="$1"; B="$2"; shift 2
for bin in "$A" "$B"; do
    [ -x "$bin" ] || { echo "error: BIN $bin: not an executable file (build one: scripts/dev_binary.sh)" >&2; exit 2; }
done
RES="${OUT:-/tmp/energy-fit-ab}"
mkdir -p "$RES"
rounds="${ROUNDS:-2}"
rc=0
for r in $(seq 1 "$rounds"); do
    order="A B"; [ $((r % 2)) -eq 0 ] && order="B A"
    for x in $order; do
        bin="$A"; side="${FLAGS_A:-}"; [ "$x" = B ] && { bin="$B"; side="${FLAGS_B:-}"; }
        # shellcheck disable=SC2086 # the side's flags are split into words on purpose
        "$bin" measure "$@" $side --out "$RES/ab-$x-r$r.csv" --quiet > "$RES/ab-$x-r$r.log" 2>&1 || { echo "round $r $x: measure failed (see ab-$x-r$r.log)" >&2; rc=1; }
    done
done
python3 - "$RES" "$rounds" <<'PY' | tee "$RES/summary.txt"
import csv, os, statistics, sys
res, rounds = sys.argv[1], int(sys.argv[2])
tpj = {}  # (n, m) -> {"A": [per round], "B": [...]}
for x in "AB":
    for r in range(1, rounds + 1):
        f = os.path.join(res, f"ab-{x}-r{r}.csv")
        if not os.path.exists(f):
            continue
        for row in csv.DictReader(open(f)):
            if row.get("status", "ok") == "ok":
                k = (int(row["input_tokens"]), int(row["output_tokens"]))
                tpj.setdefault(k, {"A": [], "B": []})[x].append(float(row["generated_tokens"]) / float(row["energy_j"]))
print(f"{'n':>6}{'m':>6}  {'A tokens/J (rounds)':<28}{'B tokens/J (rounds)':<28}{'B/A':>7}")
for k in sorted(tpj):
    a, b = tpj[k]["A"], tpj[k]["B"]
    ratio = f"{statistics.mean(b) / statistics.mean(a):.4f}" if a and b else "-"
    print(f"{k[0]:>6}{k[1]:>6}  {' '.join(f'{v:.2f}' for v in a):<28}{' '.join(f'{v:.2f}' for v in b):<28}{ratio:>7}")
PY
exit $rc
