//! `energy-fit bench`: the engine's phases against their roofline floors on this GPU. Floors are
//! max(FLOPs / measured GEMM peak, bytes / measured copy bandwidth) with the FLOP and byte counts of
//! `src/llm/` (docs/performance.md: the goals were decode within 1.25 × its floor at batch ≥ 256,
//! prefill at n ≥ 512 at ≥ 65 % of the GEMM peak). The GEMM peak is cuBLAS's sustained throughput on random operands,
//! the conditions of a prefill on a power-limited card; zeros and single bursts run faster.
//! Decode rows also give the serial floor: the matrix products' floor plus attention's, since a
//! step runs the compute-bound GEMMs and the bandwidth-bound attention one after the other.

use crate::engine::device::KernelTime;
use crate::engine::{DType, Engine, EngineOptions};
use crate::llm::{resolve_llm, Cost, LlmConfig};
use anyhow::Result;
use clap::Args;
use serde::Serialize;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Catalog LLM (random weights) or config.json / checkpoint directory.
    #[arg(long, default_value = "llama-3.2-1b")]
    pub llm: String,
    /// Run dtype: bf16 or fp16.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Prompt lengths of the prefill rows (each one iteration of max_num_tokens / n prompts, timed as
    /// the mean of iterations back to back for 1 s, at the power limit as in a long prefill).
    #[arg(long, default_value = "512,1024,2048,4096", value_delimiter = ',')]
    pub prefill: Vec<usize>,
    /// Decode batch sizes. 1024: the grid's short prompts decode all 1000 requests at once; a
    /// (batch, context) whose KV cache does not fit is reported as skipped, and a context that no
    /// asked batch fits gets a row at the largest batch the cache holds (what a long-context point
    /// of the grid decodes at).
    #[arg(long, default_value = "256,512,1024", value_delimiter = ',')]
    pub batches: Vec<usize>,
    /// Decode contexts (position of the new token + 1).
    #[arg(long, default_value = "128,512,1024,2048,4096", value_delimiter = ',')]
    pub contexts: Vec<usize>,
    /// Decode steps timed per (batch, context); the median is reported.
    #[arg(long, default_value_t = 24)]
    pub steps: usize,
    /// Tokens per prefill iteration (the engine's token budget).
    #[arg(long, default_value_t = 8192)]
    pub max_num_tokens: usize,
    /// Launch every kernel directly instead of replaying decode steps as CUDA graphs.
    #[arg(long)]
    pub no_graphs: bool,
    /// Attention kernels (prefill and decode).
    #[arg(long, value_enum, default_value_t = super::Attention::Tc)]
    pub attention: super::Attention,
    /// Also time every kernel and GEMM of one iteration per row (CUDA events around each launch,
    /// graphs set aside): where a phase's time goes.
    #[arg(long)]
    pub kernels: bool,
    /// Kernels listed per row in the table output (all are in --json).
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Tune the layer GEMMs at the rows the bench runs (each decode batch, max_num_tokens for
    /// prefill) before timing: cuBLASLt's candidates against cuBLAS's default, fastest kept (the
    /// A/B of `measure --tune-gemms`).
    #[arg(long)]
    pub tune_gemms: bool,
}

#[derive(Serialize, Debug)]
struct Row {
    phase: &'static str,
    batch: usize,
    tokens: usize,
    achieved_ms: Option<f64>,
    floor_ms: f64,
    bound: &'static str,
    ratio: Option<f64>,
    /// Decode: floor of the matrix products plus floor of attention (see `serial_floor_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_floor_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_ratio: Option<f64>,
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernels: Option<Vec<KernelTime>>,
}

/// The per-kernel breakdown of a row when asked for; a failure becomes the row's note.
fn breakdown(
    on: bool,
    note: &mut Option<String>,
    f: impl FnOnce() -> Result<Vec<KernelTime>>,
) -> Option<Vec<KernelTime>> {
    if !on {
        return None;
    }
    match f() {
        Ok(k) => Some(k),
        Err(x) => {
            *note = Some(format!(
                "{}kernel breakdown failed: {x:#}",
                note.as_ref().map_or(String::new(), |n| format!("{n}; "))
            ));
            None
        }
    }
}

