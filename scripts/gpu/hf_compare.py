#!/usr/bin/env python3
"""Compare the energy-fit engine with HF transformers on tiny random checkpoints.

One case per architecture switch: llama (GQA, tied embeddings, llama3 RoPE scaling), qwen2 (QKV
bias), granite-shaped llama (head dim 80, attention/MLP biases), opt (LayerNorm, learned positions
with offset 2, ReLU, biases, MHA, head dim 80), falcon rw-style (ALiBi with a non-power-of-two head
count, LayerNorm, exact GELU, biases, per-head interleaved query_key_value) and gemma2 (scaled
embeddings, RMSNorm(1+w) before and after each block, tanh GeGLU, head dim 256,
query_pre_attn_scalar, attention and final logit soft-capping, sliding window 64 on even layers,
smaller than the longest prompt). For each case this script builds a random model with
transformers, saves it as safetensors, runs `energy-fit engine-dump` on a batch of prompts of
different lengths (prefill + 16 greedy decode steps), and compares the engine's logits at every
step with HF's logits on the same token sequence (teacher forcing on the engine's tokens, so a
near-tie cannot make the sequences diverge). Reports per-step relative error ||ours-hf||/||hf||
(worst over requests) and greedy-token agreement; fails if any step is >= the tolerance.

falcon is compared with HF's SDPA path: in transformers 5.x the eager path adds the ALiBi bias
twice (once in FalconAttention, once through the causal mask that FalconModel builds from it);
the eager result is reported alongside for information.
"""
import argparse, json, os, subprocess, sys, time
import torch
import transformers
from transformers import (FalconConfig, FalconForCausalLM, Gemma2Config, Gemma2ForCausalLM, LlamaConfig,
                          LlamaForCausalLM, OPTConfig, OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM)

TOL = 2e-2
PROMPT_LENS = [5, 33, 64, 130]
STEPS = 16  # decode steps after the prefill


def make_config(cls, rope, **kw):
    """Build a config with RoPE given the transformers-5 way, falling back to the 4.x fields."""
    try:
        return cls(rope_parameters=rope, **kw)
    except TypeError:
        r = dict(rope)
        theta = r.pop("rope_theta")
        return cls(rope_theta=theta, rope_scaling=(r if r.get("rope_type", "default") != "default" else None), **kw)


def cases():
    """name -> (model class, config, attention implementation of the reference)."""
    llama3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    return {
        "llama-gqa-tied": (LlamaForCausalLM, make_config(
            LlamaConfig, llama3, vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=3,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
            rms_norm_eps=1e-5), "eager"),
        "qwen2-qkv-bias": (Qwen2ForCausalLM, make_config(
            Qwen2Config, {"rope_type": "default", "rope_theta": 1000000.0}, vocab_size=1200, hidden_size=256,
            intermediate_size=640, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
            max_position_embeddings=1024, tie_word_embeddings=False, rms_norm_eps=1e-6), "eager"),
        "granite-hd80": (LlamaForCausalLM, make_config(
            LlamaConfig, {"rope_type": "default", "rope_theta": 10000.0}, vocab_size=900, hidden_size=320,
            intermediate_size=640, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, head_dim=80,
            attention_bias=True, mlp_bias=True, max_position_embeddings=1024, tie_word_embeddings=True,
            rms_norm_eps=1e-5), "eager"),
        "opt-hd80": (OPTForCausalLM, OPTConfig(
            vocab_size=1000, hidden_size=320, ffn_dim=1280, num_hidden_layers=3, num_attention_heads=4,
            max_position_embeddings=1024, word_embed_proj_dim=320, do_layer_norm_before=True, enable_bias=True,
            activation_function="relu", tie_word_embeddings=True), "eager"),
        "falcon-rw-alibi": (FalconForCausalLM, FalconConfig(
            vocab_size=1100, hidden_size=384, num_hidden_layers=3, num_attention_heads=6, alibi=True, bias=True,
            multi_query=False, parallel_attn=False, new_decoder_architecture=False, layer_norm_epsilon=1e-5,
            tie_word_embeddings=True), "sdpa"),
        "gemma2-window64": (Gemma2ForCausalLM, make_config(
            Gemma2Config, {"rope_type": "default", "rope_theta": 10000.0}, vocab_size=1300, hidden_size=384,
            intermediate_size=768, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=256,
            query_pre_attn_scalar=144, sliding_window=64, attn_logit_softcapping=5.0, final_logit_softcapping=15.0,
            max_position_embeddings=1024, rms_norm_eps=1e-6, tie_word_embeddings=True), "eager"),
    }


