//! 95 % intervals of everything a fit predicts, by the delta method: a quantity q(c) of the
//! coefficients has variance ∇qᵀ Σ ∇q, with Σ the coefficients' covariance (`stats::covariance`:
//! classical under the relative loss, HC3 under the absolute one), and the interval is q ± t·se with
//! t the two-sided 97.5 % quantile of Student's t at the fit's residual degrees of freedom.
//!
//! The sweet spot m* = √((β·n² + δ·n + ζ)/ε) is a ratio, skewed when ε is uncertain, so its interval
//! is taken on log m* (whose gradient is ∇m*/m*) and mapped back: it is asymmetric and never
//! negative. Coverage is checked on synthetic data with known coefficients (tests/it/fit_intervals.rs).

use crate::analytic::EnergyModel;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// How the intervals are computed, as written into fit files and JSON.
pub const METHOD: &str = "delta";

/// A central estimate with its 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Half the interval's width relative to the value (%), e.g. 2.0 for "± 2 %".
    pub fn half_width_pct(&self) -> f64 {
        50.0 * (self.hi - self.lo) / self.value.abs()
    }

    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The interval of 1 / q (for tokens/J from energy per token); `None` unless q > 0 throughout.
    pub fn reciprocal(&self) -> Option<Interval> {
        (self.lo > 0.0).then(|| Interval {
            value: 1.0 / self.value,
            lo: 1.0 / self.hi,
            hi: 1.0 / self.lo,
        })
    }
}

