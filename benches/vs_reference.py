#!/usr/bin/env python3
"""Measured tokens/J against the published TensorRT-LLM surface , per grid point.

Reference tokens/J at (n, m) comes from `energy-fit predict --fit fits/reference/<llm>.flops-mem.json` (the
published flops-mem coefficients); measured tokens/J is the mean over a point's repeats.
Usage: python3 benches/vs_reference.py data/llama-3.2-1b-h100.csv [--llm L] [--bin target/release/energy-fit]
                                       [--fill OLD.csv] [--floor [--gpu-mem-gib G]]
(--llm defaults to the file's one LLM. --fill takes the points the file lacks from OLD.csv, marked *:
the whole grid's standing while a re-measurement is part way. --floor adds what each point could reach
at its roofline bound, `measure --dry-run`'s, drawing the power it was measured at, and how close to
that bound the engine must run for a 1.3x median, and with how much more tokens/J.)
"""
import argparse, csv, json, statistics, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--llm", help="which LLM's rows (needed when the file has several)")
ap.add_argument("--bin", default="target/release/energy-fit")
ap.add_argument("--fill", help="measurement file whose points fill those the first file lacks (marked *)")
ap.add_argument("--floor", action="store_true", help="also tokens/J at the roofline bound and the measured power")
ap.add_argument("--gpu-mem-gib", default="79.6", help="GPU memory for the bound's KV capacity (H100 80GB: 79.6)")
a = ap.parse_args()
TARGET = 1.3  # the engine's goal: the median over the grid at least 1.3x the reference
SETTINGS = ("requests", "max_batch_size", "max_num_tokens", "dtype")


def load(path):
    """The ok rows of llm a.llm per (n, m) (a.llm is set from the file when it has one LLM)."""
    try:
        rows_in = list(csv.DictReader(open(path)))
    except OSError as e:
        sys.exit(f"error: {path}: {e.strerror}")
    llms = sorted({r["llm"] for r in rows_in})
    if a.llm is None:
        if len(llms) != 1:
            sys.exit(f"error: {path} has rows for {len(llms)} LLMs ({', '.join(llms)}); name one with --llm")
        a.llm = llms[0]
    got = {}
    for r in rows_in:
        if r["llm"] == a.llm and r.get("status", "ok") == "ok":
            got.setdefault((int(r["input_tokens"]), int(r["output_tokens"])), []).append(r)
    if not got:
        sys.exit(f"error: {path}: no rows with status ok for llm {a.llm} (LLMs in the file: {', '.join(llms) or 'none'})")
    return got


def tokens(r):
    return float(r["generated_tokens"]) if r.get("generated_tokens") else int(r["requests"]) * int(r["output_tokens"])


