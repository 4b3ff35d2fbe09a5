//! `energy-fit selftest`: every engine kernel against its CPU reference on fresh random inputs,
//! then random-weights forwards of catalog LLMs (one per architecture by default) checking that
//! activations stay finite and non-degenerate through every layer, and that the alternative paths
//! of a forward (tensor-core attention, the FFN epilogue, CUDA graphs) agree with the plain ones.

use crate::engine::device::Epilogue;
use crate::engine::selftest::Tester;
use crate::engine::{gemms, DType, Engine, EngineOptions, Limits, Request, RunOutput};
use crate::llm::resolve_llm;
use anyhow::{bail, Result};

pub fn run(dtypes: &str, llm: &str, seed: u64) -> Result<()> {
    let dts: Vec<DType> = if dtypes == "all" {
        vec![DType::Bf16, DType::F16]
    } else {
        vec![DType::parse(dtypes)?]
    };
    let mut failed = 0;
    for &dt in &dts {
        let mut t = Tester::new(dt, seed)?;
        println!(
            "GPU: {} ({}), NVRTC compile {:.0} ms, dtype {:?}",
            t.dev.name, t.dev.arch, t.dev.nvrtc_ms, dt
        );
        println!("CUDA libraries loaded: {}", loaded_cuda_libs().join(", "));
        t.run_all()?;
        for c in &t.checks {
            println!(
                "{:<4} {:<80} rel_err {:>10.3e} (tol {:.1e})",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.rel_err,
                c.tol
            );
            failed += (!c.ok) as usize;
        }
        println!(
            "{} kernel checks, {} failed ({:?})",
            t.checks.len(),
            t.checks.iter().filter(|c| !c.ok).count(),
            dt
        );
    }
    for name in llm.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        failed += model_check(name, seed)?;
        for &dt in &dts {
            failed += tc_check(name, seed, dt)?;
            failed += epilogue_check(name, seed, dt)?;
        }
    }
    failed += graph_check(llm.split(',').next().unwrap_or("llama-3.2-1b").trim(), seed)?;
    if failed > 0 {
        bail!("selftest: {failed} checks failed");
    }
    println!("selftest: all checks passed");
    Ok(())
}

