//! The zero-shot energy model: energy per output token as a sum of physical terms, each a count
//! taken from the LLM's shape (`crate::llm`) and the point's schedule (`llm::concurrency`), times a
//! constant shared by every LLM on one GPU and engine. The derivation is in docs/zero-shot.md.
//!
//! The model is linear in its constants, so calibrating them is a linear least-squares problem and
//! the flops-mem coefficients of a prediction are a linear map of them (see [`project`]).

use super::Setting;
use crate::llm::concurrency::{concurrency, kv_capacity_tokens, Batching, PAGE_TOKENS};
use crate::llm::LlmConfig;
use anyhow::{bail, Context, Result};
use nalgebra::{DMatrix, DVector};

/// One physical term: its constant's name, unit and what the count is.
pub struct Term {
    pub name: &'static str,
    pub unit: &'static str,
    pub what: &'static str,
}

/// The terms in the order of the constants (calibration files keep this order).
pub const TERMS: [Term; 9] = [
    Term {
        name: "decode_gemm",
        unit: "J/FLOP",
        what: "matrix FLOPs of one decoded token (projections, FFN, LM head)",
    },
    Term {
        name: "prefill_gemm",
        unit: "J/FLOP",
        what: "matrix FLOPs of the prompt, n per request",
    },
    Term {
        name: "prefill_attention",
        unit: "J/byte",
        what: "KV bytes prefill attention streams: one key and value per causal (query, key) pair",
    },
    Term {
        name: "decode_kv",
        unit: "J/byte",
        what: "KV bytes read by decode attention over the prompt and the tokens generated so far",
    },
    Term {
        name: "weights_per_step",
        unit: "J/byte",
        what: "weight bytes read once per iteration, shared by the sequences in flight",
    },
    Term {
        name: "step_per_layer",
        unit: "J",
        what: "fixed cost of one iteration and layer (launches, synchronisation), shared likewise",
    },
    Term {
        name: "token",
        unit: "J",
        what: "fixed cost of one output token (sampling, bookkeeping)",
    },
    Term {
        name: "request",
        unit: "J",
        what: "fixed cost of one request",
    },
    Term {
        name: "request_weights",
        unit: "J/byte",
        what: "cost of one request proportional to the weight bytes",
    },
];

/// Number of constants.
pub const K: usize = TERMS.len();

/// Names of the constants, in order.
pub fn term_names() -> Vec<&'static str> {
    TERMS.iter().map(|t| t.name).collect()
}

/// Σ_{x=a}^{b} min(x, w) for 1 <= a <= b (keys attended at contexts a..b under a window w).
fn sum_min(a: usize, b: usize, w: Option<usize>) -> f64 {
    let tri = |x: f64| x * (x + 1.0) / 2.0;
    let (a, b) = (a as f64, b as f64);
    match w {
        Some(w) if b > w as f64 => {
            let w = w as f64;
            let below = if a <= w { tri(w) - tri(a - 1.0) } else { 0.0 };
            below + (b - w.max(a - 1.0)) * w
        }
        _ => tri(b) - tri(a - 1.0),
    }
}

/// The KV capacity and batching of `cfg` under `s`; an error when the LLM does not fit at all.
pub fn batching(cfg: &LlmConfig, s: &Setting) -> Result<Batching> {
    let mem = s.gpu_memory_gib * (1u64 << 30) as f64;
    let seqs = s.max_batch_size.min(s.requests);
    let cap = kv_capacity_tokens(cfg, mem, s.dtype_bytes, s.max_num_tokens, seqs);
    if cap == 0 {
        bail!(
            "LLM {}: {:.1} GB of weights leave no KV cache in {} GiB of GPU memory",
            cfg.name,
            (cfg.params() * s.dtype_bytes) as f64 / 1e9,
            s.gpu_memory_gib
        );
    }
    Ok(Batching {
        requests: s.requests,
        max_batch_size: s.max_batch_size,
        max_num_tokens: s.max_num_tokens,
        kv_capacity_tokens: cap,
        page_tokens: PAGE_TOKENS,
    })
}

