//! b4 — workload-linear (Wilkins et al. 2024): E = c0·n + c1·m + c2·n·m.

use super::{linear_energy, EnergyModel};

pub struct WorkloadLinear;

impl EnergyModel for WorkloadLinear {
    fn name(&self) -> &'static str {
        "b4"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["c0", "c1", "c2"]
    }
    fn formula(&self) -> &'static str {
        "E = c0*n + c1*m + c2*n*m"
    }
    fn energy_per_token(&self, c: &[f64], n: f64, m: f64) -> f64 {
        linear_energy(c, &[n / m, 1.0, n])
    }
    fn gradient(&self, _c: &[f64], n: f64, m: f64, out: &mut [f64]) {
        out.copy_from_slice(&[n / m, 1.0, n]);
    }
}
