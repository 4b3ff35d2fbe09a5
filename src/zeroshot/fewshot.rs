//! Few-shot: flops-mem fitted to a handful of measured points with the zero-shot prediction as a
//! prior, so fewer points than coefficients suffice.
//!
//! Maximum a posteriori with Gaussian prior and noise: each coefficient b_j ~ N(b0_j, (τ·b0_j)²)
//! around the zero-shot value b0, each point's relative residual (x·b − e)/e ~ N(0, σ²). The
//! posterior is Gaussian; its mean solves (XᵀX/σ² + P) (b − b0) = Xᵀr/σ² with X the basis over e,
//! r the zero-shot relative residuals and P = diag(1/(τ b0)²); its covariance is the inverse of
//! that matrix. The measured points fix the directions they see; the prior fills in the rest.

use super::model::flops_mem_basis;
use anyhow::{bail, Result};
use nalgebra::{DMatrix, DVector};

/// Prior spread of each coefficient relative to its zero-shot value: loose, because coefficients
/// of one surface trade off against each other (leave-one-out, single coefficients depart by up
/// to a factor of two while the surface departs by about 5 %).
pub const PRIOR_REL_SD: f64 = 1.0;

/// Relative noise of one measured point (model misfit included).
pub const NOISE_REL_SD: f64 = 0.01;

/// The posterior: flops-mem coefficients and their covariance.
#[derive(Clone, Debug)]
pub struct FewShot {
    pub coefs: Vec<f64>,
    pub covariance: DMatrix<f64>,
}

/// Prior standard deviation of each coefficient: `tau` times its zero-shot value. A coefficient
/// predicted as 0 gets the spread of the largest one's scale instead (a zero-width prior would pin
/// it).
fn prior_sd(prior: &[f64], tau: f64) -> Vec<f64> {
    let floor = prior.iter().fold(0.0f64, |a, b| a.max(b.abs())) * 1e-9;
    prior.iter().map(|b| tau * b.abs().max(floor)).collect()
}

/// Fit flops-mem to `points` (n, m, e) around `prior` (zero-shot flops-mem coefficients).
pub fn fit_with_prior(
    prior: &[f64],
    points: &[(f64, f64, f64)],
    tau: f64,
    sigma: f64,
) -> Result<FewShot> {
    if prior.len() != 6 {
        bail!("a flops-mem prior has 6 coefficients, got {}", prior.len());
    }
    if points.is_empty() {
        bail!("few-shot fit needs at least one measured point");
    }
    if let Some(p) = points.iter().find(|p| !(p.2 > 0.0 && p.2.is_finite())) {
        bail!(
            "few-shot fit: energy per token {} at n = {}, m = {} is not positive",
            p.2,
            p.0,
            p.1
        );
    }
    let sd = prior_sd(prior, tau);
    let x = DMatrix::from_fn(points.len(), 6, |i, j| {
        let (n, m, e) = points[i];
        flops_mem_basis(n, m)[j] / e
    });
    let r = DVector::from_fn(points.len(), |i, _| {
        let (n, m, e) = points[i];
        let b = flops_mem_basis(n, m);
        1.0 - b.iter().zip(prior).map(|(x, c)| x * c).sum::<f64>() / e
    });
    // Work in units of the prior spread (u = Δ/sd) so the system is well conditioned.
    let xs = DMatrix::from_fn(points.len(), 6, |i, j| x[(i, j)] * sd[j]);
    let a = xs.transpose() * &xs / (sigma * sigma) + DMatrix::identity(6, 6);
    let rhs = xs.transpose() * r / (sigma * sigma);
    let chol = a.clone().cholesky().ok_or_else(|| {
        anyhow::anyhow!("few-shot fit: posterior precision is not positive definite")
    })?;
    let u = chol.solve(&rhs);
    let inv = chol.inverse();
    Ok(FewShot {
        coefs: (0..6).map(|j| prior[j] + u[j] * sd[j]).collect(),
        covariance: DMatrix::from_fn(6, 6, |i, j| inv[(i, j)] * sd[i] * sd[j]),
    })
}

