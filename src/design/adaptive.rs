//! Adaptive refinement: after each measured point, which point next?
//!
//! The planner is rebuilt on the current fit (its surface is the prior), so gradients are taken at
//! the coefficients the data now supports. The next point is the affordable unmeasured one with
//! the largest expected reduction of the sweet spots' uncertainty per second: with information M
//! of the points so far and gₙ = ∇ log m*(n), adding x lowers Σₙ gₙᵀM⁻¹gₙ by
//! Σₙ (gₙᵀM⁻¹x)² / (1 + xᵀM⁻¹x) (Sherman–Morrison; σ² is common to all candidates and drops out).
//! Where no m* is defined the D-optimal gain per second decides instead.

use super::{cheapest_identifying, plan, Candidate, Design, Planner};
use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use crate::fit::intervals::sweet_spot_gradient;
use crate::fit::{fit_model, FitOptions, Loss};
use anyhow::Result;
use nalgebra::DVector;

/// Share of the budget the initial (D-optimal) design may spend by default; the rest is chosen one
/// point at a time. Half keeps the initial fit well identified and leaves the refinement room.
pub const DEFAULT_INITIAL_FRACTION: f64 = 0.5;

/// The initial design of an adaptive run: D-optimal within `fraction` of `budget_s`, or within the
/// cheapest set that identifies the model where that costs more (never above `budget_s`).
pub fn initial_design(p: &Planner, budget_s: f64, fraction: f64) -> Result<Design> {
    let floor = p.cost(&cheapest_identifying(p, &[])?);
    plan(p, (fraction * budget_s).max(floor).min(budget_s), &[])
}

/// One step of an adaptive design: the model refitted to `obs` (the measurements so far) weights
/// the candidates in place of `prior` (which is kept where that fit fails, or predicts a
/// non-positive energy somewhere: too few points yet, a degenerate set), and the next point
/// follows by [`next_point`]. Returns it and the refit's MAPE (None: prior weights).
pub fn refine(
    model: &dyn EnergyModel,
    prior: &[Candidate],
    measured: &[usize],
    obs: &[Obs],
    left_s: f64,
    inputs: &[f64],
) -> (Option<usize>, Option<f64>) {
    let opts = FitOptions {
        loss: Loss::Rel,
        cv_folds: None,
        seed: 0,
    };
    let refit = fit_model(model, obs, &opts).ok().and_then(|f| {
        let coefs = f.values();
        let list: Vec<Candidate> = prior
            .iter()
            .map(|c| Candidate {
                prior_e: model.energy_per_token_at(&coefs, &c.obs(0.0)),
                ..*c
            })
            .collect();
        list.iter()
            .all(|c| c.prior_e > 0.0 && c.prior_e.is_finite())
            .then_some((list, f.mape_pct))
    });
    let (list, mape) = match refit {
        Some((list, mape)) => (list, Some(mape)),
        None => (prior.to_vec(), None),
    };
    let next = Planner::new(model, list)
        .ok()
        .and_then(|p| next_point(&p, measured, left_s, inputs));
    (next, mape)
}

const RIDGE: f64 = 1e-6;

/// The next candidate to measure given the `measured` ones and `left_s` seconds of budget, or
/// `None` when no unmeasured candidate fits in what is left.
pub fn next_point(p: &Planner, measured: &[usize], left_s: f64, inputs: &[f64]) -> Option<usize> {
    let inv = p.information(measured, RIDGE).try_inverse()?;
    let grads: Vec<DVector<f64>> = inputs
        .iter()
        .filter_map(|&n| sweet_spot_gradient(p.model, &p.prior_coefs, n))
        .map(|(m, g)| {
            DVector::from_iterator(g.len(), g.iter().zip(&p.scale).map(|(g, s)| g * s / m))
        })
        .collect();
    let identified = p.identifies(measured);
    p.best_affordable(measured, left_s, |j| {
        let x = p.row(j);
        let mx = &inv * x;
        let denom = 1.0 + x.dot(&mx);
        let gain = if identified && !grads.is_empty() {
            grads.iter().map(|g| g.dot(&mx).powi(2)).sum::<f64>() / denom
        } else {
            denom.ln()
        };
        gain / p.candidates[j].cost_s
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::grid_candidates;
    use super::super::{plan, Planner};
    use super::*;
    use crate::analytic::FlopsMem;
    use crate::dataset::synthetic::GRID;

    /// Each step picks an affordable, unmeasured point, and the predicted m* uncertainty falls.
    #[test]
    fn steps_reduce_sweet_spot_uncertainty_within_budget() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let full = p.cost(&(0..49).collect::<Vec<_>>());
        let budget = 0.1 * full;
        let mut measured = plan(&p, 0.05 * full, &[]).unwrap().chosen;
        let before = p
            .predict(&measured, 0.01, &GRID)
            .unwrap()
            .worst_sweet_spot_pct();
        while let Some(j) = next_point(&p, &measured, budget - p.cost(&measured), &GRID) {
            assert!(!measured.contains(&j));
            measured.push(j);
            assert!(p.cost(&measured) <= budget + 1e-9);
        }
        let after = p
            .predict(&measured, 0.01, &GRID)
            .unwrap()
            .worst_sweet_spot_pct();
        assert!(after < before, "{after} >= {before}");
        assert!(next_point(&p, &measured, 0.0, &GRID).is_none());
    }
}
