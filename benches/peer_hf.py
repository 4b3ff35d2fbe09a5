#!/usr/bin/env python3
"""Peer engine side by side: HF transformers `generate` on the same LLM shape, metered like `measure`.

The HF transformers peer: the same LLM shape (from `energy-fit llms --json`), random weights, the same
requests (random prompts of exactly n tokens, exactly m generated tokens, greedy, no EOS), batches of
at most --max-batch-size requests, metered the way `energy-fit measure` meters: NVML's cumulative
energy counter read at the window's ends (window = from submitting the first batch to the last
token, warm-up outside), power / clocks / temperature sampled every 100 ms, a window shorter than
--min-window-s repeated inside the window. Rows are appended in our dataset format (the `engine`
column names transformers, torch and the attention implementation), one flushed row per point, so
`energy-fit fit` / `report` read them beside ours.

NVML is called through ctypes (libnvidia-ml.so.1, no Python package needed); nothing on the GPU is
changed. Usage (GPU machine):
    energy-fit llms --json > /tmp/llms.json
    python3 benches/peer_hf.py --llms-json /tmp/llms.json --llm llama-3.2-1b --requests 1024 \
        --points 64x256 --out benches/results/peer_hf.csv
"""
import argparse, csv, ctypes, datetime, json, os, sys, threading, time

import torch
import transformers

COLUMNS = ["llm", "input_tokens", "output_tokens", "requests", "energy_j", "gpu", "driver", "engine", "dtype",
           "max_batch_size", "max_num_tokens", "duration_s", "avg_power_w", "idle_power_w", "sm_clock_mhz",
           "mem_clock_mhz", "max_temp_c", "generated_tokens", "repeat", "started_at", "status", "gpu_index",
           "power_limit_w", "window_s", "window_runs", "window_energy_j", "samples"]


class Nvml:
    """The few NVML calls the meter needs (same counter as src/measure/meter.rs)."""

    def __init__(self, index):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        self._ok(self.lib.nvmlInit_v2(), "nvmlInit")
        self.h = ctypes.c_void_p()
        self._ok(self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(self.h)), f"GPU {index}")

    def _ok(self, rc, what):
        if rc != 0:
            raise RuntimeError(f"NVML refused {what} (error {rc})")

    def _uint(self, fn, *args):
        v = ctypes.c_uint()
        self._ok(fn(self.h, *args, ctypes.byref(v)), fn.__name__)
        return v.value

    def energy_mj(self):
        v = ctypes.c_ulonglong()
        self._ok(self.lib.nvmlDeviceGetTotalEnergyConsumption(self.h, ctypes.byref(v)), "the energy counter")
        return v.value

    def sample(self):  # (power W, SM MHz, memory MHz, temperature C)
        return (self._uint(self.lib.nvmlDeviceGetPowerUsage) / 1000.0, self._uint(self.lib.nvmlDeviceGetClockInfo, 1),
                self._uint(self.lib.nvmlDeviceGetClockInfo, 2), self._uint(self.lib.nvmlDeviceGetTemperature, 0))

    def name(self):
        b = ctypes.create_string_buffer(96)
        self._ok(self.lib.nvmlDeviceGetName(self.h, b, 96), "the name")
        return b.value.decode()

    def driver(self):
        b = ctypes.create_string_buffer(80)
        self._ok(self.lib.nvmlSystemGetDriverVersion(b, 80), "the driver version")
        return b.value.decode()

    def power_limit_w(self):
        return self._uint(self.lib.nvmlDeviceGetEnforcedPowerLimit) / 1000.0


class Sampler(threading.Thread):
    def __init__(self, nvml, period=0.1):
        super().__init__(daemon=True)
        self.nvml, self.period, self.samples, self.stop = nvml, period, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append(self.nvml.sample())
            self.stop.wait(self.period)

    def finish(self):
        self.stop.set()
        self.join()
        return self.samples


def hf_config(spec):
    """HF config of a catalog entry (`energy-fit llms --json`); llama and qwen2 shapes."""
    arch = spec["arch"]
    if arch not in ("llama", "qwen2"):
        raise SystemExit(f"peer_hf.py: {spec['name']}: architecture {arch!r} is not supported here (llama, qwen2)")
    rope = spec["positional"]["Rope"]
    sc = (rope.get("scaling") or {}).get("Llama3")
    scaling = None if sc is None else {"rope_type": "llama3", "factor": sc["factor"], "low_freq_factor": sc["low_freq_factor"],
                                       "high_freq_factor": sc["high_freq_factor"],
                                       "original_max_position_embeddings": sc["original_max_positions"]}
    return transformers.AutoConfig.for_model(
        arch, hidden_size=spec["hidden"], intermediate_size=spec["ffn_dim"], num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"], num_key_value_heads=spec["kv_heads"], head_dim=spec["head_dim"],
        vocab_size=spec["vocab"], max_position_embeddings=spec["max_positions"], rope_theta=rope["theta"],
        rope_scaling=scaling, tie_word_embeddings=spec["tied_embeddings"], attention_bias=spec["qkv_bias"],
        bos_token_id=None, eos_token_id=None, pad_token_id=0)


