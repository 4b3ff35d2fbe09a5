//! b3 — total sequence (Wilhelm et al.): E = c0·(n + m), one price per token of the whole sequence.

use super::EnergyModel;

pub struct TotalSequence;

impl EnergyModel for TotalSequence {
    fn name(&self) -> &'static str {
        "b3"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["c0"]
    }
    fn formula(&self) -> &'static str {
        "E = c0*(n + m)"
    }
    fn energy_per_token(&self, c: &[f64], n: f64, m: f64) -> f64 {
        c[0] * (n + m) / m
    }
    fn gradient(&self, _c: &[f64], n: f64, m: f64, out: &mut [f64]) {
        out[0] = (n + m) / m;
    }
}
