//! What a fit file's covariance says where the figures need it: the tokens/J band along a fitted
//! curve, m*'s interval, and the relative half-width of e at a grid point (all 95 %, delta
//! method, `fit::intervals`). A fit without covariance (a published reference fit, or a file
//! written before intervals existed) gives none of these.

use crate::analytic::{model_by_name, EnergyModel};
use crate::fit::file::FitFile;
use crate::fit::intervals::{self, Interval};
use nalgebra::DMatrix;

/// A fit with the covariance of its coefficients.
pub struct Uncertain {
    model: Box<dyn EnergyModel>,
    coefs: Vec<f64>,
    cov: DMatrix<f64>,
    dof: f64,
}

impl Uncertain {
    /// `None` when the file has no covariance or names an unknown model.
    pub fn of(f: &FitFile) -> Option<Uncertain> {
        let (cov, dof) = f.covariance()?;
        Some(Uncertain {
            model: model_by_name(&f.model).ok()?,
            coefs: f.values(),
            cov,
            dof,
        })
    }

    /// e (J per output token) at (n, m) with its interval.
    pub fn energy(&self, n: f64, m: f64) -> Interval {
        intervals::energy_per_token(self.model.as_ref(), &self.coefs, &self.cov, self.dof, n, m)
    }

    /// Relative 95 % half-width of e at (n, m), in %; `None` where it is not finite.
    pub fn half_width_pct(&self, n: f64, m: f64) -> Option<f64> {
        Some(self.energy(n, m).half_width_pct()).filter(|v| v.is_finite() && *v >= 0.0)
    }

    /// The tokens/J band along `ms` at input length n, as a polygon outline (upper edge left to
    /// right, lower edge back). Where the interval of e reaches zero, the upper edge is infinite
    /// (the figure cuts it at its edge).
    pub fn band(&self, n: f64, ms: &[f64]) -> Vec<(f64, f64)> {
        let edges: Vec<(f64, f64, f64)> = ms
            .iter()
            .filter_map(|&m| {
                let e = self.energy(n, m);
                let upper = e.reciprocal().map_or(f64::INFINITY, |r| r.hi);
                (e.hi > 0.0 && e.hi.is_finite()).then_some((m, upper, 1.0 / e.hi))
            })
            .collect();
        let mut outline: Vec<(f64, f64)> = edges.iter().map(|&(m, hi, _)| (m, hi)).collect();
        outline.extend(edges.iter().rev().map(|&(m, _, lo)| (m, lo)));
        outline
    }

    /// m* at n with its interval; `None` where m* is undefined.
    pub fn sweet_spot(&self, n: f64) -> Option<Interval> {
        intervals::sweet_spot(self.model.as_ref(), &self.coefs, &self.cov, self.dof, n)
            .filter(|i| i.lo.is_finite() && i.hi.is_finite())
    }
}
