#!/usr/bin/env python3
"""MAPE of a fit on a measurement file's hold-out rows (role `holdout`: measured, never fitted).

Usage: python3 benches/holdout_mape.py DATA.csv FIT.json [--bin target/release/energy-fit]
Prints each hold-out point's relative error of e (J per output token) and their mean; the fit's
prediction comes from `energy-fit predict --json`.
"""
import argparse, csv, json, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("fit")
ap.add_argument("--bin", default="target/release/energy-fit")
a = ap.parse_args()

try:
    rows = [r for r in csv.DictReader(open(a.data)) if r.get("role") == "holdout" and r.get("status", "ok") == "ok"]
except OSError as e:
    sys.exit(f"error: {a.data}: {e.strerror}")
if not rows:
    sys.exit(f"error: {a.data} has no ok rows with role holdout")
errs = []
for r in rows:
    n, m = r["input_tokens"], r["output_tokens"]
    cmd = [a.bin, "predict", "--fit", a.fit, "--input", n, "--output", m, "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)}: {p.stderr.strip()}")
    pred = json.loads(p.stdout)["energy_per_token_j"]
    e = float(r["energy_j"]) / float(r["requests"]) / float(m)
    errs.append(abs(pred - e) / e * 100)
    print(f"n={n:>5} m={m:>5}  measured {e:.4e} J/token  predicted {pred:.4e}  error {errs[-1]:.2f} %")
print(f"{len(errs)} hold-out points: MAPE {sum(errs) / len(errs):.2f} %")
