//! Budgeted measurement designs: which grid points to measure so that an energy model's
//! coefficients, and the sweet spots that follow from them, are known best for the seconds spent.
//!
//! The fitter minimises relative residuals (e_pred − e)/e, so one measurement at (n, m) adds
//! xxᵀ/σ² to the information matrix, with x = ∇e(n, m)/e(n, m) (the row of the relative loss's
//! Jacobian) and σ the relative noise of a point. A design is D-optimal when it maximises
//! log det Σ xxᵀ: the volume of the coefficients' confidence ellipsoid shrinks fastest. Each
//! candidate costs its estimated measured seconds (the dry run's roofline estimate × the runs that
//! make its window), and the chosen points' seconds must fit the budget (`greedy.rs`).
//!
//! Both x and the cost need e(n, m) before anything is measured: a *prior* surface. It only weights
//! the points (which are informative relative to their energy), never enters a fit. The model is
//! fitted to the prior surface once to give the coefficients at which gradients and sweet spots
//! are evaluated. This module is pure: candidates arrive with their cost and prior energy.

mod adaptive;
pub mod floor;
mod greedy;
pub mod validate;

pub use adaptive::{initial_design, next_point, refine, DEFAULT_INITIAL_FRACTION};
pub use greedy::{cheapest_identifying, next_best, plan, plan_with_floor, Design};

use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use crate::fit::intervals::{self, Interval};
use crate::fit::{fit_model, FitOptions, Loss};
use anyhow::{bail, Context, Result};
use nalgebra::{DMatrix, DVector};

/// Smallest over largest singular value of the chosen rows below which a design counts as not
/// identifying the model (stricter than the fitter's own refusal, so a design that passes fits).
pub const IDENTIFY_TOL: f64 = 1e-8;

/// Default relative noise of one point (σ, as a fraction): the relative residual RMS of flops-mem
/// on the committed 8B grid is about 1.5 %, model misfit included; the 1B's is lower.
pub const DEFAULT_NOISE: f64 = 0.015;

/// A point a design may choose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// Requests R submitted at once: a design over several values measures the concurrency axis.
    pub requests: f64,
    /// Estimated measured seconds (one run's estimate × runs per window).
    pub cost_s: f64,
    /// The prior's energy per output token there (any positive scale: only ratios matter).
    pub prior_e: f64,
    /// Mean sequences in flight the engine's schedule predicts at this point (None: unknown, so
    /// a model that needs it cannot be designed for).
    pub concurrency: Option<f64>,
}

impl Candidate {
    /// The candidate as an observation of energy per token `e`: what a model reads of a row.
    pub fn obs(&self, e: f64) -> Obs {
        Obs {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            energy_per_token_j: e,
            concurrency: self.concurrency,
        }
    }
}

/// The model as the sweet spots of one requests value see it: flops-mem-batch bound to that
/// value's concurrency c(n, m), since its m* depends on how c falls with m.
pub struct BoundModel {
    pub requests: f64,
    pub model: Box<dyn EnergyModel>,
}

/// The design problem of one model over one candidate set.
pub struct Planner<'a> {
    pub model: &'a dyn EnergyModel,
    pub candidates: Vec<Candidate>,
    /// The model fitted to the prior surface.
    pub prior_coefs: Vec<f64>,
    /// Information rows x (one per candidate), each column scaled to unit RMS over the candidates
    /// so that determinants are well conditioned; `scale` maps back to raw coefficients.
    rows: Vec<DVector<f64>>,
    scale: Vec<f64>,
    /// Per requests value, the model whose m* the predicted sweet spots are (empty: `model`'s
    /// closed form, for a design of one requests value).
    bound: Vec<BoundModel>,
}

/// What a design is expected to deliver, before any measurement.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// Standard error of each coefficient relative to its prior value (%).
    pub coef_rel_se_pct: Vec<f64>,
    /// Per requests value (where the planner binds the model to each) and input length: m* of
    /// the prior fit with its predicted 95 % interval (None: m* undefined).
    pub sweet_spots: Vec<SpotPrediction>,
}

/// One predicted sweet spot.
#[derive(Clone, Copy, Debug)]
pub struct SpotPrediction {
    /// The requests value it is for; None for a design of one value with an unbound model.
    pub requests: Option<f64>,
    pub input_tokens: f64,
    pub interval: Option<Interval>,
}

impl Prediction {
    /// The widest predicted m* half-width (%), or infinity where an m* is undefined.
    pub fn worst_sweet_spot_pct(&self) -> f64 {
        self.sweet_spots
            .iter()
            .map(|s| s.interval.map_or(f64::INFINITY, |i| i.half_width_pct()))
            .fold(0.0, f64::max)
    }
}

