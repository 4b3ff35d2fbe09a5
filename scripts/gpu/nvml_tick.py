#!/usr/bin/env python3
"""How often NVML's cumulative energy counter moves, idle and under load, and how long one read
takes: the numbers the meter's window alignment rests on (src/measure/meter.rs). Polls the counter
as fast as NVML answers; under load a bf16 matmul loop (torch) keeps the GPU busy. Reads only.

Usage: python3 scripts/gpu/nvml_tick.py [--seconds 3] [--gpu 0]
"""
import argparse, ctypes, statistics, threading, time


def counter(gpu):
    lib = ctypes.CDLL("libnvidia-ml.so.1")
    assert lib.nvmlInit_v2() == 0, "nvmlInit"
    h = ctypes.c_void_p()
    assert lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(gpu), ctypes.byref(h)) == 0, "handle"
    v = ctypes.c_ulonglong()

    def read():
        rc = lib.nvmlDeviceGetTotalEnergyConsumption(h, ctypes.byref(v))
        assert rc == 0, f"energy counter rc {rc}"
        return v.value
    return read


def poll(read, seconds):
    """(call times, [(t, mJ) at every change])."""
    t0 = time.perf_counter()
    last, ticks, calls = read(), [], []
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        e = read()
        b = time.perf_counter()
        calls.append(b - a)
        if e != last:
            ticks.append((b - t0, e - last))
            last = e
    return calls, ticks


def report(name, calls, ticks):
    gaps = [1e3 * (b[0] - a[0]) for a, b in zip(ticks, ticks[1:])]
    steps = [d for _, d in ticks[1:]]
    if len(gaps) < 2:
        print(f"{name}: {len(ticks)} changes, too few")
        return
    print(f"{name}: {len(calls)} reads, {1e3 * statistics.median(calls):.2f} ms per read (max {1e3 * max(calls):.2f}); "
          f"{len(ticks)} changes, interval median {statistics.median(gaps):.1f} ms (min {min(gaps):.1f}, max {max(gaps):.1f}), "
          f"step median {statistics.median(steps)} mJ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--gpu", type=int, default=0)
    a = ap.parse_args()
    read = counter(a.gpu)
    report("idle", *poll(read, a.seconds))
    import torch
    x = torch.randn(8192, 8192, device=f"cuda:{a.gpu}", dtype=torch.bfloat16)
    stop = threading.Event()

    def load():
        while not stop.is_set():
            for _ in range(20):
                x @ x
            torch.cuda.synchronize()
    th = threading.Thread(target=load)
    th.start()
    time.sleep(1.0)
    report("matmul load", *poll(read, a.seconds))
    stop.set()
    th.join()


if __name__ == "__main__":
    main()