/// Paths of the CUDA libraries mapped into this process (Linux), to report which versions ran.
fn loaded_cuda_libs() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut v: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| {
            ["libcuda.", "libnvrtc", "libcublas"]
                .iter()
                .any(|k| p.contains(k))
        })
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The engine for a check, or None (with a "skip" line naming `what`) when the LLM does not fit in
/// this GPU's memory: a smaller GPU may not hold every default LLM (falcon-rw-7b needs ~15 GB).
fn engine_or_skip(
    cfg: &crate::llm::LlmConfig,
    opts: EngineOptions,
    what: &str,
) -> Result<Option<Engine>> {
    match Engine::new(cfg, opts) {
        Ok(e) => Ok(Some(e)),
        Err(err)
            if format!("{err:#}").contains("cuMemAlloc")
                || format!("{err:#}").contains("too little GPU memory") =>
        {
            println!("skip {what}: does not fit in this GPU's memory ({err:#})");
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Random-weights forward through every layer: finite, non-degenerate activations and logits.
fn model_check(llm: &str, seed: u64) -> Result<usize> {
    let cfg = resolve_llm(llm)?;
    let opts = EngineOptions {
        seed,
        max_batch_size: 8,
        max_num_tokens: 1024,
        kv_fraction: 0.2,
        ..Default::default()
    };
    let Some(mut e) = engine_or_skip(&cfg, opts, llm)? else {
        return Ok(0);
    };
    e.model_mut().probe = Some(Vec::new());
    let reqs: Vec<Request> = [5usize, 70, 300]
        .iter()
        .enumerate()
        .map(|(i, &n)| Request {
            prompt: (0..n)
                .map(|j| ((i * 7919 + j * 104729) % cfg.vocab) as u32)
                .collect(),
            output_tokens: 4,
        })
        .collect();
    let out = e.run_requests(
        &reqs,
        Limits {
            max_batch_size: 8,
            max_num_tokens: 1024,
        },
        true,
    )?;
    let probe = e.model_mut().probe.take().unwrap_or_default();
    let mut failed = 0;
    let mut worst = (f64::INFINITY, 0f64);
    for &(l, rms, mx, fin) in &probe {
        worst = (worst.0.min(rms), worst.1.max(mx));
        if !fin || !(1e-2..1e3).contains(&rms) || mx > 3e4 {
            println!("FAIL {llm} layer {l}: rms {rms:.3e} max {mx:.3e} finite {fin}");
            failed += 1;
        }
    }
    let logits = out.logits.unwrap_or_default();
    let flat: Vec<f32> = logits.iter().flatten().flatten().copied().collect();
    let mean = flat.iter().map(|&x| x as f64).sum::<f64>() / flat.len().max(1) as f64;
    let sd = (flat.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>()
        / flat.len().max(1) as f64)
        .sqrt();
    let distinct: std::collections::HashSet<u32> = out.tokens.iter().flatten().copied().collect();
    let ok = flat.iter().all(|x| x.is_finite()) && sd > 1e-2 && distinct.len() > 1;
    failed += (!ok) as usize;
    println!(
        "{:<4} {llm} random weights, {} layer probes: residual rms >= {:.3e}, max |x| {:.3e}; logits sd {sd:.3}, {} distinct tokens of {}",
        if failed == 0 { "ok" } else { "FAIL" },
        probe.len(),
        worst.0,
        worst.1,
        distinct.len(),
        out.tokens.iter().map(|t| t.len()).sum::<usize>()
    );
    Ok(failed)
}

/// Decode iterations replayed from CUDA graphs must give what direct launches give: the same
/// requests (a batch of mixed lengths, so graphs of several shapes are captured) on one engine with
/// the graph cache on and off; tokens identical, logits within bf16 noise.
fn graph_check(llm: &str, seed: u64) -> Result<usize> {
    let cfg = resolve_llm(llm)?;
    let opts = EngineOptions {
        seed,
        max_batch_size: 16,
        max_num_tokens: 2048,
        kv_fraction: 0.2,
        ..Default::default()
    };
    let mut e = Engine::new(&cfg, opts)?;
    let reqs: Vec<Request> = (0..12)
        .map(|i| Request {
            prompt: (0..(9 + 23 * i))
                .map(|j| ((i * 31 + j * 7907) % cfg.vocab) as u32)
                .collect(),
            output_tokens: 24 + 3 * i,
        })
        .collect();
    let limits = Limits {
        max_batch_size: 16,
        max_num_tokens: 2048,
    };
    let with = e.run_requests(&reqs, limits, true)?;
    let (captures, replays) = e.graph_counts();
    e.model_mut().graphs = None;
    let without = e.run_requests(&reqs, limits, true)?;
    let (a, b) = (
        with.logits.unwrap_or_default(),
        without.logits.unwrap_or_default(),
    );
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a
        .iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
    {
        num = num.max((x - y).abs() as f64);
        den = den.max(y.abs() as f64);
    }
    let rel = num / den.max(1e-30);
    let same = with.tokens == without.tokens;
    let ok = same && rel <= 1e-2 && replays > 0;
    println!(
        "{:<4} {llm} CUDA graphs vs direct launches: {captures} graphs captured, {replays} replays; tokens {}, logits max rel diff {rel:.3e} (tol 1.0e-2)",
        if ok { "ok" } else { "FAIL" },
        if same { "identical" } else { "DIFFER" }
    );
    Ok((!ok) as usize)
}

/// The requests of the A/B checks: lengths across page and 64-row block edges, 8 decode steps each
/// (with split contexts), run within `ab_limits`.
fn ab_requests(vocab: usize) -> Vec<Request> {
    [1usize, 17, 100, 333, 64, 65, 700, 129]
        .iter()
        .enumerate()
        .map(|(i, &n)| Request {
            prompt: (0..n)
                .map(|j| ((i * 7919 + j * 104729 + 3) % vocab) as u32)
                .collect(),
            output_tokens: 8,
        })
        .collect()
}

/// Batch and token budget of the A/B checks' engines and runs.
const AB_BATCH: usize = 8;
const AB_TOKENS: usize = 2048;

fn ab_limits() -> Limits {
    Limits {
        max_batch_size: AB_BATCH,
        max_num_tokens: AB_TOKENS,
    }
}

/// Run `a` against the reference run `b` of the same requests. Greedy tokens must agree until a
/// step where the reference's top two logits are closer than the logit noise at that step (a near
/// tie may flip either way); logits up to there within 8 units of the dtype's rounding (‖Δ‖/‖ref‖
/// per step: 3.1e-2 bf16, 3.9e-3 fp16). Returns whether they agree and the line's account.
fn agreement(a: &RunOutput, b: &RunOutput, dtype: DType) -> (bool, String) {
    let (la, lb) = (
        a.logits.as_deref().unwrap_or_default(),
        b.logits.as_deref().unwrap_or_default(),
    );
    // A request without logits in both runs counts as a real difference, as it did when a missing
    // one stopped the check.
    let both = la.len().min(lb.len());
    let missing = a.tokens.len().max(b.tokens.len()).saturating_sub(both);
    let (mut worst, mut same, mut ties, mut bad) = (0f64, 0usize, 0usize, missing);
    for r in 0..both {
        for (k, (x, y)) in la[r].iter().zip(&lb[r]).enumerate() {
            let (mut num, mut den, mut dmax) = (0f64, 0f64, 0f64);
            for (p, q) in x.iter().zip(y) {
                num += ((p - q) as f64).powi(2);
                den += (*q as f64).powi(2);
                dmax = dmax.max((p - q).abs() as f64);
            }
            worst = worst.max((num / den.max(1e-30)).sqrt());
            let (ta, tb) = (a.tokens[r][k] as usize, b.tokens[r][k] as usize);
            if ta == tb {
                same += 1;
                continue;
            }
            // Near tie: the reference's gap between the two picks is within twice the logit noise.
            if ((y[tb] - y[ta]) as f64) <= 2.0 * dmax {
                ties += 1
            } else {
                bad += 1
            }
            break; // later steps have different contexts
        }
    }
    let tol = 8.0 * dtype.unit_roundoff();
    (
        bad == 0 && worst <= tol,
        format!("{same} tokens identical, {ties} near-tie divergences, {bad} real; logits rel diff <= {worst:.3e} (tol {tol:.1e})"),
    )
}

/// The engine options of the end-to-end A/B checks: a small batch and token budget and a fifth of
/// the memory for the KV cache, enough for `ab_requests`.
fn ab_options(seed: u64, dtype: DType) -> EngineOptions {
    EngineOptions {
        seed,
        dtype,
        max_batch_size: AB_BATCH,
        max_num_tokens: AB_TOKENS,
        kv_fraction: 0.2,
        ..Default::default()
    }
}

/// The tensor-core attention (prefill and decode) against the scalar kernels end to end: the A/B
/// requests on one random-weights engine, TC on and off (`agreement`). The two paths round
/// differently (P in 16 bits before P·V on tensor cores), and that difference grows through every
/// layer; a wrong mask or index would not shrink 8× from bf16 to fp16 as rounding noise does.
fn tc_check(llm: &str, seed: u64, dtype: DType) -> Result<usize> {
    let cfg = resolve_llm(llm)?;
    let opts = EngineOptions {
        tc_attention: true,
        ..ab_options(seed, dtype)
    };
    let Some(mut e) = engine_or_skip(&cfg, opts, &format!("{llm} tensor-core attention check"))?
    else {
        return Ok(0);
    };
    let reqs = ab_requests(cfg.vocab);
    let tc = e.run_requests(&reqs, ab_limits(), true)?;
    e.model_mut().tc_attention = false;
    let sc = e.run_requests(&reqs, ab_limits(), true)?;
    let (ok, line) = agreement(&tc, &sc, dtype);
    println!(
        "{:<4} {llm} {dtype:?} tensor-core vs scalar attention: {line}",
        if ok { "ok" } else { "FAIL" }
    );
    Ok((!ok) as usize)
}

/// The FFN's bias and activation in the up GEMM's epilogue (OPT's fc1 on cuBLASLt, RELU_BIAS)
/// against the plain GEMM and the `ffn_act` kernel end to end: the A/B requests on one
/// random-weights engine, epilogue on and off (`agreement`); nothing to check for an LLM without
/// one. GEMM tuning is on and tunes the decode row counts first, so decode runs the tuned fused
/// GEMMs (in CUDA graphs) and prefill the untuned ones. The two paths differ by one rounding of
/// fc1's output (`ffn_act` rounds before and after the bias), and by the GEMM algorithm.
fn epilogue_check(llm: &str, seed: u64, dtype: DType) -> Result<usize> {
    let cfg = resolve_llm(llm)?;
    if gemms::ffn_epilogue(&cfg) == Epilogue::None {
        return Ok(0);
    }
    let opts = EngineOptions {
        gemm_tune: true,
        ..ab_options(seed, dtype)
    };
    let Some(mut e) = engine_or_skip(&cfg, opts, &format!("{llm} FFN epilogue check"))? else {
        return Ok(0);
    };
    e.warm_gemm_shapes(1..=8)?;
    let reqs = ab_requests(cfg.vocab);
    let fused = e.run_requests(&reqs, ab_limits(), true)?;
    let graphs = e.graph_counts();
    e.model_mut().ffn_epilogue = false;
    let plain = e.run_requests(&reqs, ab_limits(), true)?;
    let (ok, line) = agreement(&fused, &plain, dtype);
    println!(
        "{:<4} {llm} {dtype:?} fc1 bias+ReLU in the GEMM epilogue vs ffn_act ({} graph replays): {line}",
        if ok { "ok" } else { "FAIL" },
        graphs.1
    );
    Ok((!ok) as usize)
}
