//! b2 — output-only: E = c0·m + c1·m², so e = c0 + c1·m depends on the output length alone.

use super::{linear_energy, EnergyModel};

pub struct OutputOnly;

impl EnergyModel for OutputOnly {
    fn name(&self) -> &'static str {
        "b2"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["c0", "c1"]
    }
    fn formula(&self) -> &'static str {
        "E = c0*m + c1*m^2"
    }
    fn energy_per_token(&self, c: &[f64], _n: f64, m: f64) -> f64 {
        linear_energy(c, &[1.0, m])
    }
    fn gradient(&self, _c: &[f64], _n: f64, m: f64, out: &mut [f64]) {
        out.copy_from_slice(&[1.0, m]);
    }
}
