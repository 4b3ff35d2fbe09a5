//! The FLOP-derived models of the SweetSpot paper.
//!
//! Summing a transformer's prefill (24·n·d² + 4·n²·d per layer) and its m decode steps
//! (24·d² + 4·d·(n + t)) gives energy terms in m, n², n·m, n and m² (`flops`); counting the
//! weights read once by prefill adds a constant ζ (`flops-mem`). Per output token:
//! e = α + β·n²/m + γ·n + δ·n/m + ε·m (+ ζ/m). Sweet spot: de/dm = 0 ⇒ m* = √((β·n² + δ·n + ζ)/ε).

use super::{linear_energy, EnergyModel};

/// E = α·m + β·n² + γ·n·m + δ·n + ε·m²
pub struct Flops;

/// E = α·m + β·n² + γ·n·m + δ·n + ε·m² + ζ
pub struct FlopsMem;

fn basis(n: f64, m: f64) -> [f64; 6] {
    [1.0, n * n / m, n, n / m, m, 1.0 / m]
}

/// m* = √((β·n² + δ·n + ζ)/ε); defined only for ε > 0 and a positive numerator.
pub fn sweet_spot(beta: f64, delta: f64, epsilon: f64, zeta: f64, n: f64) -> Option<f64> {
    let num = beta * n * n + delta * n + zeta;
    (epsilon > 0.0 && num > 0.0).then(|| (num / epsilon).sqrt())
}

impl EnergyModel for Flops {
    fn name(&self) -> &'static str {
        "flops"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["alpha", "beta", "gamma", "delta", "epsilon"]
    }
    fn formula(&self) -> &'static str {
        "E = alpha*m + beta*n^2 + gamma*n*m + delta*n + epsilon*m^2"
    }
    fn energy_per_token(&self, c: &[f64], n: f64, m: f64) -> f64 {
        linear_energy(c, &basis(n, m)[..5])
    }
    fn gradient(&self, _c: &[f64], n: f64, m: f64, out: &mut [f64]) {
        out.copy_from_slice(&basis(n, m)[..5]);
    }
    fn closed_form_sweet_spot(&self, c: &[f64], n: f64) -> Option<f64> {
        sweet_spot(c[1], c[3], c[4], 0.0, n)
    }
}

impl EnergyModel for FlopsMem {
    fn name(&self) -> &'static str {
        "flops-mem"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    }
    fn formula(&self) -> &'static str {
        "E = alpha*m + beta*n^2 + gamma*n*m + delta*n + epsilon*m^2 + zeta"
    }
    fn energy_per_token(&self, c: &[f64], n: f64, m: f64) -> f64 {
        linear_energy(c, &basis(n, m))
    }
    fn gradient(&self, _c: &[f64], n: f64, m: f64, out: &mut [f64]) {
        out.copy_from_slice(&basis(n, m));
    }
    fn closed_form_sweet_spot(&self, c: &[f64], n: f64) -> Option<f64> {
        sweet_spot(c[1], c[3], c[4], c[5], n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's Llama-3.2-1B fit gives m* ≈ 429 at n = 64 (Table 5).
    #[test]
    fn published_llama_sweet_spot() {
        let m = sweet_spot(1.079941e-07, 2.611042e-03, 3.852659e-06, 5.406443e-01, 64.0).unwrap();
        assert_eq!(m.round(), 429.0);
        assert!(sweet_spot(1e-7, 1e-3, -1e-6, 0.5, 64.0).is_none());
    }
}
