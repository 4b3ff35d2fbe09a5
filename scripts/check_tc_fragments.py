#!/usr/bin/env python3
"""CPU check of attention_tc.cu's fragment index math (no GPU): simulates one warp's ldmatrix
(x4, x4.trans) and mma.m16n8k16 with the PTX ISA's documented layouts, feeding them the kernel's
own lane → shared-memory-row expressions, and compares S = Q·Kᵀ and O = P·V with numpy. Keep the
four address lambdas below in sync with the kernel. Needs numpy."""
import numpy as np

def ldm(smem, addr, trans):
    """ldmatrix .x4: lane 8i+j supplies row j of matrix i; lane 4r+w gets (row r, words w)."""
    mats = [np.array([smem[r, c:c + 8] for r, c in (addr(8 * i + j) for j in range(8))]) for i in range(4)]
    out = []
    for lane in range(32):
        g, t = lane // 4, lane % 4
        out.append([(m[2 * t, g], m[2 * t + 1, g]) if trans else (m[g, 2 * t], m[g, 2 * t + 1]) for m in mats])
    return out

def mma(d, a, b0, b1):
    """d[lane] (4 floats) += A(16x16, from a[lane] 4 pairs) · B(16x8, from b0/b1[lane] pairs)."""
    A, B = np.zeros((16, 16)), np.zeros((16, 8))
    for lane in range(32):
        g, t = lane // 4, lane % 4
        A[g, 2 * t:2 * t + 2], A[g + 8, 2 * t:2 * t + 2] = a[lane][0], a[lane][1]
        A[g, 2 * t + 8:2 * t + 10], A[g + 8, 2 * t + 8:2 * t + 10] = a[lane][2], a[lane][3]
        B[2 * t:2 * t + 2, g], B[2 * t + 8:2 * t + 10, g] = b0[lane], b1[lane]
    C = A @ B
    for lane in range(32):
        g, t = lane // 4, lane % 4
        d[lane] = [d[lane][0] + C[g, 2 * t], d[lane][1] + C[g, 2 * t + 1], d[lane][2] + C[g + 8, 2 * t], d[lane][3] + C[g + 8, 2 * t + 1]]

def unfrag(acc, cols):
    m = np.zeros((16, cols))
    for n, tile in enumerate(acc):
        for lane, v in enumerate(tile):
            g, t = lane // 4, lane % 4
            m[g, n * 8 + 2 * t:n * 8 + 2 * t + 2], m[g + 8, n * 8 + 2 * t:n * 8 + 2 * t + 2] = v[0:2], v[2:4]
    return m

rng = np.random.default_rng(0)
worst = 0.0
for hd in (16, 32, 64, 80, 96, 128, 256):
    kt, s_, w = (64 if hd <= 128 else 32), hd + 8, 2
    nt, nd, kd = kt // 8, hd // 8, hd // 16
    Qs, Ks, Vs = (np.pad(rng.standard_normal((r, hd)), ((0, 0), (0, 8))) for r in (64, kt, kt))
    s = [[[0.0] * 4 for _ in range(32)] for _ in range(nt)]
    for k in range(kd):
        a = ldm(Qs, lambda l: (w * 16 + (l & 7) + ((l >> 3) & 1) * 8, k * 16 + (l >> 4) * 8), False)
        for n in range(0, nt, 2):
            b = ldm(Ks, lambda l: (n * 8 + (l & 7) + (l >> 4) * 8, k * 16 + ((l >> 3) & 1) * 8), False)
            mma(s[n], a, [x[0] for x in b], [x[1] for x in b])
            mma(s[n + 1], a, [x[2] for x in b], [x[3] for x in b])
    S = Qs[w * 16:w * 16 + 16, :hd] @ Ks[:, :hd].T
    worst = max(worst, np.abs(unfrag(s, kt) - S).max() / np.abs(S).max())
    o = [[[0.0] * 4 for _ in range(32)] for _ in range(nd)]
    for k in range(kt // 16):  # P = S, taken from the accumulators as the A operand
        a = [[tuple(s[2 * k][l][0:2]), tuple(s[2 * k][l][2:4]), tuple(s[2 * k + 1][l][0:2]), tuple(s[2 * k + 1][l][2:4])] for l in range(32)]
        for n in range(0, nd, 2):
            b = ldm(Vs, lambda l: (k * 16 + (l & 7) + ((l >> 3) & 1) * 8, n * 8 + (l >> 4) * 8), True)
            mma(o[n], a, [x[0] for x in b], [x[1] for x in b])
            mma(o[n + 1], a, [x[2] for x in b], [x[3] for x in b])
    O = S @ Vs[:, :hd]
    worst = max(worst, np.abs(unfrag(o, hd) - O).max() / np.abs(O).max())
print(f"fragment index math: max relative error {worst:.1e} over head dims 16..256")
raise SystemExit(0 if worst < 1e-12 else 1)
