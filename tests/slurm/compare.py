#!/usr/bin/env python3
"""Check a merged Slurm sweep against a single-process sweep of the same grid (stand-in meter).

Usage: compare.py MERGED SINGLE KILLED_BEFORE KILLED_AFTER POINTS

- MERGED holds POINTS rows, one per (llm, input, output, requests, max_batch_size, max_num_tokens,
  dtype, repeat), all `ok`, and exactly the points of SINGLE.
- Per point, the columns the stand-in fixes (gpu, driver, engine, lengths, generated tokens, ...) are
  equal; the timed ones (energy, duration, windows, power) agree within 5 %: the stand-in's energy is
  constant power x a sleep of R (n + m) us_per_token, so only the sleep's overshoot differs.
- KILLED_BEFORE (the killed task's shard file as it was right after the kill) is a prefix of
  KILLED_AFTER, line for line: the requeued task resumed its file and rewrote nothing, and
  KILLED_AFTER holds no point twice.
"""

import csv
import sys

KEY = ["llm", "input_tokens", "output_tokens", "requests", "max_batch_size", "max_num_tokens",
       "dtype", "repeat"]
EXACT = ["gpu", "driver", "engine", "idle_power_w", "sm_clock_mhz", "mem_clock_mhz", "max_temp_c",
         "generated_tokens", "status", "gpu_index", "power_limit_w", "window_runs", "role",
         "prefill_energy_j", "decode_energy_j"]
TIMED = ["energy_j", "duration_s", "avg_power_w", "window_s", "window_energy_j"]
TOL = 0.05


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_key(path):
    out = {}
    for i, r in enumerate(rows(path), start=2):
        k = tuple(r[c] for c in KEY)
        if k in out:
            sys.exit(f"FAIL: {path}: line {i}: point {dict(zip(KEY, k))} written twice")
        out[k] = r
    return out


def main():
    merged_path, single_path, before_path, after_path, points = sys.argv[1:6]
    merged, single = by_key(merged_path), by_key(single_path)
    if len(merged) != int(points):
        sys.exit(f"FAIL: {merged_path}: {len(merged)} points, expected {points}")
    if set(merged) != set(single):
        sys.exit(f"FAIL: points only in the merge: {sorted(set(merged) - set(single))}; "
                 f"only in the single-process sweep: {sorted(set(single) - set(merged))}")
    worst = 0.0
    for k, m in merged.items():
        s = single[k]
        if m["status"] != "ok":
            sys.exit(f"FAIL: {merged_path}: point {k}: status {m['status']!r}")
        for c in EXACT:
            if m[c] != s[c]:
                sys.exit(f"FAIL: point {k}: {c} {m[c]!r} in the merge, {s[c]!r} in one process")
        for c in TIMED:
            a, b = float(m[c]), float(s[c])
            rel = abs(a - b) / b
            worst = max(worst, rel)
            if rel > TOL:
                sys.exit(f"FAIL: point {k}: {c} {a} in the merge, {b} in one process "
                         f"({100 * rel:.1f} % apart, over {100 * TOL:.0f} %)")
    with open(before_path) as f:
        text = f.read()
    # A line cut by the kill (no newline yet) is not a row; the resumed run may rewrite it.
    before = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    with open(after_path) as f:
        after = f.read().splitlines()
    if len(before) < 2 or after[:len(before)] != before:
        sys.exit(f"FAIL: {after_path} does not continue the {len(before) - 1} row(s) it held "
                 "when its task was killed")
    by_key(after_path)
    print(f"{len(merged)} points, each once; equal to the single-process sweep (timed columns "
          f"within {100 * worst:.2f} %); the killed shard kept its {len(before) - 1} row(s) "
          f"and resumed to {len(after) - 1}")


if __name__ == "__main__":
    main()