/// The `k` points of `candidates` (n, m) that a few-shot fit around `prior` learns most from,
/// chosen before anything is measured: greedy Bayesian D-optimality, each step adding the point
/// that most increases log det of the posterior precision XᵀX/σ² + P (in units of the prior
/// spread, as [`fit_with_prior`] works), i.e. the point whose predicted relative energy the
/// current posterior knows least. Energies are the prior's own prediction. Returns indices into
/// `candidates`, in the order chosen.
pub fn choose_points(
    prior: &[f64],
    candidates: &[(f64, f64)],
    k: usize,
    tau: f64,
    sigma: f64,
) -> Result<Vec<usize>> {
    if prior.len() != 6 {
        bail!("a flops-mem prior has 6 coefficients, got {}", prior.len());
    }
    let sd = prior_sd(prior, tau);
    let rows: Vec<DVector<f64>> = candidates
        .iter()
        .map(|&(n, m)| {
            let b = flops_mem_basis(n, m);
            let e: f64 = b.iter().zip(prior).map(|(x, c)| x * c).sum();
            DVector::from_fn(6, |j, _| b[j] / e * sd[j] / sigma)
        })
        .collect();
    if let Some(i) = rows.iter().position(|r| !r.iter().all(|v| v.is_finite())) {
        bail!(
            "the prior predicts no positive energy at n = {}, m = {}",
            candidates[i].0,
            candidates[i].1
        );
    }
    let mut a = DMatrix::<f64>::identity(6, 6);
    let mut chosen = Vec::new();
    while chosen.len() < k.min(candidates.len()) {
        let inv = a
            .clone()
            .try_inverse()
            .ok_or_else(|| anyhow::anyhow!("few-shot design: posterior precision is singular"))?;
        let best = (0..rows.len())
            .filter(|i| !chosen.contains(i))
            .map(|i| (i, (rows[i].transpose() * &inv * &rows[i])[(0, 0)]))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .map(|(i, _)| i);
        let Some(i) = best else { break };
        a += &rows[i] * rows[i].transpose();
        chosen.push(i);
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_points_of_its_own_a_direction_keeps_the_prior() {
        // One point only: the fit moves the surface through it but stays near the prior elsewhere.
        let prior = [5e-3, 1e-7, 7e-6, 2.6e-3, 3.9e-6, 0.54];
        let e = |n: f64, m: f64| {
            1.1 * flops_mem_basis(n, m)
                .iter()
                .zip(&prior)
                .map(|(x, c)| x * c)
                .sum::<f64>()
        };
        let f = fit_with_prior(&prior, &[(512.0, 512.0, e(512.0, 512.0))], 1.0, 0.001).unwrap();
        let at = |n: f64, m: f64| {
            flops_mem_basis(n, m)
                .iter()
                .zip(&f.coefs)
                .map(|(x, c)| x * c)
                .sum::<f64>()
        };
        assert!((at(512.0, 512.0) / e(512.0, 512.0) - 1.0).abs() < 0.01);
        assert!(f.covariance[(0, 0)] > 0.0);
    }

    /// The first choice is the point the prior knows least in relative terms, no point is chosen
    /// twice, and more points only add information.
    #[test]
    fn design_picks_distinct_informative_points() {
        let prior = [5e-3, 1e-7, 7e-6, 2.6e-3, 3.9e-6, 0.54];
        let grid: Vec<(f64, f64)> = [64.0, 512.0, 4096.0]
            .iter()
            .flat_map(|&n| [64.0, 512.0, 4096.0].map(|m| (n, m)))
            .collect();
        let c = choose_points(&prior, &grid, 5, 1.0, 0.01).unwrap();
        assert_eq!(c.len(), 5);
        let mut d = c.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 5, "{c:?}");
        assert_eq!(
            choose_points(&prior, &grid, 20, 1.0, 0.01).unwrap().len(),
            9
        );
        // The corners span the surface's terms: at least three of the four are among five points.
        let corners = [
            (64.0, 64.0),
            (64.0, 4096.0),
            (4096.0, 64.0),
            (4096.0, 4096.0),
        ];
        let picked = c.iter().filter(|&&i| corners.contains(&grid[i])).count();
        assert!(
            picked >= 3,
            "{:?}",
            c.iter().map(|&i| grid[i]).collect::<Vec<_>>()
        );
    }
}