def generate_all(model, prompts, m, mbs):
    out = 0
    for i in range(0, len(prompts), mbs):
        batch = prompts[i:i + mbs]
        g = model.generate(input_ids=batch, attention_mask=torch.ones_like(batch), max_new_tokens=m, min_new_tokens=m,
                           do_sample=False, eos_token_id=None, pad_token_id=0)
        out += (g.shape[1] - batch.shape[1]) * batch.shape[0]
    torch.cuda.synchronize()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llms-json", required=True, help="output of `energy-fit llms --json`")
    ap.add_argument("--llm", default="llama-3.2-1b")
    ap.add_argument("--points", default="64x256", help="NxM,… (input x output tokens)")
    ap.add_argument("--requests", type=int, default=1024)
    ap.add_argument("--max-batch-size", type=int, default=1024)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--attn", default="sdpa", help="HF attn_implementation (sdpa, eager, …)")
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--min-window-s", type=float, default=5.0)
    ap.add_argument("--out", required=True, help="CSV to append rows to")
    a = ap.parse_args()

    catalog = json.load(open(a.llms_json))
    catalog = catalog.get("llms", catalog) if isinstance(catalog, dict) else catalog
    spec = next((c for c in catalog if c["name"] == a.llm), None)
    if spec is None:
        raise SystemExit(f"peer_hf.py: {a.llm} is not in {a.llms_json}")
    nvml = Nvml(a.gpu)
    torch.cuda.set_device(a.gpu)
    tdt = torch.bfloat16 if a.dtype == "bf16" else torch.float16
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config(spec), torch_dtype=tdt, attn_implementation=a.attn)
    model.eval()
    engine = f"transformers {transformers.__version__} (torch {torch.__version__}, generate, {a.attn})"
    print(f"{a.llm}: {sum(p.numel() for p in model.parameters()) / 1e9:.3f} B parameters; {engine} on {nvml.name()}", flush=True)
    new = not os.path.exists(a.out) or os.path.getsize(a.out) == 0
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    f = open(a.out, "a", newline="")
    w = csv.DictWriter(f, fieldnames=COLUMNS)
    if new:
        w.writeheader()
    for pt in a.points.split(","):
        n, m = (int(x) for x in pt.lower().split("x"))
        g = torch.Generator(device="cpu").manual_seed(n * 100003 + m)
        prompts = torch.randint(1, spec["vocab"], (a.requests, n), generator=g).cuda()
        with torch.inference_mode():
            generate_all(model, prompts[: min(4, a.requests)], 4, a.max_batch_size)  # warm-up, outside the window
            time.sleep(1.0)
            idle = nvml.sample()[0]
            sampler = Sampler(nvml)
            started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            sampler.start()
            e0, t0 = nvml.energy_mj(), time.perf_counter()
            runs, tokens = 0, 0
            while True:  # short windows are repeated inside the window, as `measure` does
                tokens += generate_all(model, prompts, m, a.max_batch_size)
                runs += 1
                if time.perf_counter() - t0 >= a.min_window_s:
                    break
            t1, e1 = time.perf_counter(), nvml.energy_mj()
            s = sampler.finish()
        win_s, win_j = t1 - t0, (e1 - e0) / 1000.0
        mean = lambda i: sum(x[i] for x in s) / max(len(s), 1)
        row = dict(llm=a.llm, input_tokens=n, output_tokens=m, requests=a.requests, energy_j=win_j / runs,
                   gpu=nvml.name(), driver=nvml.driver(), engine=engine, dtype=a.dtype, max_batch_size=a.max_batch_size,
                   max_num_tokens="", duration_s=win_s / runs, avg_power_w=win_j / win_s, idle_power_w=idle,
                   sm_clock_mhz=mean(1), mem_clock_mhz=mean(2), max_temp_c=max((x[3] for x in s), default=""),
                   generated_tokens=tokens // runs, repeat=0, started_at=started, status="ok", gpu_index=a.gpu,
                   power_limit_w=nvml.power_limit_w(), window_s=win_s, window_runs=runs, window_energy_j=win_j, samples=len(s))
        w.writerow(row)
        f.flush()
        print(f"{a.llm} n={n} m={m} R={a.requests}: {row['energy_j']:.1f} J, {row['generated_tokens'] / row['energy_j']:.2f} tokens/J, "
              f"{row['duration_s']:.2f} s per run ({runs} runs in {win_s:.1f} s), {row['avg_power_w']:.0f} W", flush=True)


if __name__ == "__main__":
    sys.exit(main())