/// The counts of every term at (n, m), per output token, in the order of [`TERMS`]:
/// e(n, m) = Σ_j constant_j · count_j.
pub fn counts(cfg: &LlmConfig, s: &Setting, b: &Batching, n: usize, m: usize) -> Result<[f64; K]> {
    let sched =
        concurrency(n, m, b).with_context(|| format!("LLM {} at n = {n}, m = {m}", cfg.name))?;
    let (nf, mf) = (n as f64, m as f64);
    let f = cfg.flops_per_token();
    let w = cfg.weight_read_bytes(s.dtype_bytes);
    let kv_layer = (2 * cfg.kv_dim() * s.dtype_bytes) as f64;
    let (mut pairs, mut decode_keys) = (0.0, 0.0);
    for l in 0..cfg.layers {
        let win = cfg.sliding_window(l);
        pairs += sum_min(1, n, win);
        decode_keys += sum_min(n + 1, n + m, win);
    }
    let per_step = sched.iterations as f64 / (s.requests as f64 * mf);
    Ok([
        f,
        nf * f / mf,
        kv_layer * pairs / mf,
        kv_layer * decode_keys / mf,
        w * per_step,
        cfg.layers as f64 * per_step,
        1.0,
        1.0 / mf,
        w / mf,
    ])
}

/// e = Σ constant · count.
pub fn energy_per_token(constants: &[f64], counts: &[f64; K]) -> f64 {
    constants.iter().zip(counts).map(|(c, x)| c * x).sum()
}

/// The counts of every grid point (n, m) of `grid` × `grid`, row-major in n.
pub fn grid_counts(cfg: &LlmConfig, s: &Setting, grid: &[usize]) -> Result<Vec<[f64; K]>> {
    let b = batching(cfg, s)?;
    let mut out = Vec::with_capacity(grid.len() * grid.len());
    for &n in grid {
        for &m in grid {
            out.push(counts(cfg, s, &b, n, m)?);
        }
    }
    Ok(out)
}

/// flops-mem's six basis functions at (n, m): e = α + β n²/m + γ n + δ n/m + ε m + ζ/m.
pub fn flops_mem_basis(n: f64, m: f64) -> [f64; 6] {
    [1.0, n * n / m, n, n / m, m, 1.0 / m]
}

/// A zero-shot prediction summarised as flops-mem coefficients, with their covariance.
pub struct Projection {
    pub coefs: Vec<f64>,
    pub covariance: DMatrix<f64>,
}

/// The flops-mem coefficients closest (relative least squares over the grid) to the zero-shot
/// surface of `cfg`, and their covariance from the constants' covariance: the coefficients are a
/// linear map M of the constants (for fixed weights), so Σ_coefs = M Σ Mᵀ.
pub fn project(
    cfg: &LlmConfig,
    s: &Setting,
    grid: &[usize],
    constants: &[f64],
    cov: &DMatrix<f64>,
) -> Result<Projection> {
    let phi = grid_counts(cfg, s, grid)?;
    let pts: Vec<(f64, f64)> = grid
        .iter()
        .flat_map(|&n| grid.iter().map(move |&m| (n as f64, m as f64)))
        .collect();
    let rows = pts.len();
    let e: Vec<f64> = phi.iter().map(|x| energy_per_token(constants, x)).collect();
    if let Some(i) = e.iter().position(|v| !v.is_finite() || *v <= 0.0) {
        bail!(
            "LLM {}: the calibration predicts a non-positive energy per token ({:.3e} J) at n = {}, m = {}",
            cfg.name,
            e[i],
            pts[i].0,
            pts[i].1
        );
    }
    // Weighted basis, columns scaled to unit RMS so the normal equations stay well conditioned.
    let mut x = DMatrix::from_fn(rows, 6, |i, j| {
        flops_mem_basis(pts[i].0, pts[i].1)[j] / e[i]
    });
    let scale: Vec<f64> = (0..6)
        .map(|j| x.column(j).norm().max(f64::MIN_POSITIVE))
        .collect();
    for (j, sc) in scale.iter().enumerate() {
        x.column_mut(j).scale_mut(1.0 / sc);
    }
    let pinv = x
        .clone()
        .pseudo_inverse(1e-12)
        .map_err(|e| anyhow::anyhow!("flops-mem projection: {e}"))?;
    // coefs = D⁻¹ X⁺ W Φ c, with W = diag(1/e).
    let wphi = DMatrix::from_fn(rows, K, |i, j| phi[i][j] / e[i]);
    let mut map = &pinv * wphi;
    for (j, sc) in scale.iter().enumerate() {
        map.row_mut(j).scale_mut(1.0 / sc);
    }
    let coefs = &map * DVector::from_column_slice(constants);
    Ok(Projection {
        coefs: coefs.iter().copied().collect(),
        covariance: &map * cov * map.transpose(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_min_matches_a_loop() {
        for (a, b, w) in [
            (1, 10, None),
            (1, 10, Some(4)),
            (5, 20, Some(8)),
            (9, 12, Some(4)),
        ] {
            let direct: usize = (a..=b).map(|x: usize| w.map_or(x, |w| x.min(w))).sum();
            assert_eq!(sum_min(a, b, w), direct as f64, "a={a} b={b} w={w:?}");
        }
    }
}