/// Floor (ms) and what bounds it, from FLOPs, bytes and the measured peaks.
pub fn floor_ms(flops: f64, bytes: f64, tflops: f64, gbps: f64) -> (f64, &'static str) {
    let (tf, tb) = (flops / (tflops * 1e12) * 1e3, bytes / (gbps * 1e9) * 1e3);
    if tf >= tb {
        (tf, "flops")
    } else {
        (tb, "bytes")
    }
}

/// Floor of a decode step whose attention runs between its matrix products rather than beside
/// them: the rest of `step` (weights, rows, 2 FLOPs per parameter) at its bound plus `attn` at its
/// own. At short contexts the GEMMs are compute-bound and attention bandwidth-bound, so this lies
/// above `floor_ms` of the whole step, which assumes the two overlap.
pub fn serial_floor_ms(step: Cost, attn: Cost, tflops: f64, gbps: f64) -> f64 {
    floor_ms(
        step.flops - attn.flops,
        step.bytes - attn.bytes,
        tflops,
        gbps,
    )
    .0 + floor_ms(attn.flops, attn.bytes, tflops, gbps).0
}

pub fn run(a: BenchArgs) -> Result<()> {
    let cfg = resolve_llm(&a.llm)?;
    let dt = DType::parse(&a.dtype)?;
    let opts = engine_options(&a, dt);
    let mut e = Engine::new(&cfg, opts)?;
    // Contexts that none of the asked batches fits get a row at the largest batch that does.
    let extra: Vec<(usize, usize)> = a
        .contexts
        .iter()
        .map(|&ctx| (e.decode_capacity(ctx + a.steps), ctx))
        .filter(|&(cap, _)| cap > 0 && a.batches.iter().all(|&b| b > cap))
        .collect();
    let tune_note = tune(&mut e, &a, &extra)?;
    // The floors' peak: random operands, sustained (~1 s) so the card sits at its power limit as in
    // a prefill. Single-GEMM bursts on random data and on zeros are printed beside it.
    let (gemm_ms, tflops) = e.bench_gemm(8192, 8192, 8192, 640, true, true)?;
    let (_, burst_random) = e.bench_gemm(8192, 8192, 8192, 5, true, false)?;
    let (_, burst_zeros) = e.bench_gemm(8192, 8192, 8192, 5, false, false)?;
    let (copy_ms, gbps) = e.bench_copy_bandwidth(2 << 30, 5)?;
    let eb = dt.bytes();
    let mut rows = Vec::new();
    for &n in &a.prefill {
        rows.push(prefill_row(&mut e, &cfg, &a, n, eb, (tflops, gbps)));
    }
    let asked = a
        .batches
        .iter()
        .flat_map(|&b| a.contexts.iter().map(move |&ctx| (b, ctx, None)));
    let capped = extra.into_iter().map(|(b, ctx)| {
        (
            b,
            ctx,
            Some("largest batch the KV cache holds at this context".to_string()),
        )
    });
    for (b, ctx, why) in asked.chain(capped) {
        rows.push(decode_row(&mut e, &a, b, ctx, (tflops, gbps), why));
    }
    let peaks = Peaks {
        gemm_ms,
        tflops,
        burst_random,
        burst_zeros,
        copy_ms,
        gbps,
    };
    if a.json {
        return print_json(&cfg, &e, &a, &peaks, &rows);
    }
    print_table(&cfg, &e, &a, &peaks, tune_note.as_deref(), &rows);
    Ok(())
}

/// The engine the bench needs: a batch capacity for the largest decode batch and for
/// max_num_tokens / n prompts of the shortest prefill, with the asked dtype, graphs and kernels.
fn engine_options(a: &BenchArgs, dt: DType) -> EngineOptions {
    let mbs = a.batches.iter().copied().max().unwrap_or(1).max(
        a.max_num_tokens
            / a.prefill
                .iter()
                .copied()
                .min()
                .unwrap_or(a.max_num_tokens)
                .max(1),
    );
    EngineOptions {
        dtype: dt,
        max_batch_size: mbs,
        max_num_tokens: a.max_num_tokens,
        cuda_graphs: !a.no_graphs,
        tc_attention: a.attention.is_tc(),
        gemm_tune: a.tune_gemms,
        ..Default::default()
    }
}