impl<'a> Planner<'a> {
    /// Fit `model` to the prior surface over `candidates` and build the information rows.
    pub fn new(model: &'a dyn EnergyModel, candidates: Vec<Candidate>) -> Result<Self> {
        if let Some(c) = candidates.iter().find(|c| {
            !(c.prior_e > 0.0 && c.prior_e.is_finite() && c.cost_s > 0.0 && c.cost_s.is_finite())
        }) {
            bail!(
                "design: candidate n={} m={} R={} has prior energy per token {} and cost {} s; both must be positive and finite",
                c.input_tokens,
                c.output_tokens,
                c.requests,
                c.prior_e,
                c.cost_s
            );
        }
        // Each candidate's own concurrency goes with it, so a model that reads it (flops-mem-batch)
        // sees every requests value of the design, as a fit of the measured rows will.
        let obs: Vec<Obs> = candidates.iter().map(|c| c.obs(c.prior_e)).collect();
        let opts = FitOptions {
            loss: Loss::Rel,
            cv_folds: None,
            seed: 0,
        };
        let prior = fit_model(model, &obs, &opts).with_context(|| {
            format!(
                "design: fitting model {} to the prior surface over the {} candidate points",
                model.name(),
                candidates.len()
            )
        })?;
        let prior_coefs = prior.values();
        let k = model.n_coefs();
        let mut g = vec![0.0; k];
        let raw: Vec<Vec<f64>> = obs
            .iter()
            .map(|o| {
                model.gradient_at(&prior_coefs, o, &mut g);
                g.iter().map(|v| v / o.energy_per_token_j).collect()
            })
            .collect();
        let scale: Vec<f64> = (0..k)
            .map(|j| {
                let ms = raw.iter().map(|r| r[j] * r[j]).sum::<f64>() / raw.len() as f64;
                if ms > 0.0 && ms.is_finite() {
                    1.0 / ms.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let rows = raw
            .iter()
            .map(|r| DVector::from_iterator(k, r.iter().zip(&scale).map(|(v, s)| v * s)))
            .collect();
        Ok(Planner {
            model,
            candidates,
            prior_coefs,
            rows,
            scale,
            bound: Vec::new(),
        })
    }

    /// Predict the sweet spots of each requests value with its bound model (`predict`).
    pub fn with_bound_models(mut self, bound: Vec<BoundModel>) -> Self {
        self.bound = bound;
        self
    }

    /// The requests values of the candidates, ascending.
    pub fn requests_values(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.candidates.iter().map(|c| c.requests).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    }

    pub fn k(&self) -> usize {
        self.model.n_coefs()
    }

    /// Seconds of a set of candidates.
    pub fn cost(&self, set: &[usize]) -> f64 {
        set.iter().map(|&i| self.candidates[i].cost_s).sum()
    }

    /// Σ xxᵀ over `set` (scaled), plus `ridge` on the diagonal.
    pub(crate) fn information(&self, set: &[usize], ridge: f64) -> DMatrix<f64> {
        let k = self.k();
        let mut m = DMatrix::identity(k, k) * ridge;
        for &i in set {
            m.ger(1.0, &self.rows[i], &self.rows[i], 1.0);
        }
        m
    }

    pub(crate) fn row(&self, i: usize) -> &DVector<f64> {
        &self.rows[i]
    }

    /// Whether `set` identifies the model: more points than coefficients, and the chosen rows'
    /// smallest singular value above `IDENTIFY_TOL` of the largest.
    pub fn identifies(&self, set: &[usize]) -> bool {
        set.len() > self.k() && self.rank_ok(set)
    }

    pub(crate) fn rank_ok(&self, set: &[usize]) -> bool {
        self.rank(set) == self.k()
    }

    /// Numerical rank of the chosen rows: singular values above `IDENTIFY_TOL` of the largest.
    pub(crate) fn rank(&self, set: &[usize]) -> usize {
        if set.is_empty() {
            return 0;
        }
        let x = DMatrix::from_fn(set.len(), self.k(), |r, c| self.rows[set[r]][c]);
        let sv = x.singular_values();
        let max = sv.max();
        sv.iter().filter(|&&v| v > IDENTIFY_TOL * max).count()
    }

    /// log det of the information of `set` (scaled units); −∞ when it does not identify.
    pub fn log_det(&self, set: &[usize]) -> f64 {
        if !self.rank_ok(set) {
            return f64::NEG_INFINITY;
        }
        self.log_det_unchecked(set)
    }

    /// log det by Cholesky alone (−∞ when not positive definite), without the rank test: the
    /// inner loop of the exchange search, whose result is tested once at the end.
    pub(crate) fn log_det_unchecked(&self, set: &[usize]) -> f64 {
        match self.information(set, 0.0).cholesky() {
            Some(c) => 2.0 * c.l().diagonal().iter().map(|d| d.ln()).sum::<f64>(),
            None => f64::NEG_INFINITY,
        }
    }

    /// The unchosen candidate costing at most `left_s` with the highest `score`, if any.
    pub(crate) fn best_affordable(
        &self,
        set: &[usize],
        left_s: f64,
        score: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        (0..self.candidates.len())
            .filter(|j| !set.contains(j) && self.candidates[*j].cost_s <= left_s)
            .map(|j| (j, score(j)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(j, _)| j)
    }

    /// Covariance of the raw coefficients if `set` were measured with relative noise `noise`:
    /// σ² (Σ xxᵀ)⁻¹, mapped back from the scaled units. `None` when `set` does not identify.
    pub fn covariance(&self, set: &[usize], noise: f64) -> Option<DMatrix<f64>> {
        if !self.identifies(set) {
            return None;
        }
        let inv = self.information(set, 0.0).try_inverse()?;
        let s = DMatrix::from_diagonal(&DVector::from_column_slice(&self.scale));
        Some(&s * inv * &s * (noise * noise))
    }

    /// Predicted standard errors of the coefficients and m* intervals at `inputs` for `set`.
    pub fn predict(&self, set: &[usize], noise: f64, inputs: &[f64]) -> Option<Prediction> {
        let cov = self.covariance(set, noise)?;
        let dof = (set.len() - self.k()) as f64;
        let coef_rel_se_pct = self
            .prior_coefs
            .iter()
            .enumerate()
            .map(|(j, c)| 100.0 * cov[(j, j)].max(0.0).sqrt() / c.abs())
            .collect();
        let sweet_spots = if self.bound.is_empty() {
            inputs
                .iter()
                .map(|&n| SpotPrediction {
                    requests: None,
                    input_tokens: n,
                    interval: intervals::sweet_spot(self.model, &self.prior_coefs, &cov, dof, n),
                })
                .collect()
        } else {
            let (lo, hi) = self.output_range();
            self.bound
                .iter()
                .flat_map(|b| {
                    let cov = &cov;
                    inputs.iter().map(move |&n| SpotPrediction {
                        requests: Some(b.requests),
                        input_tokens: n,
                        interval: intervals::sweet_spot_over(
                            b.model.as_ref(),
                            &self.prior_coefs,
                            cov,
                            dof,
                            n,
                            lo,
                            hi,
                        ),
                    })
                })
                .collect()
        };
        Some(Prediction {
            coef_rel_se_pct,
            sweet_spots,
        })
    }

    /// Shortest and longest candidate output lengths: where a numeric m* is looked for.
    fn output_range(&self) -> (f64, f64) {
        self.candidates
            .iter()
            .fold((f64::INFINITY, 0.0), |(lo, hi), c| {
                (lo.min(c.output_tokens), hi.max(c.output_tokens))
            })
    }

    /// The candidate at (n, m) and R requests, if any.
    pub fn index_of(&self, n: f64, m: f64, requests: f64) -> Option<usize> {
        self.candidates
            .iter()
            .position(|c| c.input_tokens == n && c.output_tokens == m && c.requests == requests)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analytic::FlopsMem;
    use crate::dataset::synthetic::GRID;

    pub(crate) use crate::sweetspot::tests::LLAMA;

    /// The 7 × 7 grid with the published surface as prior and a cost that grows with n·m like a
    /// real grid's (short points cost the 5 s minimum window).
    pub fn grid_candidates() -> Vec<Candidate> {
        let mut v = Vec::new();
        for &n in &GRID {
            for &m in &GRID {
                v.push(Candidate {
                    input_tokens: n,
                    output_tokens: m,
                    requests: 1000.0,
                    concurrency: None,
                    cost_s: (1e-4 * m * (n + m) * FlopsMem.energy_per_token(&LLAMA, n, m) * 40.0)
                        .max(5.0),
                    prior_e: FlopsMem.energy_per_token(&LLAMA, n, m),
                });
            }
        }
        v
    }

    #[test]
    fn prior_fit_recovers_the_prior_surface() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        for (a, b) in p.prior_coefs.iter().zip(LLAMA) {
            assert!((a - b).abs() < 1e-6 * b.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn identification_needs_k_plus_one_points_spanning_n_and_m() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        // One input length only: β, γ, δ cannot be told apart from α, ζ.
        let one_n: Vec<usize> = (0..7).collect();
        assert!(!p.identifies(&one_n));
        assert_eq!(p.log_det(&one_n), f64::NEG_INFINITY);
        let all: Vec<usize> = (0..49).collect();
        assert!(p.identifies(&all));
        assert!(p.predict(&one_n, 0.01, &[64.0]).is_none());
    }

    /// More points never make the predicted errors larger (information only adds).
    #[test]
    fn predicted_errors_shrink_with_points() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let some: Vec<usize> = (0..49).step_by(3).collect();
        let all: Vec<usize> = (0..49).collect();
        let a = p.predict(&some, 0.01, &[64.0, 4096.0]).unwrap();
        let b = p.predict(&all, 0.01, &[64.0, 4096.0]).unwrap();
        for (x, y) in a.coef_rel_se_pct.iter().zip(&b.coef_rel_se_pct) {
            assert!(y <= x, "{y} > {x}");
        }
        assert!(b.worst_sweet_spot_pct() < a.worst_sweet_spot_pct());
    }

    #[test]
    fn bad_candidates_are_named() {
        let mut c = grid_candidates();
        c[3].cost_s = f64::NAN;
        let err = Planner::new(&FlopsMem, c).err().unwrap().to_string();
        assert!(err.contains("n=64 m=512"), "{err}");
    }
}
