//! The least-squares problem handed to argmin: residuals and their Jacobian, kept apart from the
//! solver (argmin's `Operator` + `Jacobian`).
//!
//! The solver works on scaled coefficients u (c_j = scale_j · u_j) so that every Jacobian column has
//! unit RMS: the raw columns of flops-mem span ten orders of magnitude (1 … n²/m), which would make
//! JᵀJ numerically singular. Residuals are divided by a constant so the cost is O(1) for both losses.

use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use argmin::core::{Error, Jacobian, Operator};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// What a residual is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// e_pred − e (J per token), as published.
    Abs,
    /// (e_pred − e) / e: targets relative error, i.e. MAPE.
    Rel,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Abs => "abs",
            Loss::Rel => "rel",
        }
    }
}

pub(crate) struct ResidualProblem<'a> {
    pub model: &'a dyn EnergyModel,
    pub obs: &'a [Obs],
    pub loss: Loss,
    pub scale: Vec<f64>,
    /// Divisor of abs residuals (RMS of e); 1 for rel.
    pub norm: f64,
}

impl<'a> ResidualProblem<'a> {
    pub fn new(model: &'a dyn EnergyModel, obs: &'a [Obs], loss: Loss, scale: Vec<f64>) -> Self {
        let norm = match loss {
            Loss::Abs => (obs
                .iter()
                .map(|o| o.energy_per_token_j.powi(2))
                .sum::<f64>()
                / obs.len() as f64)
                .sqrt(),
            Loss::Rel => 1.0,
        };
        ResidualProblem {
            model,
            obs,
            loss,
            scale,
            norm,
        }
    }

    pub fn coefs(&self, u: &DVector<f64>) -> Vec<f64> {
        u.iter().zip(&self.scale).map(|(u, s)| u * s).collect()
    }

    /// Divisor of observation i's residual.
    fn weight(&self, o: &Obs) -> f64 {
        match self.loss {
            Loss::Abs => self.norm,
            Loss::Rel => o.energy_per_token_j,
        }
    }

    /// Jacobian with respect to the raw coefficients c, in loss units (not normalised, not scaled).
    pub fn raw_jacobian(&self, c: &[f64]) -> DMatrix<f64> {
        let k = self.model.n_coefs();
        let mut j = DMatrix::zeros(self.obs.len(), k);
        let mut g = vec![0.0; k];
        for (i, o) in self.obs.iter().enumerate() {
            self.model.gradient_at(c, o, &mut g);
            let w = match self.loss {
                Loss::Abs => 1.0,
                Loss::Rel => o.energy_per_token_j,
            };
            for (col, gj) in g.iter().enumerate() {
                j[(i, col)] = gj / w;
            }
        }
        j
    }
}

impl Operator for ResidualProblem<'_> {
    type Param = DVector<f64>;
    type Output = DVector<f64>;

    fn apply(&self, u: &Self::Param) -> Result<Self::Output, Error> {
        let c = self.coefs(u);
        let r = DVector::from_iterator(
            self.obs.len(),
            self.obs.iter().map(|o| {
                let p = self.model.energy_per_token_at(&c, o);
                (p - o.energy_per_token_j) / self.weight(o)
            }),
        );
        if let Some(i) = r.iter().position(|v| !v.is_finite()) {
            // The point where it broke, and the data's extremes: a residual overflows on the
            // extreme row itself or, once the coefficients have blown up, anywhere.
            let at = |o: &Obs| {
                format!(
                    "input_tokens={} output_tokens={} (energy per token {:e} J)",
                    o.input_tokens, o.output_tokens, o.energy_per_token_j
                )
            };
            let by_e = |a: &&Obs, b: &&Obs| a.energy_per_token_j.total_cmp(&b.energy_per_token_j);
            let lo = self.obs.iter().min_by(by_e).map(at).unwrap_or_default();
            let hi = self.obs.iter().max_by(by_e).map(at).unwrap_or_default();
            return Err(Error::msg(format!(
                "model {} gave a non-finite residual at the point {}; the data's smallest value \
                 is at {lo}, the largest at {hi}: check those rows' energy_j",
                self.model.name(),
                at(&self.obs[i]),
            )));
        }
        Ok(r)
    }
}

impl Jacobian for ResidualProblem<'_> {
    type Param = DVector<f64>;
    type Jacobian = DMatrix<f64>;

    fn jacobian(&self, u: &Self::Param) -> Result<Self::Jacobian, Error> {
        let c = self.coefs(u);
        let k = self.model.n_coefs();
        let mut j = DMatrix::zeros(self.obs.len(), k);
        let mut g = vec![0.0; k];
        for (i, o) in self.obs.iter().enumerate() {
            self.model.gradient_at(&c, o, &mut g);
            let w = self.weight(o);
            for col in 0..k {
                j[(i, col)] = g[col] * self.scale[col] / w;
            }
        }
        Ok(j)
    }
}
