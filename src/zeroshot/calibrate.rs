//! Calibration: the zero-shot constants fitted across LLMs by least squares on the relative error
//! (every point weighs the same whatever its energy), with standard errors σ²(XᵀX)⁻¹.
//!
//! The model is linear in its constants, so the Gauss–Newton step from any start is the optimum;
//! it is solved once by SVD of the column-scaled design, which also measures how well the LLMs
//! separate the constants (a near-zero singular value is refused, never a NaN).

use super::model::{self, counts, energy_per_token, term_names, K};
use super::Setting;
use crate::llm::LlmConfig;
use anyhow::{bail, Context, Result};
use nalgebra::{DMatrix, DVector};

/// Distinct LLMs a calibration needs: three pairs of terms (per-token FLOPs and per-token fixed
/// cost, per-step weights and per-step layers, per-request weights and per-request fixed cost)
/// differ only from one LLM to another, so two LLMs determine them exactly and a third is the
/// first that checks them.
pub const MIN_LLMS: usize = 3;

/// Smallest singular value over largest of the scaled design below which constants are not
/// separated by the data.
const RANK_TOL: f64 = 1e-9;

/// One LLM's points: (input_tokens, output_tokens, energy per output token in J).
#[derive(Clone, Debug)]
pub struct LlmPoints {
    pub cfg: LlmConfig,
    pub points: Vec<(usize, usize, f64)>,
}

/// An LLM's points with the counts of every term, computed once.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub cfg: LlmConfig,
    pub points: Vec<(usize, usize, f64)>,
    pub counts: Vec<[f64; K]>,
}

/// Counts of every point of every LLM under `s`; errors name the LLM and point.
pub fn prepare(data: &[LlmPoints], s: &Setting) -> Result<Vec<Prepared>> {
    data.iter()
        .map(|d| {
            let b = model::batching(&d.cfg, s)?;
            let counts = d
                .points
                .iter()
                .map(|&(n, m, _)| counts(&d.cfg, s, &b, n, m))
                .collect::<Result<Vec<_>>>()?;
            Ok(Prepared {
                cfg: d.cfg.clone(),
                points: d.points.clone(),
                counts,
            })
        })
        .collect()
}

/// Calibrated constants with their uncertainty.
#[derive(Clone, Debug)]
pub struct Constants {
    pub values: Vec<f64>,
    pub std_errors: Vec<f64>,
    pub covariance: DMatrix<f64>,
    /// Residual degrees of freedom (points − constants).
    pub dof: f64,
    pub points: usize,
    pub llms: Vec<String>,
    /// MAPE of the calibrated model over the calibration points (%).
    pub mape_pct: f64,
}

/// Fit the constants to every point of `data` (relative loss).
pub fn calibrate(data: &[Prepared]) -> Result<Constants> {
    let llms: Vec<String> = data.iter().map(|d| d.cfg.name.clone()).collect();
    if data.len() < MIN_LLMS {
        bail!(
            "calibration needs at least {MIN_LLMS} distinct LLMs, got {} ({})",
            data.len(),
            llms.join(", ")
        );
    }
    let rows: Vec<(&[f64; K], f64)> = data
        .iter()
        .flat_map(|d| d.counts.iter().zip(d.points.iter().map(|p| p.2)))
        .collect();
    let npts = rows.len();
    if npts <= K {
        bail!("calibration needs more than {K} points, got {npts}");
    }
    if let Some((_, e)) = rows.iter().find(|(_, e)| !(*e > 0.0 && e.is_finite())) {
        bail!("calibration data holds a non-positive or non-finite energy per token ({e})");
    }
    let mut x = DMatrix::from_fn(npts, K, |i, j| rows[i].0[j] / rows[i].1);
    let scale: Vec<f64> = (0..K)
        .map(|j| x.column(j).norm() / (npts as f64).sqrt())
        .collect();
    for (j, sc) in scale.iter().enumerate() {
        if sc.is_nan() || *sc <= 0.0 {
            bail!(
                "constant '{}' has a zero count at every calibration point",
                term_names()[j]
            );
        }
        x.column_mut(j).scale_mut(1.0 / sc);
    }
    let svd = x.clone().svd(true, true);
    let (smax, smin) = (svd.singular_values.max(), svd.singular_values.min());
    if smin.is_nan() || smin <= RANK_TOL * smax {
        bail!(
            "the {} LLMs ({}) do not separate the {K} constants (condition {:.1e}): add LLMs of other shapes",
            data.len(),
            llms.join(", "),
            smax / smin
        );
    }
    let ones = DVector::from_element(npts, 1.0);
    let u = svd
        .solve(&ones, 0.0)
        .map_err(|e| anyhow::anyhow!("calibration solve: {e}"))?;
    let values: Vec<f64> = (0..K).map(|j| u[j] / scale[j]).collect();
    let resid = &x * &u - &ones;
    let dof = (npts - K) as f64;
    let s2 = resid.norm_squared() / dof;
    let xtx_inv = (x.transpose() * &x)
        .try_inverse()
        .context("calibration: the normal matrix is singular")?;
    let covariance = DMatrix::from_fn(K, K, |i, j| s2 * xtx_inv[(i, j)] / (scale[i] * scale[j]));
    let std_errors = (0..K).map(|j| covariance[(j, j)].max(0.0).sqrt()).collect();
    let mape_pct = 100.0
        * rows
            .iter()
            .map(|(c, e)| (energy_per_token(&values, c) / e - 1.0).abs())
            .sum::<f64>()
        / npts as f64;
    Ok(Constants {
        values,
        std_errors,
        covariance,
        dof,
        points: npts,
        llms,
        mape_pct,
    })
}

/// flops-mem coefficients fitted to (n, m, e) points by relative least squares: the reference
/// an LLM's own m* is taken from.
pub fn fit_flops_mem(points: &[(usize, usize, f64)]) -> Result<Vec<f64>> {
    if points.len() < 6 {
        bail!("a flops-mem fit needs 6 points, got {}", points.len());
    }
    let mut x = DMatrix::from_fn(points.len(), 6, |i, j| {
        let (n, m, e) = points[i];
        model::flops_mem_basis(n as f64, m as f64)[j] / e
    });
    let scale: Vec<f64> = (0..6)
        .map(|j| x.column(j).norm().max(f64::MIN_POSITIVE))
        .collect();
    for (j, sc) in scale.iter().enumerate() {
        x.column_mut(j).scale_mut(1.0 / sc);
    }
    let u = x
        .svd(true, true)
        .solve(&DVector::from_element(points.len(), 1.0), 1e-12)
        .map_err(|e| anyhow::anyhow!("flops-mem fit: {e}"))?;
    Ok((0..6).map(|j| u[j] / scale[j]).collect())
}