/// With --tune-gemms: tune the layer GEMMs at every row count the bench runs; the line saying
/// what tuning found.
fn tune(e: &mut Engine, a: &BenchArgs, extra: &[(usize, usize)]) -> Result<Option<String>> {
    let mut tune_note = None;
    if a.tune_gemms {
        let rows: std::collections::BTreeSet<usize> = a
            .batches
            .iter()
            .copied()
            .chain(extra.iter().map(|&(b, _)| b))
            .chain([a.max_num_tokens])
            .collect();
        let secs = e.warm_gemm_shapes(rows.iter().copied())?;
        tune_note = Some(
            e.gemm_tune
                .unwrap_or_default()
                .line(&format!("{rows:?}"), secs),
        );
    }
    Ok(tune_note)
}

/// One prefill row: one iteration of max_num_tokens / n prompts of `n` tokens against its floor.
fn prefill_row(
    e: &mut Engine,
    cfg: &LlmConfig,
    a: &BenchArgs,
    n: usize,
    eb: usize,
    (tflops, gbps): (f64, f64),
) -> Row {
    let seqs = (a.max_num_tokens / n).max(1);
    let c = cfg.prefill_cost(seqs, n, eb);
    let (f, bound) = floor_ms(c.flops, c.bytes, tflops, gbps);
    let (t, mut note) = match e.bench_prefill(seqs, n, 1000.0) {
        Ok(t) => (
            Some(t),
            Some(format!(
                "{:.0} % of GEMM peak",
                100.0 * c.flops / (t * 1e-3) / (tflops * 1e12)
            )),
        ),
        Err(x) => (None, Some(format!("skipped: {x:#}"))),
    };
    let kernels = breakdown(a.kernels && t.is_some(), &mut note, || {
        e.bench_prefill_kernels(seqs, n)
    });
    Row {
        phase: "prefill",
        batch: seqs,
        tokens: n,
        achieved_ms: t,
        floor_ms: f,
        bound,
        ratio: t.map(|t| t / f),
        serial_floor_ms: None,
        serial_ratio: None,
        note,
        kernels,
    }
}

/// The measured peaks the floors divide by: cuBLAS GEMM (sustained, and single bursts on random
/// operands and on zeros) and device copy bandwidth.
#[derive(Clone, Copy)]
struct Peaks {
    gemm_ms: f64,
    tflops: f64,
    burst_random: f64,
    burst_zeros: f64,
    copy_ms: f64,
    gbps: f64,
}

/// The bench as one JSON document.
fn print_json(cfg: &LlmConfig, e: &Engine, a: &BenchArgs, p: &Peaks, rows: &[Row]) -> Result<()> {
    let Peaks {
        gemm_ms,
        tflops,
        burst_random,
        burst_zeros,
        copy_ms,
        gbps,
    } = *p;
    let j = serde_json::json!({
        "llm": cfg.name, "gpu": e.device_name(), "dtype": a.dtype, "cuda_graphs": !a.no_graphs, "attention": format!("{:?}", a.attention).to_lowercase(),
        "gemm_peak_tflops": tflops, "gemm_peak": "8192³, random operands, 640 back to back", "gemm_8192_ms": gemm_ms,
        "gemm_burst_random_tflops": burst_random, "gemm_burst_zeros_tflops": burst_zeros, "copy_gbps": gbps, "copy_2gib_ms": copy_ms, "gemm_tune": e.gemm_tune, "rows": rows,
    });
    println!("{}", serde_json::to_string_pretty(&j)?);
    Ok(())
}