def energy_fit(*args):
    """stdout of `a.bin args`, or exit naming the command and what it said."""
    cmd = [a.bin, *map(str, args)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        sys.exit(f"error: --bin {a.bin}: {e.strerror}")
    if p.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed (exit {p.returncode}): {p.stderr.strip()}")
    return p.stdout


def bounds_s(pts):
    """`measure --dry-run`'s roofline seconds per point, for the settings the rows were measured with."""
    settings = {tuple(r.get(k, "") for k in SETTINGS) for rs in pts.values() for r in rs}
    if len(settings) != 1:
        sys.exit(f"error: --floor needs one setting of {', '.join(SETTINGS)} over the rows; found {sorted(settings)}")
    (s,) = settings
    if "" in s:
        sys.exit(f"error: --floor needs the columns {', '.join(SETTINGS)}; a row lacks {SETTINGS[s.index('')]}")
    with tempfile.TemporaryDirectory() as tmp:
        energy_fit("measure", "--llm", a.llm, "--inputs", ",".join(map(str, ns)), "--outputs", ",".join(map(str, ms)),
                   "--requests", s[0], "--max-batch-size", s[1], "--max-num-tokens", s[2], "--dtype", s[3],
                   "--dry-run", "--gpu-mem-gib", a.gpu_mem_gib, "--plan-csv", f"{tmp}/plan.csv")
        with open(f"{tmp}/plan.csv", newline="") as f:
            plan = list(csv.DictReader(f))
    # Points that do not fit have fits=false and no est_s.
    est = {(int(r["input_tokens"]), int(r["output_tokens"])): float(r["est_s"])
           for r in plan if r["llm"] == a.llm and r["fits"] == "true"}
    missing = sorted(k for k in pts if k not in est)
    if missing:
        sys.exit(f"error: `measure --dry-run` gave no bound for {missing} (too large for {a.gpu_mem_gib} GiB?)")
    return est


def table(title, width, cell):
    if title:
        print(f"\n{title}")
    print("n\\m   " + "".join(f"{m:>{width}}" for m in ms))
    for n in ns:
        print(f"{n:<6}" + "".join(f"{'-':>{width}}" if (n, m) not in pts else cell(n, m) for m in ms))


def summary(v, what):
    v = sorted(v)
    return (f"{len(v)} points: median {what} {statistics.median(v):.2f}, min {v[0]:.2f}, max {v[-1]:.2f}; "
            f"{sum(x >= 1 for x in v)} of {len(v)} at or above the reference, {sum(x >= TARGET for x in v)} at {TARGET}x or more")


pts = load(a.data)
filled = set()
if a.fill:
    for k, v in load(a.fill).items():
        if k not in pts:
            pts[k] = v
            filled.add(k)
ns, ms = sorted({n for n, _ in pts}), sorted({m for _, m in pts})
est = bounds_s(pts) if a.floor else {}  # first, so that bad --floor input is refused before any work
ours = {k: statistics.mean(tokens(r) / float(r["energy_j"]) for r in rs) for k, rs in pts.items()}
ref = {}
for n, m in pts:
    j = json.loads(energy_fit("predict", "--fit", f"fits/reference/{a.llm}.flops-mem.json", "--input", n, "--output", m, "--json"))
    ref[(n, m)] = j["tokens_per_j"]
ratios = {k: ours[k] / ref[k] for k in pts}


def ratio_cell(v):
    """A table cell of ratios v, marked * where the point came from --fill."""
    return lambda n, m: f"{v[(n, m)]:>7.2f}" + ("*" if (n, m) in filled else " ")


print(f"{a.llm}: measured tokens/J / reference tokens/J (rows n, columns m); measured and reference below")
table("", 8, ratio_cell(ratios))
table("ours / reference tokens/J", 14, lambda n, m: f"{ours[(n, m)]:>7.1f}/{ref[(n, m)]:<6.1f}")
print("\n" + summary(ratios.values(), "ratio") + (f"; * {len(filled)} from {a.fill}" if filled else ""))
if a.floor:
    # Tokens/J if the point ran at its bound drawing its measured power. Optimistic for a faster engine
    # doing the same work (only the static part of the energy shrinks with time, the joules per FLOP
    # and byte stay); not for one that also drops wasted work (bytes read twice, idle spinning).
    floor = {k: statistics.mean(tokens(r) / (est[k] * float(r["avg_power_w"])) for r in rs) for k, rs in pts.items()}
    at_bound = {k: floor[k] / ref[k] for k in pts}
    table("at the roofline bound (measure --dry-run; peak FLOP/s and bandwidth in src/measure/cost.rs) and the "
          "measured power: tokens/J / reference tokens/J", 8, ratio_cell(at_bound))
    table("ours / that bound's tokens/J", 8, ratio_cell({k: ours[k] / floor[k] for k in pts}))
    print("\nat the bound: " + summary(at_bound.values(), "ratio"))
    # The median target: it holds once N//2 + 1 points are at TARGET or more (the median of an
    # even count averages two). The points that can get there at their bound; of those, the N//2 + 1
    # that need the smallest share of their bound: that share (how close to the roofline the engine
    # must run) and the tokens/J they need over ours.
    k = len(pts) // 2 + 1
    can = sorted((TARGET / at_bound[p], max(1.0, TARGET / ratios[p])) for p in pts if at_bound[p] >= TARGET)
    head = f"for a median of {TARGET}x, {k} of {len(pts)} points must reach {TARGET}x; {len(can)} can at their bound"
    if len(can) < k:
        print(head + ": the median target is beyond the bound")
    else:
        gain = [g for _, g in can[:k]]
        print(head + f"; the {k} that need the least of it need up to {can[k - 1][0]:.2f} of their bound "
              f"and up to {100 * (max(gain) - 1):.0f} % more tokens/J ({sum(g == 1.0 for g in gain)} already there)")
