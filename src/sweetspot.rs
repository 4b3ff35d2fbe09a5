//! Sweet spots: the output length at which an input length is cheapest per token.
//!
//! Three views: the closed form m* = √((β·n² + δ·n + ζ)/ε) of the FLOP models, a numeric minimum
//! of e over an output range that works for any model, and the measured best output length of
//! each input length. Plus the best-to-worst efficiency ratio of a grid.

use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::analytic::flops::sweet_spot as closed_form;

/// A predicted sweet spot and how it was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    /// `None`: e has no interior minimum over the range (ε ≤ 0, or monotone in m).
    pub output_tokens: Option<f64>,
    /// `closed-form` or `numeric`.
    pub method: String,
}

/// Where e(n, ·) is lowest over [lo, hi] (log-spaced scan, then golden-section refinement).
/// Returns the minimiser and whether it lies strictly inside the range.
pub fn numeric_best_output(
    model: &dyn EnergyModel,
    coefs: &[f64],
    n: f64,
    lo: f64,
    hi: f64,
) -> (f64, bool) {
    let e = |m: f64| model.energy_per_token(coefs, n, m);
    let (llo, lhi) = (lo.ln(), hi.ln());
    const STEPS: usize = 256;
    let at = |i: usize| (llo + (lhi - llo) * i as f64 / STEPS as f64).exp();
    let best = (0..=STEPS)
        .min_by(|&a, &b| e(at(a)).total_cmp(&e(at(b))))
        .unwrap_or(0);
    if best == 0 || best == STEPS {
        return (at(best), false);
    }
    // Golden section in log m between the scan neighbours.
    let (mut a, mut b) = (at(best - 1).ln(), at(best + 1).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..80 {
        let (x1, x2) = (b - g * (b - a), a + g * (b - a));
        if e(x1.exp()) < e(x2.exp()) {
            b = x2;
        } else {
            a = x1;
        }
    }
    (((a + b) / 2.0).exp(), true)
}

/// The model's sweet spot at n: closed form where it has one, else the numeric interior minimum
/// over [lo, hi].
pub fn predicted(model: &dyn EnergyModel, coefs: &[f64], n: f64, lo: f64, hi: f64) -> Predicted {
    if matches!(model.name(), "flops" | "flops-mem") {
        return Predicted {
            output_tokens: model.closed_form_sweet_spot(coefs, n),
            method: "closed-form".into(),
        };
    }
    let (m, interior) = numeric_best_output(model, coefs, n, lo, hi);
    Predicted {
        output_tokens: interior.then_some(m),
        method: "numeric".into(),
    }
}

/// Mean tokens/J of every grid point: (n, m) → η.
fn point_efficiency(obs: &[Obs]) -> BTreeMap<(u64, u64), f64> {
    let mut sums: BTreeMap<(u64, u64), (f64, usize)> = BTreeMap::new();
    for o in obs {
        let s = sums
            .entry((o.input_tokens as u64, o.output_tokens as u64))
            .or_default();
        s.0 += o.energy_per_token_j;
        s.1 += 1;
    }
    sums.into_iter()
        .map(|(k, (sum, cnt))| (k, cnt as f64 / sum))
        .collect()
}

/// For each input length, the measured output length with the highest mean tokens/J:
/// (n, m, tokens_per_j), sorted by n.
pub fn measured_best(obs: &[Obs]) -> Vec<(f64, f64, f64)> {
    let mut best: BTreeMap<u64, (u64, f64)> = BTreeMap::new();
    for ((n, m), eta) in point_efficiency(obs) {
        let b = best.entry(n).or_insert((m, eta));
        if eta > b.1 {
            *b = (m, eta);
        }
    }
    best.into_iter()
        .map(|(n, (m, eta))| (n as f64, m as f64, eta))
        .collect()
}

/// Best over worst mean tokens/J across the grid points; `None` with fewer than two points.
pub fn best_to_worst_ratio(obs: &[Obs]) -> Option<f64> {
    let eff = point_efficiency(obs);
    if eff.len() < 2 {
        return None;
    }
    let max = eff.values().cloned().fold(f64::MIN, f64::max);
    let min = eff.values().cloned().fold(f64::MAX, f64::min);
    Some(max / min)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analytic::{FlopsMem, OutputOnly};

    /// Published Llama-3.2-1B flops-mem coefficients (TensorRT-LLM on an H100), for tests.
    pub(crate) const LLAMA: [f64; 6] = [
        5.005153e-03,
        1.079941e-07,
        6.825240e-06,
        2.611042e-03,
        3.852659e-06,
        5.406443e-01,
    ];

    #[test]
    fn numeric_minimum_agrees_with_closed_form() {
        for n in [64.0, 512.0, 4096.0] {
            let cf = FlopsMem.closed_form_sweet_spot(&LLAMA, n).unwrap();
            let (m, interior) = numeric_best_output(&FlopsMem, &LLAMA, n, 1.0, 1e6);
            assert!(interior);
            assert!(
                (m - cf).abs() / cf < 1e-6,
                "n={n}: numeric {m} vs closed {cf}"
            );
        }
    }

    #[test]
    fn monotone_model_has_no_interior_minimum() {
        let p = predicted(&OutputOnly, &[1e-3, 1e-6], 64.0, 64.0, 4096.0);
        assert_eq!(p.output_tokens, None);
        assert_eq!(p.method, "numeric");
    }

    #[test]
    fn measured_best_and_ratio() {
        let o = |n: f64, m: f64, e: f64| Obs {
            input_tokens: n,
            output_tokens: m,
            energy_per_token_j: e,
            concurrency: None,
        };
        let obs = [
            o(64., 64., 0.02),
            o(64., 128., 0.01),
            o(64., 128., 0.012),
            o(128., 64., 0.04),
            o(128., 128., 0.05),
        ];
        let best = measured_best(&obs);
        assert_eq!(best, vec![(64.0, 128.0, 1.0 / 0.011), (128.0, 64.0, 25.0)]);
        assert!((best_to_worst_ratio(&obs).unwrap() - (1.0 / 0.011) / 20.0).abs() < 1e-9);
    }
}
