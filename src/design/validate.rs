//! Validating designs on a fully measured grid: plan with a fraction of the grid's estimated
//! seconds (the planner knows only what a plan would: candidates, their cost and the prior), fit
//! the chosen points' measurements, and compare with the fit of the whole grid.

use super::{initial_design, plan, refine, Planner};
use crate::dataset::Obs;
use crate::fit::intervals::{self, Interval};
use crate::fit::{fit_model, stats::mape, FitOptions, Loss};
use anyhow::{Context, Result};
use serde::Serialize;

/// One input length's sweet spot: the design fit's with its interval against the full grid's.
#[derive(Clone, Debug, Serialize)]
pub struct SweetSpotCheck {
    pub input_tokens: f64,
    pub full_grid: Option<f64>,
    pub design: Option<Interval>,
    /// (design − full) / full, %.
    pub deviation_pct: Option<f64>,
    /// Whether the full grid's m* lies inside the design fit's 95 % interval.
    pub inside_ci95: bool,
}

/// What one budget bought.
#[derive(Clone, Debug, Serialize)]
pub struct Validation {
    pub budget_fraction: f64,
    pub budget_s: f64,
    pub points: usize,
    pub design_s: f64,
    /// (input_tokens, output_tokens) of the chosen points.
    pub chosen: Vec<(f64, f64)>,
    pub mape_all_pct: f64,
    pub full_grid_mape_pct: f64,
    /// MAPE over the rows of points the design did not measure (None if it measured all).
    pub mape_unmeasured_pct: Option<f64>,
    /// The worst row: (input_tokens, output_tokens, absolute error %).
    pub worst: (f64, f64, f64),
    pub sweet_spots: Vec<SweetSpotCheck>,
}

/// The points a design of `budget_s` measures: the plan, or with `adaptive` (its initial fraction)
/// the adaptive run replayed on `obs`: each point's measurement is its row(s) in `obs`, and each
/// costs its estimate (a replay has no measured windows).
fn choose(
    p: &Planner,
    obs: &[Obs],
    budget_s: f64,
    adaptive: Option<f64>,
    inputs: &[f64],
) -> Result<Vec<usize>> {
    let Some(fraction) = adaptive else {
        return Ok(plan(p, budget_s, &[])?.chosen);
    };
    let mut chosen = initial_design(p, budget_s, fraction)?.chosen;
    loop {
        let seen: Vec<Obs> = obs
            .iter()
            .filter(|o| {
                chosen.iter().any(|&i| {
                    let c = &p.candidates[i];
                    (c.input_tokens, c.output_tokens) == (o.input_tokens, o.output_tokens)
                })
            })
            .cloned()
            .collect();
        let left_s = budget_s - p.cost(&chosen);
        match refine(p.model, &p.candidates, &chosen, &seen, left_s, inputs).0 {
            Some(j) => chosen.push(j),
            None => return Ok(chosen),
        }
    }
}

/// Validate a design per budget fraction against the fit of all of `obs` (one LLM's full grid):
/// the plan, or with `adaptive` (the initial design's share of the budget) the adaptive design
/// replayed on `obs`. The planner's candidates must be the grid points of `obs`.
pub fn validate(
    p: &Planner,
    obs: &[Obs],
    fractions: &[f64],
    adaptive: Option<f64>,
) -> Result<Vec<Validation>> {
    let opts = FitOptions {
        loss: Loss::Rel,
        cv_folds: None,
        seed: 0,
    };
    let full = fit_model(p.model, obs, &opts).context("fitting the full grid")?;
    let full_coefs = full.values();
    let mut inputs: Vec<f64> = obs.iter().map(|o| o.input_tokens).collect();
    inputs.sort_by(f64::total_cmp);
    inputs.dedup();
    let all: Vec<usize> = (0..p.candidates.len()).collect();
    let grid_s = p.cost(&all);
    fractions
        .iter()
        .map(|&fraction| {
            let budget_s = fraction * grid_s;
            let picks = choose(p, obs, budget_s, adaptive, &inputs)
                .with_context(|| format!("budget fraction {fraction}"))?;
            let chosen: Vec<(f64, f64)> = picks
                .iter()
                .map(|&i| (p.candidates[i].input_tokens, p.candidates[i].output_tokens))
                .collect();
            let picked = |o: &Obs| chosen.contains(&(o.input_tokens, o.output_tokens));
            let (train, rest): (Vec<Obs>, Vec<Obs>) = obs.iter().partition(|o| picked(o));
            let fit = fit_model(p.model, &train, &opts)
                .with_context(|| format!("fitting the design of budget fraction {fraction}"))?;
            let coefs = fit.values();
            let worst = obs
                .iter()
                .map(|o| {
                    let e = p
                        .model
                        .energy_per_token(&coefs, o.input_tokens, o.output_tokens);
                    let err = 100.0 * ((e - o.energy_per_token_j) / o.energy_per_token_j).abs();
                    (o.input_tokens, o.output_tokens, err)
                })
                .max_by(|a, b| a.2.total_cmp(&b.2))
                .unwrap_or((0.0, 0.0, 0.0));
            let sweet_spots = inputs
                .iter()
                .map(|&n| {
                    let f = p.model.closed_form_sweet_spot(&full_coefs, n);
                    let ci = intervals::sweet_spot(p.model, &coefs, &fit.covariance, fit.dof, n);
                    SweetSpotCheck {
                        input_tokens: n,
                        full_grid: f,
                        design: ci,
                        deviation_pct: f.zip(ci).map(|(f, c)| 100.0 * (c.value - f) / f),
                        inside_ci95: f.zip(ci).is_some_and(|(f, c)| c.contains(f)),
                    }
                })
                .collect();
            Ok(Validation {
                budget_fraction: fraction,
                budget_s,
                points: picks.len(),
                design_s: p.cost(&picks),
                chosen,
                mape_all_pct: mape(p.model, &coefs, obs),
                full_grid_mape_pct: full.mape_pct,
                mape_unmeasured_pct: (!rest.is_empty()).then(|| mape(p.model, &coefs, &rest)),
                worst,
                sweet_spots,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{grid_candidates, LLAMA};
    use super::*;
    use crate::analytic::FlopsMem;
    use crate::dataset::synthetic::{grid, GRID};

    /// On a labelled synthetic grid (known coefficients, 0.5 % noise) a 10 % design recovers the
    /// surface nearly as well as the full grid.
    #[test]
    fn design_fit_recovers_synthetic_surface() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let obs = grid(&FlopsMem, &LLAMA, &GRID, &GRID, 0.005, 11);
        let v = validate(&p, &obs, &[0.1, 0.3], None).unwrap();
        let a = validate(&p, &obs, &[0.1, 0.3], Some(0.5)).unwrap();
        for r in v.iter().chain(&a) {
            assert!(r.design_s <= r.budget_s);
            assert!(
                r.mape_all_pct < 2.0 * r.full_grid_mape_pct.max(0.4),
                "{r:?}"
            );
            for s in &r.sweet_spots {
                assert!(s.deviation_pct.unwrap().abs() < 5.0, "{s:?}");
            }
        }
    }
}
