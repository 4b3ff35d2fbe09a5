#!/usr/bin/env python3
"""Measured tokens/J against the published TensorRT-LLM surface (issue 6's table), per grid point.

Reference tokens/J at (n, m) comes from `energy-fit predict --fit fits/reference/<llm>.flops-mem.json` (the
published flops-mem coefficients); measured tokens/J is the mean over a point's repeats.
Usage: python3 benches/vs_reference.py data/llama-3.2-1b-h100.csv [--llm L] [--bin target/release/energy-fit]
(--llm defaults to the file's one LLM.)
"""
import argparse, csv, json, statistics, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--llm", help="which LLM's rows (needed when the file has several)")
ap.add_argument("--bin", default="target/release/energy-fit")
a = ap.parse_args()
rows_in = list(csv.DictReader(open(a.data)))
llms = sorted({r["llm"] for r in rows_in})
if a.llm is None:
    if len(llms) != 1:
        sys.exit(f"error: {a.data} has rows for {len(llms)} LLMs ({', '.join(llms)}); name one with --llm")
    a.llm = llms[0]
pts = {}
for r in rows_in:
    if r["llm"] == a.llm and r.get("status", "ok") == "ok":
        tpj = float(r["generated_tokens"]) / float(r["energy_j"]) if r.get("generated_tokens") else \
            int(r["requests"]) * int(r["output_tokens"]) / float(r["energy_j"])
        pts.setdefault((int(r["input_tokens"]), int(r["output_tokens"])), []).append(tpj)
if not pts:
    sys.exit(f"error: {a.data}: no rows with status ok for llm {a.llm} (LLMs in the file: {', '.join(llms) or 'none'})")
ns, ms = sorted({n for n, _ in pts}), sorted({m for _, m in pts})
ratios = {}
print(f"{a.llm}: measured tokens/J / reference tokens/J (rows n, columns m); measured and reference below")
rows = []
for n in ns:
    cells = []
    for m in ms:
        if (n, m) not in pts:
            cells.append(None)
            continue
        j = json.loads(subprocess.run([a.bin, "predict", "--fit", f"fits/reference/{a.llm}.flops-mem.json", "--input", str(n), "--output", str(m), "--json"],
                                      check=True, capture_output=True, text=True).stdout)
        ours = statistics.mean(pts[(n, m)])
        ratios[(n, m)] = ours / j["tokens_per_j"]
        cells.append((ours, j["tokens_per_j"]))
    rows.append((n, cells))
print("n\\m   " + "".join(f"{m:>8}" for m in ms))
for n, cells in rows:
    print(f"{n:<6}" + "".join(f"{'-':>8}" if c is None else f"{c[0] / c[1]:>8.2f}" for c in cells))
print("\nours / reference tokens/J")
print("n\\m   " + "".join(f"{m:>14}" for m in ms))
for n, cells in rows:
    print(f"{n:<6}" + "".join(f"{'-':>14}" if c is None else f"{c[0]:>7.1f}/{c[1]:<6.1f}" for c in cells))
v = sorted(ratios.values())
print(f"\n{len(v)} points: median ratio {statistics.median(v):.2f}, min {v[0]:.2f}, max {v[-1]:.2f}; "
      f"{sum(x >= 1 for x in v)} of {len(v)} at or above the reference")
