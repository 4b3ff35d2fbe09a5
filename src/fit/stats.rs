//! Goodness of fit and coefficient significance (statrs): standard errors from σ²(JᵀJ)⁻¹, t values,
//! two-sided p values, stars, R², RMSE, MAPE, AIC and BIC.
//!
//! σ², JᵀJ, AIC and BIC live in the loss's residual space (J/token for `abs`, relative for `rel`,
//! i.e. weighted least squares); R², RMSE and MAPE are always on the energy per token itself.

use super::problem::{Loss, ResidualProblem};
use super::Coefficient;
use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use anyhow::Result;
use nalgebra::DMatrix;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Significance stars: *** p<0.001, ** p<0.01, * p<0.05, n.s.
pub fn stars(p: f64) -> &'static str {
    if p < 0.001 {
        "***"
    } else if p < 0.01 {
        "**"
    } else if p < 0.05 {
        "*"
    } else {
        "n.s."
    }
}

/// Smallest, median (the mean of the middle two for an even count) and largest of `v`; None when
/// empty.
pub fn min_median_max(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    let median = match k {
        0 => return None,
        k if k % 2 == 1 => v[k / 2],
        k => (v[k / 2 - 1] + v[k / 2]) / 2.0,
    };
    Some((v[0], median, v[k - 1]))
}

/// Mean absolute percentage error (%) of a model's predictions.
pub fn mape(model: &dyn EnergyModel, coefs: &[f64], obs: &[Obs]) -> f64 {
    100.0
        * obs
            .iter()
            .map(|o| {
                ((model.energy_per_token_at(coefs, o) - o.energy_per_token_j)
                    / o.energy_per_token_j)
                    .abs()
            })
            .sum::<f64>()
        / obs.len() as f64
}

pub(crate) struct Summary {
    pub coefficients: Vec<Coefficient>,
    /// Covariance of the coefficients (see [`covariance`]).
    pub covariance: DMatrix<f64>,
    /// Residual degrees of freedom, N − k.
    pub dof: f64,
    pub mape_pct: f64,
    pub rmse_j: f64,
    pub r2: f64,
    pub aic: f64,
    pub bic: f64,
}

/// How the coefficients' covariance is estimated under each loss.
pub fn covariance_method(loss: Loss) -> &'static str {
    match loss {
        Loss::Rel => "classical: sigma^2 (J'J)^-1 in relative residuals",
        Loss::Abs => "HC3 heteroscedasticity-consistent sandwich in absolute residuals",
    }
}

/// Covariance of the fitted coefficients, computed on the column-scaled Jacobian for conditioning;
/// `None` when JᵀJ is singular.
///
/// Under `rel` the residuals are relative errors, whose spread the measurements show to be about the
/// same at every point (energy noise is proportional to energy), so the classical σ²(JᵀJ)⁻¹ holds.
/// Under `abs` the same relative noise makes the absolute residuals at long prompts hundreds of times
/// larger than at short ones; σ²(JᵀJ)⁻¹ then under-covers badly, so the sandwich
/// (JᵀJ)⁻¹ Jᵀ diag(rᵢ² / (1 − hᵢᵢ)²) J (JᵀJ)⁻¹ (HC3, MacKinnon and White 1985) is used instead.
pub(crate) fn covariance(
    problem: &ResidualProblem,
    coefs: &[f64],
    loss_resid: &[f64],
    sigma2: f64,
) -> Option<DMatrix<f64>> {
    let j = problem.raw_jacobian(coefs);
    let s = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(&problem.scale));
    let js = &j * &s;
    let inv = (js.transpose() * &js).try_inverse()?;
    let scaled = match problem.loss {
        Loss::Rel => inv * sigma2,
        Loss::Abs => {
            let mut meat = DMatrix::zeros(js.ncols(), js.ncols());
            for (i, r) in loss_resid.iter().enumerate() {
                let row = js.row(i);
                let h = (row * &inv * row.transpose())[(0, 0)];
                let w = r * r / (1.0 - h).max(1e-12).powi(2);
                meat += row.transpose() * row * w;
            }
            &inv * meat * &inv
        }
    };
    Some(&s * scaled * &s)
}

pub(crate) fn summarise(problem: &ResidualProblem, coefs: &[f64], what: &str) -> Result<Summary> {
    let (model, obs) = (problem.model, problem.obs);
    let (n, k) = (obs.len() as f64, coefs.len());
    let pred: Vec<f64> = obs
        .iter()
        .map(|o| model.energy_per_token_at(coefs, o))
        .collect();
    let loss_resid: Vec<f64> = obs
        .iter()
        .zip(&pred)
        .map(|(o, p)| match problem.loss {
            Loss::Abs => p - o.energy_per_token_j,
            Loss::Rel => (p - o.energy_per_token_j) / o.energy_per_token_j,
        })
        .collect();
    let rss: f64 = loss_resid.iter().map(|r| r * r).sum();
    let dof = n - k as f64;
    let sigma2 = rss / dof;

    let cov = covariance(problem, coefs, &loss_resid, sigma2).ok_or_else(|| {
        anyhow::anyhow!(
            "{what}: JᵀJ is singular for model {}; coefficients are not identifiable",
            model.name()
        )
    })?;
    let t_dist = StudentsT::new(0.0, 1.0, dof)
        .map_err(|e| anyhow::anyhow!("{what}: t distribution: {e}"))?;
    let coefficients = model
        .coef_names()
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let se = cov[(i, i)].max(0.0).sqrt();
            let t = coefs[i] / se;
            let p = if t.is_finite() {
                2.0 * t_dist.sf(t.abs())
            } else {
                0.0
            };
            Coefficient {
                name: name.to_string(),
                value: coefs[i],
                std_error: se,
                t_value: t,
                p_value: p,
                stars: stars(p).to_string(),
            }
        })
        .collect();

    let mean_e = obs.iter().map(|o| o.energy_per_token_j).sum::<f64>() / n;
    let ss_res: f64 = obs
        .iter()
        .zip(&pred)
        .map(|(o, p)| (p - o.energy_per_token_j).powi(2))
        .sum();
    let ss_tot: f64 = obs
        .iter()
        .map(|o| (o.energy_per_token_j - mean_e).powi(2))
        .sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        f64::NAN
    };
    // Gaussian log-likelihood up to a constant: AIC = N ln(RSS/N) + 2k, BIC = N ln(RSS/N) + k ln N.
    let ll = n * (rss.max(f64::MIN_POSITIVE) / n).ln();
    Ok(Summary {
        coefficients,
        covariance: cov,
        dof,
        mape_pct: mape(model, coefs, obs),
        rmse_j: (ss_res / n).sqrt(),
        r2,
        aic: ll + 2.0 * k as f64,
        bic: ll + k as f64 * n.ln(),
    })
}
