//! Fitting energy models: non-linear least squares through argmin over nalgebra, statistics,
//! cross-validation and the JSON fit files.

pub mod batch;
pub mod file;
pub mod intervals;
mod problem;
pub mod published;
pub mod reference;
mod solve;
pub mod stats;
pub mod table;
mod validate;
pub mod warnings;

pub use problem::Loss;
pub use solve::Underdetermined;
pub use validate::{cv_by_mape, cv_mape, extrapolation_mape, CvBy, EXTRAPOLATION_LIMIT};

use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// How to fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    pub loss: Loss,
    /// k of k-fold cross-validation; `None` skips it.
    pub cv_folds: Option<usize>,
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            loss: Loss::Rel,
            cv_folds: Some(5),
            seed: 42,
        }
    }
}

/// One fitted coefficient with its significance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Coefficient {
    pub name: String,
    pub value: f64,
    pub std_error: f64,
    pub t_value: f64,
    pub p_value: f64,
    pub stars: String,
}

/// A fitted model and how well it fits.
#[derive(Clone, Debug)]
pub struct FitResult {
    pub model: String,
    pub loss: Loss,
    pub points: usize,
    pub iterations: u64,
    pub coefficients: Vec<Coefficient>,
    /// Covariance of the coefficients, in their order (`stats::covariance`).
    pub covariance: nalgebra::DMatrix<f64>,
    /// Residual degrees of freedom (points − coefficients).
    pub dof: f64,
    pub mape_pct: f64,
    pub rmse_j: f64,
    pub r2: f64,
    pub aic: f64,
    pub bic: f64,
    pub cv_mape_pct: Option<f64>,
    /// Why CV was not computed, when it was asked for but could not be.
    pub cv_note: Option<String>,
    pub extrapolation_mape_pct: Option<f64>,
    pub extrapolation_note: Option<String>,
}

impl FitResult {
    pub fn values(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.value).collect()
    }
}

/// Fit one model to one group's observations. `what` names the data in error messages.
pub fn fit_model_named(
    model: &dyn EnergyModel,
    obs: &[Obs],
    opts: &FitOptions,
    what: &str,
) -> Result<FitResult> {
    let sol = solve::solve(model, obs, opts.loss, what)?;
    let s = stats::summarise(&sol.problem, &sol.coefs, what)?;
    let (cv_mape_pct, cv_note) = match opts.cv_folds {
        None => (None, None),
        Some(k) => split(validate::cv_mape(model, obs, opts.loss, k, opts.seed, what)),
    };
    let (extrapolation_mape_pct, extrapolation_note) =
        split(validate::extrapolation_mape(model, obs, opts.loss, what));
    Ok(FitResult {
        model: model.name().to_string(),
        loss: opts.loss,
        points: obs.len(),
        iterations: sol.iterations,
        coefficients: s.coefficients,
        covariance: s.covariance,
        dof: s.dof,
        mape_pct: s.mape_pct,
        rmse_j: s.rmse_j,
        r2: s.r2,
        aic: s.aic,
        bic: s.bic,
        cv_mape_pct,
        cv_note,
        extrapolation_mape_pct,
        extrapolation_note,
    })
}

/// [`fit_model_named`] with a generic name for the data.
pub fn fit_model(model: &dyn EnergyModel, obs: &[Obs], opts: &FitOptions) -> Result<FitResult> {
    fit_model_named(model, obs, opts, "data")
}

fn split(r: Result<f64>) -> (Option<f64>, Option<String>) {
    match r {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    }
}
