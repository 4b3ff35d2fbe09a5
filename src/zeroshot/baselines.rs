//! The two naive predictors the zero-shot model must beat, both as flops-mem coefficients so they
//! are scored exactly like it:
//! (i) energy per token proportional to the parameter count, one constant fitted on the other
//!     LLMs (relative loss), no length terms, hence no sweet spot;
//! (ii) the surface of the other LLM closest in parameter count, scaled by the ratio of matrix
//!     FLOPs per token.

use super::calibrate::Prepared;
use anyhow::{bail, Result};

/// (i): e = k · parameters, k minimising Σ (k·P/e − 1)² over the others' points.
pub fn params_proportional(target: &Prepared, others: &[&Prepared]) -> Result<Vec<f64>> {
    let (mut sx, mut sxx) = (0.0, 0.0);
    for o in others {
        let p = o.cfg.params() as f64;
        for &(_, _, e) in &o.points {
            sx += p / e;
            sxx += (p / e).powi(2);
        }
    }
    if sxx.is_nan() || sxx <= 0.0 {
        bail!("the parameter-count baseline needs points of other LLMs");
    }
    let k = sx / sxx;
    Ok(vec![
        k * target.cfg.params() as f64,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ])
}

/// (ii): the nearest other LLM by parameter count (`own` holds each one's flops-mem fit, in the
/// order of `others`), scaled by FLOPs per token. Returns the coefficients and the LLM used.
pub fn nearest_llm(
    target: &Prepared,
    others: &[&Prepared],
    own: &[&Vec<f64>],
) -> Result<(Vec<f64>, String)> {
    let p = target.cfg.params() as f64;
    let i = (0..others.len())
        .min_by(|&a, &b| {
            let d = |o: &Prepared| (o.cfg.params() as f64 - p).abs();
            d(others[a]).total_cmp(&d(others[b]))
        })
        .ok_or_else(|| anyhow::anyhow!("the nearest-LLM baseline needs another LLM"))?;
    let ratio = target.cfg.flops_per_token() / others[i].cfg.flops_per_token();
    Ok((
        own[i].iter().map(|c| c * ratio).collect(),
        others[i].cfg.name.clone(),
    ))
}