/// Two-sided 95 % quantile of Student's t with `dof` degrees of freedom (the normal's 1.96 when
/// `dof` is infinite).
pub fn t95(dof: f64) -> f64 {
    if !dof.is_finite() {
        return 1.959_963_984_540_054;
    }
    StudentsT::new(0.0, 1.0, dof.max(1.0)).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// √(gᵀ Σ g): the delta method's standard error of a quantity with gradient `g`.
pub fn delta_se(grad: &[f64], cov: &DMatrix<f64>) -> f64 {
    let k = grad.len();
    let mut v = 0.0;
    for i in 0..k {
        for j in 0..k {
            v += grad[i] * cov[(i, j)] * grad[j];
        }
    }
    v.max(0.0).sqrt()
}

/// Energy per output token at (n, m) with its interval (the fitted surface's, not a new
/// measurement's: the noise of one measurement is not added).
pub fn energy_per_token(
    model: &dyn EnergyModel,
    coefs: &[f64],
    cov: &DMatrix<f64>,
    dof: f64,
    n: f64,
    m: f64,
) -> Interval {
    let mut g = vec![0.0; coefs.len()];
    model.gradient(coefs, n, m, &mut g);
    let value = model.energy_per_token(coefs, n, m);
    let half = t95(dof) * delta_se(&g, cov);
    Interval {
        value,
        lo: value - half,
        hi: value + half,
    }
}

/// m* at n and its gradient with respect to the coefficients, for models with a closed-form
/// sweet spot (central differences, relative step); `None` where m* is undefined.
pub fn sweet_spot_gradient(
    model: &dyn EnergyModel,
    coefs: &[f64],
    n: f64,
) -> Option<(f64, Vec<f64>)> {
    let m = model.closed_form_sweet_spot(coefs, n)?;
    let mut g = vec![0.0; coefs.len()];
    for (j, gj) in g.iter_mut().enumerate() {
        let h = 1e-6 * coefs[j].abs().max(f64::MIN_POSITIVE.sqrt());
        let (mut up, mut dn) = (coefs.to_vec(), coefs.to_vec());
        up[j] += h;
        dn[j] -= h;
        let (a, b) = (
            model.closed_form_sweet_spot(&up, n)?,
            model.closed_form_sweet_spot(&dn, n)?,
        );
        *gj = (a - b) / (2.0 * h);
    }
    Some((m, g))
}

/// m* at n with its interval (on log m*, see the module docs); `None` where m* is undefined.
pub fn sweet_spot(
    model: &dyn EnergyModel,
    coefs: &[f64],
    cov: &DMatrix<f64>,
    dof: f64,
    n: f64,
) -> Option<Interval> {
    let (m, g) = sweet_spot_gradient(model, coefs, n)?;
    Some(log_interval(m, &g, cov, dof))
}

/// m* at n with its interval for any model: the closed form's ([`sweet_spot`]) for the FLOP
/// models, else the numeric interior minimum over [lo, hi] (`sweetspot::predicted`). A numeric m*
/// is only as sharp as the model's surface is smooth in m (flops-mem-batch's c(n, m) steps at whole
/// tokens), so its gradient is a central difference over ± one standard error of each coefficient
/// rather than an infinitesimal step: the secant over the uncertainty being propagated. `None`
/// where m* is undefined at the estimate or at a step.
pub fn sweet_spot_over(
    model: &dyn EnergyModel,
    coefs: &[f64],
    cov: &DMatrix<f64>,
    dof: f64,
    n: f64,
    lo: f64,
    hi: f64,
) -> Option<Interval> {
    if matches!(model.name(), "flops" | "flops-mem") {
        return sweet_spot(model, coefs, cov, dof, n);
    }
    let at = |c: &[f64]| crate::sweetspot::predicted(model, c, n, lo, hi).output_tokens;
    let m = at(coefs)?;
    let mut g = vec![0.0; coefs.len()];
    for (j, gj) in g.iter_mut().enumerate() {
        let h = cov[(j, j)]
            .max(0.0)
            .sqrt()
            .max(1e-6 * coefs[j].abs())
            .max(f64::MIN_POSITIVE.sqrt());
        let (mut up, mut dn) = (coefs.to_vec(), coefs.to_vec());
        up[j] += h;
        dn[j] -= h;
        *gj = (at(&up)? - at(&dn)?) / (2.0 * h);
    }
    Some(log_interval(m, &g, cov, dof))
}

/// m* with its interval from m*'s gradient in the coefficients: the delta method on log m*
/// (positive bounds, symmetric in ratio).
fn log_interval(m: f64, g: &[f64], cov: &DMatrix<f64>, dof: f64) -> Interval {
    let f = (t95(dof) * delta_se(g, cov) / m).exp();
    Interval {
        value: m,
        lo: m / f,
        hi: m * f,
    }
}

/// Each coefficient with its interval, in the model's order.
pub fn coefficients(coefs: &[f64], cov: &DMatrix<f64>, dof: f64) -> Vec<Interval> {
    let t = t95(dof);
    coefs
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let half = t * cov[(i, i)].max(0.0).sqrt();
            Interval {
                value: c,
                lo: c - half,
                hi: c + half,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::FlopsMem;

    use crate::sweetspot::tests::LLAMA;

    #[test]
    fn t_quantile_matches_tables() {
        assert!((t95(10.0) - 2.228).abs() < 1e-3);
        assert!((t95(f64::INFINITY) - 1.960).abs() < 1e-3);
    }

    /// The numeric gradient of m* agrees with the closed-form derivative of √((βn² + δn + ζ)/ε).
    #[test]
    fn sweet_spot_gradient_is_analytic() {
        let n = 512.0;
        let (m, g) = sweet_spot_gradient(&FlopsMem, &LLAMA, n).unwrap();
        let eps = LLAMA[4];
        let want = [
            0.0,
            n * n / (2.0 * m * eps),
            0.0,
            n / (2.0 * m * eps),
            -m / (2.0 * eps),
            1.0 / (2.0 * m * eps),
        ];
        for (j, (a, b)) in g.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1e-9),
                "coef {j}: {a} vs {b}"
            );
        }
    }

    /// With a diagonal covariance the interval widths follow from the gradient by hand.
    #[test]
    fn energy_interval_by_hand() {
        let cov = DMatrix::from_diagonal(&nalgebra::DVector::from_iterator(
            6,
            LLAMA.iter().map(|c| (0.01 * c).powi(2)),
        ));
        let (n, m) = (256.0, 128.0);
        let i = energy_per_token(&FlopsMem, &LLAMA, &cov, f64::INFINITY, n, m);
        let basis = [1.0, n * n / m, n, n / m, m, 1.0 / m];
        let var: f64 = basis
            .iter()
            .zip(LLAMA)
            .map(|(b, c)| (b * 0.01 * c).powi(2))
            .sum();
        assert!((i.hi - i.value - 1.959964 * var.sqrt()).abs() < 1e-9 * i.value);
        let r = i.reciprocal().unwrap();
        assert!(r.lo < 1.0 / i.value && r.hi > 1.0 / i.value);
        let s = sweet_spot(&FlopsMem, &LLAMA, &cov, 30.0, 64.0).unwrap();
        assert!(s.lo < s.value && s.value < s.hi && s.lo > 0.0);
        assert!((s.value - 429.0).abs() < 1.0);
    }

    /// At a concurrency constant in m, flops-mem-batch's numeric m* and its interval are
    /// flops-mem's closed form (η/c only shifts the level); where c falls with m, m* moves shorter.
    #[test]
    fn numeric_sweet_spot_matches_the_closed_form_at_fixed_concurrency() {
        use crate::analytic::FlopsMemBatch;
        use std::sync::Arc;
        let mut coefs = LLAMA.to_vec();
        coefs.push(0.5);
        let cov = DMatrix::from_diagonal(&nalgebra::DVector::from_iterator(
            7,
            coefs.iter().map(|c| (0.01 * c).powi(2)),
        ));
        let fm_cov = cov.view((0, 0), (6, 6)).into_owned();
        let fixed = FlopsMemBatch::new(Arc::new(|_, _| 8.0));
        for n in [64.0, 512.0, 4096.0] {
            let want = sweet_spot(&FlopsMem, &LLAMA, &fm_cov, 30.0, n).unwrap();
            let got = sweet_spot_over(&fixed, &coefs, &cov, 30.0, n, 64.0, 4096.0).unwrap();
            assert!(
                (got.value - want.value).abs() < 1e-3 * want.value,
                "{got:?} {want:?}"
            );
            let (a, b) = (got.half_width_pct(), want.half_width_pct());
            assert!((a - b).abs() < 0.05 * b, "n {n}: ±{a} % vs ±{b} %");
        }
        // Fewer sequences in flight the longer the output: sharing per token worsens with m.
        let falling = FlopsMemBatch::new(Arc::new(|_, m| (4096.0 / m).max(1.0)));
        let got = sweet_spot_over(&falling, &coefs, &cov, 30.0, 512.0, 64.0, 4096.0).unwrap();
        let closed = FlopsMem.closed_form_sweet_spot(&LLAMA, 512.0).unwrap();
        assert!(got.value < closed, "{} vs {closed}", got.value);
        // A model without an interior minimum has none.
        let flat = crate::analytic::Constant;
        assert!(sweet_spot_over(&flat, &[1.0], &cov, 30.0, 512.0, 64.0, 4096.0).is_none());
    }
}
