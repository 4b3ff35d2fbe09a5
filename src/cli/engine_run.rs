//! `engine-run` and `engine-dump` (GPU): grid points through the engine with random weights and
//! prompts, timed per point, and the engine's tensors dumped for comparison with a reference
//! implementation.

use crate::engine::{DType, Engine, EngineOptions, Limits, Request, RunSpec};
use crate::llm::{read_hf_config, resolve_llm};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Parse `--points 64x64,4096x4096` into (input_tokens, output_tokens) pairs.
pub fn parse_points(spec: &str) -> Result<Vec<(usize, usize)>> {
    spec.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|p| {
            let (n, m) = p
                .split_once(['x', 'X', ':'])
                .with_context(|| format!("--points: `{p}` is not NxM (e.g. 64x64)"))?;
            let n: usize = n
                .trim()
                .parse()
                .with_context(|| format!("--points: bad input length in `{p}`"))?;
            let m: usize = m
                .trim()
                .parse()
                .with_context(|| format!("--points: bad output length in `{p}`"))?;
            anyhow::ensure!(n > 0 && m > 0, "--points: `{p}`: lengths must be > 0");
            Ok((n, m))
        })
        .collect()
}

/// `engine-run`'s switches for A/B checks and diagnostics.
pub struct RunOpts {
    pub cuda_graphs: bool,
    pub tc_attention: bool,
    pub trace: Option<PathBuf>,
    pub warm_gemms: bool,
    pub gemm_tune: bool,
}

/// `engine-run`: grid points with random weights and prompts on one engine; prints time and
/// throughput per point (after a short warm-up of the same shape).
#[allow(clippy::too_many_arguments)]
pub fn engine_run(
    llm: &str,
    requests: usize,
    points: &[(usize, usize)],
    mbs: usize,
    mnt: usize,
    dtype: &str,
    kv_fraction: f64,
    checkpoint: Option<PathBuf>,
    o: RunOpts,
) -> Result<()> {
    let RunOpts {
        cuda_graphs,
        tc_attention,
        gemm_tune,
        ..
    } = o;
    let cfg = resolve_llm(llm)?;
    // A trace file that cannot be written fails now, not after the points have run.
    if let Some(f) = &o.trace {
        std::fs::File::create(f)
            .with_context(|| format!("--trace {}: cannot create the file", f.display()))?;
    }
    let opts = EngineOptions {
        dtype: DType::parse(dtype)?,
        kv_fraction,
        checkpoint,
        max_batch_size: mbs,
        max_num_tokens: mnt,
        cuda_graphs,
        tc_attention,
        gemm_tune,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let mut e = Engine::new(&cfg, opts)?;
    println!(
        "{} on {}: engine ready in {:.2} s (NVRTC {:.0} ms), KV cache {} tokens, attention {}",
        cfg.name,
        e.device_name(),
        t0.elapsed().as_secs_f64(),
        e.nvrtc_ms(),
        e.kv_capacity_tokens(),
        if tc_attention {
            "tensor-core"
        } else {
            "scalar"
        }
    );
    if o.warm_gemms {
        let s = e.warm_gemm_shapes(1..=mbs)?;
        match e.gemm_tune {
            Some(t) => println!("{}", t.line(&format!("1..={mbs}"), s)),
            None => println!("GEMM shapes of 1..={mbs} rows warmed in {s:.3} s"),
        }
    }
    e.trace = o.trace.is_some();
    let mut trace = String::from("point,input_tokens,output_tokens,iteration,prefill_tokens,decode_tokens,host_us,busy_ms,gap_ms\n");
    for (pi, &(n, m)) in points.iter().enumerate() {
        let warm = RunSpec {
            requests: 4.min(requests),
            input_tokens: n,
            output_tokens: 4.min(m),
            max_batch_size: mbs,
            max_num_tokens: mnt,
        };
        e.run(&warm)
            .with_context(|| format!("{}: warm-up run n={n}", cfg.name))?;
        let spec = RunSpec {
            requests,
            input_tokens: n,
            output_tokens: m,
            max_batch_size: mbs,
            max_num_tokens: mnt,
        };
        let s = e
            .run(&spec)
            .with_context(|| format!("{}: R={requests} n={n} m={m}", cfg.name))?;
        let pre: usize = s.iterations.iter().map(|i| i.prefill_tokens).sum();
        for (k, (it, tr)) in s.iterations.iter().zip(&s.trace).enumerate() {
            trace += &format!(
                "{pi},{n},{m},{k},{},{},{:.1},{:.4},{:.4}\n",
                it.prefill_tokens, it.decode_tokens, tr.host_us, tr.busy_ms, tr.gap_ms
            );
        }
        if !s.trace.is_empty() {
            let gap: f64 = s.trace.iter().map(|t| t.gap_ms).sum();
            println!(
                "  GPU idle between iterations: {gap:.1} ms, {:.2} % of the run",
                0.1 * gap / s.wall_s
            );
        }
        println!(
            "{}: R={requests} n={n} m={m}: {} tokens in {:.3} s = {:.0} tokens/s generated ({:.0} prompt tokens/s), {} iterations, CUDA graphs {}",
            cfg.name,
            s.generated_tokens,
            s.wall_s,
            s.generated_tokens as f64 / s.wall_s,
            pre as f64 / s.wall_s,
            s.iterations.len(),
            if cuda_graphs { format!("on ({} captured, {} replays so far)", e.graph_counts().0, e.graph_counts().1) } else { "off".into() }
        );
    }
    if let Some(f) = &o.trace {
        std::fs::write(f, trace).with_context(|| format!("writing {}", f.display()))?;
        println!("per-iteration trace written to {}", f.display());
    }
    Ok(())
}

/// `engine-dump`: run prompts from a JSON file (list of token lists) on a checkpoint and write
/// {"tokens": [[..]], "logits": [[[..]]]} (per request, per generated token).
pub fn engine_dump(
    checkpoint: PathBuf,
    prompts: PathBuf,
    m: usize,
    out: PathBuf,
    dtype: &str,
    tc_attention: bool,
) -> Result<()> {
    let cfg = read_hf_config(&checkpoint.join("config.json"))?;
    let text = std::fs::read_to_string(&prompts)
        .with_context(|| format!("reading {}", prompts.display()))?;
    let ps: Vec<Vec<u32>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON list of token-id lists",
            prompts.display()
        )
    })?;
    let opts = EngineOptions {
        dtype: DType::parse(dtype)?,
        checkpoint: Some(checkpoint),
        max_batch_size: 64,
        max_num_tokens: 4096,
        kv_fraction: 0.1,
        tc_attention,
        ..Default::default()
    };
    let mut e = Engine::new(&cfg, opts)?;
    let reqs: Vec<Request> = ps
        .into_iter()
        .map(|p| Request {
            prompt: p,
            output_tokens: m,
        })
        .collect();
    let o = e.run_requests(
        &reqs,
        Limits {
            max_batch_size: 64,
            max_num_tokens: 4096,
        },
        true,
    )?;
    let j = serde_json::json!({ "tokens": o.tokens, "logits": o.logits, "iterations": o.stats.iterations });
    std::fs::write(&out, serde_json::to_vec(&j)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} ({} requests, {} iterations)",
        out.display(),
        reqs.len(),
        o.stats.iterations.len()
    );
    Ok(())
}
