//! Running argmin's Gauss–Newton on a [`ResidualProblem`], with an automatic start and scaling.
//!
//! Start: every term of the model explains an equal share of the mean energy per token
//! (c_j = mean(e) / (k · mean|∂e/∂c_j|)), which needs no user tuning. For forms linear in their
//! coefficients Gauss–Newton then lands on the least-squares optimum in one step; non-linear forms
//! iterate. A design whose scaled Jacobian is (near) rank-deficient is refused before solving.

use super::problem::{Loss, ResidualProblem};
use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use anyhow::{bail, Context, Result};
use argmin::core::{Executor, Jacobian as _, State};
use argmin::solver::gaussnewton::GaussNewton;
use nalgebra::DVector;

/// Smallest singular value over largest of the scaled Jacobian below which the design counts as
/// collinear.
const RANK_TOL: f64 = 1e-10;
const MAX_ITERS: u64 = 200;

/// The data cannot determine the model's coefficients (too few points, or collinear ones): not a
/// fault of the data, so a caller fitting many groups may leave that one group out and say so.
#[derive(Debug)]
pub struct Underdetermined(pub String);

impl std::fmt::Display for Underdetermined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Underdetermined {}

/// Fitted raw coefficients and the problem they solve (for statistics).
pub(crate) struct Solution<'a> {
    pub coefs: Vec<f64>,
    pub problem: ResidualProblem<'a>,
    pub iterations: u64,
}

/// Least-squares fit of `model` to `obs` under `loss`. `what` names the data in errors.
pub(crate) fn solve<'a>(
    model: &'a dyn EnergyModel,
    obs: &'a [Obs],
    loss: Loss,
    what: &str,
) -> Result<Solution<'a>> {
    let k = model.n_coefs();
    if obs.len() <= k {
        return Err(Underdetermined(format!(
            "{what}: model {} has {k} coefficients and needs at least {} points, got {}",
            model.name(),
            k + 1,
            obs.len()
        ))
        .into());
    }
    let c0 = start(model, obs);
    let scale0 = vec![1.0; k];
    let raw = ResidualProblem::new(model, obs, loss, scale0)
        .jacobian(&DVector::from_column_slice(&c0))?;
    let scale: Vec<f64> = (0..k)
        .map(|j| {
            let rms = (raw.column(j).iter().map(|v| v * v).sum::<f64>() / obs.len() as f64).sqrt();
            if rms > 0.0 && rms.is_finite() {
                1.0 / rms
            } else {
                1.0
            }
        })
        .collect();
    let problem = ResidualProblem::new(model, obs, loss, scale.clone());
    let u0 = DVector::from_iterator(k, c0.iter().zip(&scale).map(|(c, s)| c / s));
    check_rank(&problem, &u0, model, what)?;

    let solver = GaussNewton::new().with_tolerance(1e-13)?;
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(u0).max_iters(MAX_ITERS))
        .run()
        .with_context(|| format!("{what}: fitting model {} failed", model.name()))?;
    let iterations = res.state().get_iter();
    let u = res
        .state()
        .get_best_param()
        .context("solver returned no parameters")?
        .clone();
    let problem = res.problem.problem.context("solver kept the problem")?;
    let coefs = problem.coefs(&u);
    if coefs.iter().any(|c| !c.is_finite()) {
        bail!(
            "{what}: model {} did not converge (non-finite coefficients)",
            model.name()
        );
    }
    Ok(Solution {
        coefs,
        problem,
        iterations,
    })
}

/// Equal-share starting point (see module docs).
fn start(model: &dyn EnergyModel, obs: &[Obs]) -> Vec<f64> {
    let k = model.n_coefs();
    let mean_e = obs.iter().map(|o| o.energy_per_token_j).sum::<f64>() / obs.len() as f64;
    let ones = vec![1.0; k];
    let mut g = vec![0.0; k];
    let mut mean_g = vec![0.0; k];
    for o in obs {
        model.gradient_at(&ones, o, &mut g);
        for j in 0..k {
            mean_g[j] += g[j].abs() / obs.len() as f64;
        }
    }
    mean_g
        .iter()
        .map(|g| {
            if *g > 0.0 {
                mean_e / (k as f64 * g)
            } else {
                0.0
            }
        })
        .collect()
}

fn check_rank(
    problem: &ResidualProblem,
    u0: &DVector<f64>,
    model: &dyn EnergyModel,
    what: &str,
) -> Result<()> {
    let j = problem.jacobian(u0)?;
    if j.iter().any(|v| !v.is_finite()) {
        bail!(
            "{what}: model {} has a non-finite Jacobian on this data",
            model.name()
        );
    }
    let sv = j.singular_values();
    let (max, min) = (sv.max(), sv.min());
    // Written so that a NaN singular value also counts as singular.
    if min.partial_cmp(&(RANK_TOL * max)) != Some(std::cmp::Ordering::Greater) {
        return Err(Underdetermined(format!(
            "{what}: the design is singular for model {} — its coefficients ({}) cannot be told apart on \
             these points (collinear columns; condition number {:.1e}); measure more input/output lengths",
            model.name(),
            model.coef_names().join(", "),
            max / min
        ))
        .into());
    }
    Ok(())
}