/// The bench as tables: the peaks, then one line per row with its kernels when asked for.
fn print_table(
    cfg: &LlmConfig,
    e: &Engine,
    a: &BenchArgs,
    p: &Peaks,
    tune_note: Option<&str>,
    rows: &[Row],
) {
    let Peaks {
        gemm_ms,
        tflops,
        burst_random,
        burst_zeros,
        copy_ms,
        gbps,
    } = *p;
    println!(
        "{} on {} ({}, CUDA graphs {}, attention {:?})",
        cfg.name,
        e.device_name(),
        a.dtype,
        if a.no_graphs { "off" } else { "on" },
        a.attention
    );
    println!("measured peaks: cuBLAS GEMM 8192³ {tflops:.0} TFLOP/s ({gemm_ms:.2} ms each, 640 back to back on random operands; one GEMM alone: {burst_random:.0} random, {burst_zeros:.0} zeros); device copy {gbps:.0} GB/s (2 GiB in {copy_ms:.2} ms)");
    if let Some(t) = tune_note {
        println!("{t}");
    }
    println!(
        "{:<8} {:>6} {:>8} {:>12} {:>10} {:>6} {:>7} {:>10} {:>7}  note",
        "phase",
        "batch",
        "n|ctx",
        "achieved ms",
        "floor ms",
        "bound",
        "ratio",
        "serial ms",
        "ratio"
    );
    for r in rows {
        let t = r.achieved_ms.map_or("-".into(), |t| format!("{t:.3}"));
        let ratio = r.ratio.map_or("-".into(), |x| format!("{x:.2}"));
        let serial = r.serial_floor_ms.map_or("-".into(), |x| format!("{x:.3}"));
        let sratio = r.serial_ratio.map_or("-".into(), |x| format!("{x:.2}"));
        println!(
            "{:<8} {:>6} {:>8} {:>12} {:>10.3} {:>6} {:>7} {:>10} {:>7}  {}",
            r.phase,
            r.batch,
            r.tokens,
            t,
            r.floor_ms,
            r.bound,
            ratio,
            serial,
            sratio,
            r.note.clone().unwrap_or_default()
        );
        if let Some(k) = &r.kernels {
            let sum: f64 = k.iter().map(|x| x.ms).sum();
            println!("         kernels and GEMMs of one iteration, launched directly: {sum:.3} ms in all");
            for x in k.iter().take(a.top) {
                println!(
                    "           {:<32} {:>9.3} ms {:>5.1} % {:>6} launches",
                    x.name,
                    x.ms,
                    100.0 * x.ms / sum.max(1e-12),
                    x.launches
                );
            }
        }
    }
}

/// One decode row: `steps` steps of `b` sequences at context `ctx` against both floors.
fn decode_row(
    e: &mut Engine,
    a: &BenchArgs,
    b: usize,
    ctx: usize,
    (tflops, gbps): (f64, f64),
    why: Option<String>,
) -> Row {
    let (cfg, eb) = (e.config(), e.dtype().bytes());
    let (c, att) = (
        cfg.decode_cost(b, ctx + a.steps / 2, eb),
        cfg.decode_attention_cost(b, ctx + a.steps / 2, eb),
    );
    let (f, bound) = floor_ms(c.flops, c.bytes, tflops, gbps);
    let serial = serial_floor_ms(c, att, tflops, gbps);
    let (t, mut note) = match e.bench_decode(b, ctx, a.steps) {
        Ok(t) => (Some(t), why),
        Err(x) => (None, Some(format!("skipped: {x:#}"))),
    };
    let kernels = breakdown(a.kernels && t.is_some(), &mut note, || {
        e.bench_decode_kernels(b, ctx)
    });
    Row {
        phase: "decode",
        batch: b,
        tokens: ctx,
        achieved_ms: t,
        floor_ms: f,
        bound,
        ratio: t.map(|t| t / f),
        serial_floor_ms: Some(serial),
        serial_ratio: t.map(|t| t / serial),
        note,
        kernels,
    }
}

#[cfg(test)]
mod tests {
    use super::{floor_ms, serial_floor_ms};
    use crate::llm::Cost;

    #[test]
    fn floor_is_the_larger_bound() {
        // 1 TFLOP at 500 TFLOP/s = 2 ms; 1 GB at 2000 GB/s = 0.5 ms → compute-bound.
        let (f, b) = floor_ms(1e12, 1e9, 500.0, 2000.0);
        assert!((f - 2.0).abs() < 1e-12 && b == "flops");
        let (f, b) = floor_ms(1e9, 1e10, 500.0, 2000.0);
        assert!((f - 5.0).abs() < 1e-12 && b == "bytes");
    }

    /// GEMMs compute-bound (1 TFLOP, 1 GB: 2 ms at 500 TFLOP/s), attention bandwidth-bound (tiny
    /// FLOPs, 2 GB: 1 ms at 2000 GB/s): overlapped the step's floor is 2 ms (3 GB take 1.5), one
    /// after the other 3 ms.
    #[test]
    fn serial_floor_adds_the_gemms_and_attention_bounds() {
        let attn = Cost {
            flops: 1e9,
            bytes: 2e9,
        };
        let step = Cost {
            flops: 1e12 + attn.flops,
            bytes: 1e9 + attn.bytes,
        };
        let (f, b) = floor_ms(step.flops, step.bytes, 500.0, 2000.0);
        assert!((f - 2.002).abs() < 1e-12 && b == "flops", "{f} {b}");
        let s = serial_floor_ms(step, attn, 500.0, 2000.0);
        assert!((s - 3.0).abs() < 1e-9, "{s}");
    }
}
