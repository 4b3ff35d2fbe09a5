//! The analytical energy models (docs/method.md): b1–b4 baselines, flops and flops-mem.
//!
//! Every model predicts the energy per output token `e(n, m)` (J) from its coefficients and gives
//! the derivative of that prediction with respect to each coefficient. The fitter only talks to
//! this trait, so a new (even non-linear) form is one new file plus one line in [`all_models`].

mod constant;
pub mod flops;
pub mod flops_mem_batch;
mod output_only;
mod total_sequence;
mod workload_linear;

pub use constant::Constant;
pub use flops::{Flops, FlopsMem};
pub use flops_mem_batch::FlopsMemBatch;
pub use output_only::OutputOnly;
pub use total_sequence::TotalSequence;
pub use workload_linear::WorkloadLinear;

/// An analytical model of energy per output token, `e(n, m)` with n = input_tokens, m = output_tokens.
pub trait EnergyModel: Send + Sync {
    /// CLI / file name (`b1` … `flops-mem`).
    fn name(&self) -> &'static str;
    /// Coefficient names in the published order.
    fn coef_names(&self) -> &'static [&'static str];
    /// Human-readable formula of the energy per request E(n, m).
    fn formula(&self) -> &'static str;
    /// Predicted energy per output token (J).
    fn energy_per_token(&self, coefs: &[f64], n: f64, m: f64) -> f64;
    /// ∂e/∂coef_j at (n, m), written into `out` (len = number of coefficients).
    fn gradient(&self, coefs: &[f64], n: f64, m: f64, out: &mut [f64]);
    /// Closed-form sweet spot m* (argmin over m of e) where the form has one; `None` otherwise
    /// or when no interior minimum exists.
    fn closed_form_sweet_spot(&self, _coefs: &[f64], _n: f64) -> Option<f64> {
        None
    }
    /// Prediction at one observation. Equal to [`Self::energy_per_token`] at its (n, m) except for
    /// a model that also reads what the row knows of its run (flops-mem-batch: the row's own
    /// concurrency), so one fit can span rows of different run settings.
    fn energy_per_token_at(&self, coefs: &[f64], o: &crate::dataset::Obs) -> f64 {
        self.energy_per_token(coefs, o.input_tokens, o.output_tokens)
    }
    /// Gradient at one observation (see [`Self::energy_per_token_at`]).
    fn gradient_at(&self, coefs: &[f64], o: &crate::dataset::Obs, out: &mut [f64]) {
        self.gradient(coefs, o.input_tokens, o.output_tokens, out)
    }
    /// Number of coefficients.
    fn n_coefs(&self) -> usize {
        self.coef_names().len()
    }
}

/// All models, in the column order of the published error table.
pub fn all_models() -> Vec<Box<dyn EnergyModel>> {
    vec![
        Box::new(Constant),
        Box::new(OutputOnly),
        Box::new(TotalSequence),
        Box::new(WorkloadLinear),
        Box::new(Flops),
        Box::new(FlopsMem),
    ]
}

/// Names accepted by `--model`: the six published models (`all`) and flops-mem-batch, which is
/// asked for by name since it needs the data's run settings.
pub fn model_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = all_models().iter().map(|m| m.name()).collect();
    v.push("flops-mem-batch");
    v
}

/// Look a model up by name; the error lists the valid names.
pub fn model_by_name(name: &str) -> anyhow::Result<Box<dyn EnergyModel>> {
    if name == "flops-mem-batch" {
        return Ok(Box::new(FlopsMemBatch::unbound()));
    }
    all_models()
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown model '{name}' (--model): expected one of {}, or all",
                model_names().join(", ")
            )
        })
}

/// Parse a `--model` value: one name, a comma list, or `all`.
pub fn models_from_arg(arg: &str) -> anyhow::Result<Vec<Box<dyn EnergyModel>>> {
    if arg == "all" {
        return Ok(all_models());
    }
    arg.split(',').map(|s| model_by_name(s.trim())).collect()
}

/// Prediction and gradient of a model that is linear in its coefficients: e = Σ c_j · b_j(n, m).
/// `basis` writes b_j(n, m) into its slice.
pub(crate) fn linear_energy(coefs: &[f64], basis: &[f64]) -> f64 {
    coefs.iter().zip(basis).map(|(c, b)| c * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite differences agree with every model's analytic gradient.
    #[test]
    fn gradients_match_finite_differences() {
        for model in all_models() {
            let k = model.n_coefs();
            let coefs: Vec<f64> = (0..k).map(|j| 1e-3 * (j as f64 + 1.0)).collect();
            for &(n, m) in &[(64.0, 64.0), (512.0, 4096.0), (4096.0, 128.0)] {
                let mut g = vec![0.0; k];
                model.gradient(&coefs, n, m, &mut g);
                for j in 0..k {
                    let h = 1e-6;
                    let (mut up, mut dn) = (coefs.clone(), coefs.clone());
                    up[j] += h;
                    dn[j] -= h;
                    let fd = (model.energy_per_token(&up, n, m)
                        - model.energy_per_token(&dn, n, m))
                        / (2.0 * h);
                    assert!(
                        (fd - g[j]).abs() <= 1e-6 * fd.abs().max(1.0),
                        "{} coef {j}: {fd} vs {}",
                        model.name(),
                        g[j]
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_model_names_the_value() {
        let err = model_by_name("flopz").err().unwrap().to_string();
        assert!(err.contains("flopz") && err.contains("flops-mem"), "{err}");
        assert_eq!(models_from_arg("all").unwrap().len(), 6);
        assert_eq!(models_from_arg("b1,flops").unwrap().len(), 2);
    }
}
