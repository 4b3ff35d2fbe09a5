//! The real `CostModel`: memory fit and roofline duration of a grid point from the LLM's shape
//! (`crate::llm`), with the engine's scheduling (all R requests at t = 0, in-flight batching
//! bounded by max_batch_size, max_num_tokens and the KV capacity left after the weights).
//!
//! The estimate is a lower bound (every step at the better of peak FLOP/s and peak bandwidth); it
//! is for planning and ETA, never written into a measurement.

use super::plan::{dtype_bytes, CostModel, Point};
use crate::llm::concurrency::{weight_bytes, workspace_bytes};
use crate::llm::{resolve_llm, LlmConfig};
use anyhow::{Context, Result};

/// Nominal H100 numbers: cuBLAS bf16 GEMM throughput and HBM bandwidth.
pub const PEAK_FLOPS_16: f64 = 750e12;
/// FP32 without tensor cores (H100 SXM ≈ 67 TFLOP/s).
pub const PEAK_FLOPS_32: f64 = 60e12;
pub const PEAK_BYTES_PER_S: f64 = 3.0e12;
pub use crate::llm::concurrency::USABLE_MEMORY;

pub struct RooflineCost;

struct Shape {
    cfg: LlmConfig,
    bytes: usize,
}

impl RooflineCost {
    fn shape(&self, p: &Point) -> Result<Shape> {
        let cfg = resolve_llm(&p.llm)?;
        let bytes = dtype_bytes(&p.dtype)
            .with_context(|| format!("--dtype: unknown dtype {:?}", p.dtype))?;
        Ok(Shape { cfg, bytes })
    }

    /// (weights, workspace, KV bytes per token) of a point.
    fn memory(&self, s: &Shape, p: &Point) -> (f64, f64, f64) {
        let c = &s.cfg;
        let weights = weight_bytes(c, s.bytes);
        let workspace = workspace_bytes(
            c,
            s.bytes,
            p.max_num_tokens as usize,
            p.max_batch_size.min(p.requests) as usize,
        );
        (weights, workspace, c.kv_bytes_per_token(s.bytes) as f64)
    }

    /// Sequences running at once.
    fn concurrency(&self, s: &Shape, p: &Point, gpu_mem: u64) -> u64 {
        let (w, ws, kv) = self.memory(s, p);
        let free = gpu_mem as f64 * USABLE_MEMORY - w - ws;
        let by_kv = (free / (kv * p.input_tokens.saturating_add(p.output_tokens) as f64))
            .floor()
            .max(0.0) as u64;
        p.max_batch_size
            .min(p.requests)
            .min(by_kv)
            .min(p.max_num_tokens)
            .max(1)
    }
}

fn step_s(flops: f64, bytes: f64, peak: f64) -> f64 {
    (flops / peak).max(bytes / PEAK_BYTES_PER_S)
}

impl CostModel for RooflineCost {
    fn llm_name(&self, spec: &str) -> Result<String> {
        Ok(resolve_llm(spec)?.name)
    }

    fn feasible(&self, p: &Point, gpu_mem: u64) -> std::result::Result<(), String> {
        let s = self.shape(p).map_err(|e| format!("{e:#}"))?;
        let seq = p.input_tokens.saturating_add(p.output_tokens);
        if seq > s.cfg.max_positions as u64 {
            return Err(format!(
                "sequence {seq} > max_positions {} of {}",
                s.cfg.max_positions, s.cfg.name
            ));
        }
        if p.input_tokens > p.max_num_tokens {
            return Err(format!(
                "input_tokens {} > max_num_tokens {}",
                p.input_tokens, p.max_num_tokens
            ));
        }
        let (w, ws, kv) = self.memory(&s, p);
        let need = w + ws + kv * seq as f64;
        let have = gpu_mem as f64 * USABLE_MEMORY;
        if need > have {
            let g = |x: f64| x / (1u64 << 30) as f64;
            return Err(format!(
                "needs {:.1} GiB (weights {:.1} + workspace {:.1} + KV of one sequence {:.2}) > {:.1} GiB usable",
                g(need),
                g(w),
                g(ws),
                g(kv * seq as f64),
                g(have)
            ));
        }
        Ok(())
    }

    fn estimate_s(&self, p: &Point, gpu_mem: u64) -> Result<f64> {
        let s = self.shape(p)?;
        // A point longer than the LLM's context is never run; refusing it here also bounds the
        // step loop below by max_position_embeddings.
        let seq = p.input_tokens.saturating_add(p.output_tokens);
        anyhow::ensure!(
            seq <= s.cfg.max_positions as u64,
            "sequence {seq} > max_positions {} of {}",
            s.cfg.max_positions,
            s.cfg.name
        );
        let peak = if s.bytes == 4 {
            PEAK_FLOPS_32
        } else {
            PEAK_FLOPS_16
        };
        let b = self.concurrency(&s, p, gpu_mem);
        let wave = |batch: u64| -> f64 {
            let batch = batch as usize;
            let pre = s.cfg.prefill_cost(batch, p.input_tokens as usize, s.bytes);
            let mut t = step_s(pre.flops, pre.bytes, peak);
            // The first token comes from prefill; m - 1 decode steps follow.
            for step in 1..p.output_tokens as usize {
                let d = s
                    .cfg
                    .decode_cost(batch, p.input_tokens as usize + step + 1, s.bytes);
                t += step_s(d.flops, d.bytes, peak);
            }
            t
        };
        let full = p.requests / b;
        let rest = p.requests % b;
        let mut t = full as f64 * wave(b);
        if rest > 0 {
            t += wave(rest);
        }
        Ok(t)
    }
}