def randomize(model, gen, arch):
    """Random weights with O(1) activations; norms 1 +- 0.1 (gemma: w = 0 +- 0.1, applied as 1 + w) and
    biases non-zero so they are tested; gemma's embedding std 0.5 so its sqrt(hidden)-scaled residual and
    tied logits stay O(10), inside the soft-caps' bend."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name or ".ln_" in name:
                p.copy_((0.0 if arch == "gemma2" else 1.0) + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed" in name or "lm_head" in name:
                p.copy_((0.5 if arch == "gemma2" else 1.0) * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)


def load(cls, path, dtype, attn="eager", device="cuda"):
    try:
        m = cls.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    except TypeError:
        m = cls.from_pretrained(path, torch_dtype=dtype, attn_implementation=attn)
    return m.to(device).eval()


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./energy-fit")
    ap.add_argument("--work", default="/tmp/hf_compare")
    ap.add_argument("--out", default=None, help="write the JSON summary here")
    ap.add_argument("--cases", default="all", help="comma-separated case names (default all)")
    ap.add_argument("--device", default="cuda", help="torch device of the HF reference")
    ap.add_argument("--attention", default="tc", choices=["tc", "scalar"], help="engine prefill attention kernel")
    args = ap.parse_args()
    dev = args.device
    gpu = torch.cuda.get_device_name() if dev.startswith("cuda") else dev
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, reference on {gpu}")
    gen = torch.Generator().manual_seed(1234)
    summary, failed = [], 0
    wanted = None if args.cases == "all" else set(args.cases.split(","))
    for name, (cls, cfg, attn) in cases().items():
        if wanted is not None and name not in wanted:
            continue
        d = os.path.join(args.work, name)
        os.makedirs(d, exist_ok=True)
        model = cls(cfg)
        randomize(model, gen, cfg.model_type)
        model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
        prompts = [torch.randint(0, cfg.vocab_size, (n,), generator=gen).tolist() for n in PROMPT_LENS]
        with open(os.path.join(d, "prompts.json"), "w") as f:
            json.dump(prompts, f)
        for dtype_name, tdt in [("bf16", torch.bfloat16), ("fp16", torch.float16)]:
            out = os.path.join(d, f"engine_{dtype_name}.json")
            t0 = time.time()
            r = subprocess.run([args.bin, "engine-dump", "--checkpoint", d, "--prompts", os.path.join(d, "prompts.json"),
                                "--output-tokens", str(STEPS + 1), "--out", out, "--dtype", dtype_name, "--attention", args.attention],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {name} {dtype_name}: engine-dump failed:\n{r.stdout}{r.stderr}")
                failed += 1
                summary.append({"case": name, "dtype": dtype_name, "ok": False, "error": (r.stdout + r.stderr)[-2000:]})
                continue
            t_engine = time.time() - t0
            eng = json.load(open(out))
            hf = load(cls, d, tdt, attn, dev)
            hf32 = load(cls, d, torch.float32, attn, dev)
            # falcon: the eager path's result for information (double ALiBi in transformers 5.x)
            hf_eager = load(cls, d, tdt, "eager", dev) if attn != "eager" else None
            step_err = [0.0] * (STEPS + 1)
            step_err32 = [0.0] * (STEPS + 1)
            hf_vs_32 = [0.0] * (STEPS + 1)
            eager_err = 0.0
            agree, total, greedy_match = 0, 0, 0
            for i, p in enumerate(prompts):
                toks = eng["tokens"][i]
                seq = torch.tensor([p + toks[:STEPS]], device=dev)
                with torch.no_grad():
                    lg = hf(seq).logits[0].float()
                    lg32 = hf32(seq).logits[0].float()
                    lge = hf_eager(seq).logits[0].float() if hf_eager is not None else None
                    gen_ids = hf.generate(torch.tensor([p], device=dev), max_new_tokens=STEPS + 1, do_sample=False,
                                          min_new_tokens=STEPS + 1)[0, len(p):].tolist()
                greedy_match += int(gen_ids == toks)
                n = len(p)
                for s in range(STEPS + 1):
                    ours = torch.tensor(eng["logits"][i][s], device=dev)
                    ref, ref32 = lg[n - 1 + s], lg32[n - 1 + s]
                    step_err[s] = max(step_err[s], rel(ours, ref))
                    step_err32[s] = max(step_err32[s], rel(ours, ref32))
                    hf_vs_32[s] = max(hf_vs_32[s], rel(ref, ref32))
                    if lge is not None:
                        eager_err = max(eager_err, rel(ours, lge[n - 1 + s]))
                    agree += int(int(torch.argmax(ref)) == toks[s])
                    total += 1
            worst = max(step_err)
            ok = worst < TOL
            failed += 0 if ok else 1
            extra = f"; vs HF eager {eager_err:.3e} (info)" if hf_eager is not None else ""
            print(f"{'ok  ' if ok else 'FAIL'} {name:<16} {dtype_name}: worst rel err vs HF {dtype_name} ({attn}) {worst:.3e} "
                  f"(prefill {step_err[0]:.3e}, decode max {max(step_err[1:]):.3e}); vs HF fp32 {max(step_err32):.3e}; "
                  f"HF {dtype_name} vs HF fp32 {max(hf_vs_32):.3e}{extra}; argmax agreement {agree}/{total}; "
                  f"free-running greedy sequences equal to HF generate {greedy_match}/{len(prompts)}; "
                  f"engine {t_engine:.1f}s")
            summary.append({"case": name, "dtype": dtype_name, "reference_attn": attn, "prompt_lens": PROMPT_LENS,
                            "steps": STEPS + 1, "per_step_worst_rel_err": step_err,
                            "per_step_worst_rel_err_vs_fp32": step_err32, "hf_vs_fp32": hf_vs_32,
                            "vs_hf_eager": eager_err if hf_eager is not None else None, "argmax_agree": agree,
                            "total": total, "greedy_sequences_equal": greedy_match,
                            "iterations": eng.get("iterations"), "ok": ok})
            del hf, hf32, hf_eager
    if args.out:
        json.dump(summary, open(args.out, "w"), indent=1)
    print("worst per model (relative error of the logits, any step, any prompt):")
    for rec in summary:
        w = max(rec["per_step_worst_rel_err"]) if "per_step_worst_rel_err" in rec else float("nan")
        print(f"  {rec['case']:<16} {rec['dtype']}: {w:.3e} {'ok' if rec['ok'] else 'FAIL'}")
    print(f"hf_compare: {len(summary)} runs, {failed} failed (tolerance {TOL})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
