//! b1 — constant energy per token (Niu et al.): E = c0·m, so e = c0.

use super::EnergyModel;

pub struct Constant;

impl EnergyModel for Constant {
    fn name(&self) -> &'static str {
        "b1"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["c0"]
    }
    fn formula(&self) -> &'static str {
        "E = c0*m"
    }
    fn energy_per_token(&self, c: &[f64], _n: f64, _m: f64) -> f64 {
        c[0]
    }
    fn gradient(&self, _c: &[f64], _n: f64, _m: f64, out: &mut [f64]) {
        out[0] = 1.0;
    }
}
