//! What is wrong with a fit that nonetheless converged: statistics that are not finite (one
//! absurd value in the data can make RMSE infinite and R² NaN) and a sweet-spot coefficient that
//! is not significantly different from zero (then m* = √(…/ε) is computed from noise). The list
//! is stored in the fit file (`"warnings"`), shown under the fit table and repeated by `predict`,
//! so such a fit is never taken for a result without a word.

use super::FitResult;

/// Significance level below which a coefficient counts as different from zero.
pub const ALPHA: f64 = 0.05;

/// The coefficient whose sign and size decide the sweet spot: ε of the FLOP models
/// (m* = √((β·n² + δ·n + ζ)/ε)); other models have no closed-form sweet spot.
fn sweet_spot_coefficient(model: &str) -> Option<usize> {
    matches!(model, "flops" | "flops-mem").then_some(4)
}

/// Every problem of `fit`, one sentence each; empty exactly when none was found.
pub fn of(fit: &FitResult) -> Vec<String> {
    let mut w = Vec::new();
    let stats = [
        ("MAPE", fit.mape_pct),
        ("RMSE", fit.rmse_j),
        ("R²", fit.r2),
        ("AIC", fit.aic),
        ("BIC", fit.bic),
    ];
    let bad: Vec<String> = stats
        .iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    if !bad.is_empty() {
        w.push(format!(
            "statistics are not finite ({}): the data hold values far outside the model's range",
            bad.join(", ")
        ));
    }
    let bad: Vec<&str> = fit
        .coefficients
        .iter()
        .filter(|c| {
            ![c.value, c.std_error, c.t_value, c.p_value]
                .iter()
                .all(|v| v.is_finite())
        })
        .map(|c| c.name.as_str())
        .collect();
    if !bad.is_empty() {
        w.push(format!(
            "coefficient(s) {} have no finite standard error or p value",
            bad.join(", ")
        ));
    }
    if let Some(c) = sweet_spot_coefficient(&fit.model).and_then(|i| fit.coefficients.get(i)) {
        // Written so that a NaN p value also counts as not significant.
        if c.p_value.partial_cmp(&ALPHA) != Some(std::cmp::Ordering::Less) {
            w.push(format!(
                "sweet-spot coefficient {} = {:.3e} is not significant (p = {:.3}): the sweet spots \
                 are computed from noise",
                c.name, c.value, c.p_value
            ));
        }
    }
    w
}
