//! Recovery of known coefficients from SYNTHETIC grids (generated from known coefficients, with
//! and without 2 % noise) for every model and both losses, and the fitter's statistics checked
//! against an independent closed-form OLS/WLS computation.

use energy_fit::analytic::{all_models, model_by_name, EnergyModel};
use energy_fit::dataset::synthetic::{grid, GRID};
use energy_fit::dataset::Obs;
use energy_fit::fit::{fit_model, FitOptions, Loss};
use nalgebra::{DMatrix, DVector};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Generating coefficients per model: flops-mem is the published Llama-3.2-1B fit.
fn truth(name: &str) -> Vec<f64> {
    let llama = crate::common::LLAMA;
    match name {
        "b1" => vec![1.2e-2],
        "b2" => vec![6.0e-3, 3.0e-6],
        "b3" => vec![4.0e-3],
        "b4" => vec![2.6e-3, 5.0e-3, 7.0e-6],
        "flops" => llama[..5].to_vec(),
        "flops-mem" => llama.to_vec(),
        _ => unreachable!(),
    }
}

fn opts(loss: Loss) -> FitOptions {
    FitOptions {
        loss,
        cv_folds: Some(5),
        seed: 7,
    }
}

#[test]
fn exact_recovery_without_noise() {
    for model in all_models() {
        let t = truth(model.name());
        let obs = grid(model.as_ref(), &t, &GRID, &GRID, 0.0, 1);
        for loss in [Loss::Abs, Loss::Rel] {
            let fit = fit_model(model.as_ref(), &obs, &opts(loss)).unwrap();
            for (c, want) in fit.values().iter().zip(&t) {
                assert!(
                    (c - want).abs() <= 1e-6 * want.abs(),
                    "{} {loss:?}: {c} vs {want}",
                    model.name()
                );
            }
            assert!(
                fit.mape_pct < 1e-6,
                "{} {loss:?}: MAPE {}",
                model.name(),
                fit.mape_pct
            );
            assert!(fit.cv_mape_pct.unwrap() < 1e-6 && fit.extrapolation_mape_pct.unwrap() < 1e-6);
        }
    }
}

#[test]
fn recovery_with_two_percent_noise() {
    for model in all_models() {
        let t = truth(model.name());
        let obs = grid(model.as_ref(), &t, &GRID, &GRID, 0.02, 11);
        let clean = grid(model.as_ref(), &t, &GRID, &GRID, 0.0, 11);
        for loss in [Loss::Abs, Loss::Rel] {
            let fit = fit_model(model.as_ref(), &obs, &opts(loss)).unwrap();
            // Each coefficient within 4 standard errors of the truth where the noise matches the
            // loss's assumption: multiplicative noise is what `rel` (weighted LS) assumes; under it
            // `abs` residuals are heteroscedastic and its standard errors are not valid.
            if loss == Loss::Rel {
                within_4_se(model.as_ref(), &fit, &t, "multiplicative");
            }
            // The fitted surface is close to the noise-free one, and in-sample MAPE is what 2 %
            // Gaussian noise gives (E|z|·2 % ≈ 1.6 %).
            let surf = energy_fit::fit::stats::mape(model.as_ref(), &fit.values(), &clean);
            // `abs` leans on the few largest-e points, so it recovers the surface less tightly.
            let bound = if loss == Loss::Rel { 1.0 } else { 2.0 };
            assert!(
                surf < bound,
                "{} {loss:?}: surface error {surf} %",
                model.name()
            );
            assert!(
                (1.0..2.3).contains(&fit.mape_pct),
                "{} {loss:?}: MAPE {}",
                model.name(),
                fit.mape_pct
            );
            assert!(
                fit.cv_mape_pct.unwrap() > fit.mape_pct * 0.9,
                "CV should not beat in-sample by much"
            );
        }
    }
}

fn within_4_se(model: &dyn EnergyModel, fit: &energy_fit::fit::FitResult, t: &[f64], noise: &str) {
    for (c, want) in fit.coefficients.iter().zip(t) {
        assert!(
            (c.value - want).abs() <= 4.0 * c.std_error,
            "{} {:?} ({noise} noise) {}: {} ± {} vs {want}",
            model.name(),
            fit.loss,
            c.name,
            c.value,
            c.std_error
        );
    }
}

/// `abs` under the noise it assumes: additive, σ = 2 % of the mean energy per token.
#[test]
fn abs_loss_recovery_with_additive_noise() {
    use rand::SeedableRng;
    for model in all_models() {
        let t = truth(model.name());
        let clean = grid(model.as_ref(), &t, &GRID, &GRID, 0.0, 0);
        let sigma =
            0.02 * clean.iter().map(|o| o.energy_per_token_j).sum::<f64>() / clean.len() as f64;
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let obs: Vec<Obs> = clean
            .iter()
            .map(|o| Obs {
                energy_per_token_j: (o.energy_per_token_j
                    + sigma * energy_fit::dataset::synthetic::normal(&mut rng))
                .max(1e-9),
                ..*o
            })
            .collect();
        let fit = fit_model(model.as_ref(), &obs, &opts(Loss::Abs)).unwrap();
        within_4_se(model.as_ref(), &fit, &t, "additive");
    }
}

/// Independent weighted least squares: β = (XᵀWX)⁻¹XᵀWy, cov as the comment below says, W = 1 (abs) or
/// 1/e² (rel); X from the model's basis written out here by hand.
fn closed_form(name: &str, obs: &[Obs], loss: Loss) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let row = |n: f64, m: f64| -> Vec<f64> {
        match name {
            "b1" => vec![1.0],
            "b2" => vec![1.0, m],
            "b3" => vec![(n + m) / m],
            "b4" => vec![n / m, 1.0, n],
            "flops" => vec![1.0, n * n / m, n, n / m, m],
            _ => vec![1.0, n * n / m, n, n / m, m, 1.0 / m],
        }
    };
    let k = row(1.0, 1.0).len();
    let w = |o: &Obs| {
        if loss == Loss::Rel {
            1.0 / o.energy_per_token_j
        } else {
            1.0
        }
    };
    let x = DMatrix::from_fn(obs.len(), k, |i, j| {
        row(obs[i].input_tokens, obs[i].output_tokens)[j] * w(&obs[i])
    });
    let y = DVector::from_fn(obs.len(), |i, _| obs[i].energy_per_token_j * w(&obs[i]));
    let xtx_inv = (x.transpose() * &x).try_inverse().unwrap();
    let beta = &xtx_inv * x.transpose() * &y;
    let resid = &y - &x * &beta;
    let dof = (obs.len() - k) as f64;
    let sigma2 = resid.norm_squared() / dof;
    // Classical σ²(XᵀX)⁻¹ under rel; under abs the HC3 sandwich
    // (XᵀX)⁻¹ Xᵀ diag(rᵢ²/(1 − hᵢᵢ)²) X (XᵀX)⁻¹, hᵢᵢ the leverage.
    let cov = match loss {
        Loss::Rel => &xtx_inv * sigma2,
        Loss::Abs => {
            let hat = &x * &xtx_inv * x.transpose();
            let d = DMatrix::from_diagonal(&DVector::from_fn(obs.len(), |i, _| {
                (resid[i] / (1.0 - hat[(i, i)])).powi(2)
            }));
            &xtx_inv * x.transpose() * d * &x * &xtx_inv
        }
    };
    let se: Vec<f64> = (0..k).map(|j| cov[(j, j)].sqrt()).collect();
    let t = StudentsT::new(0.0, 1.0, dof).unwrap();
    let p: Vec<f64> = (0..k)
        .map(|j| 2.0 * (1.0 - t.cdf((beta[j] / se[j]).abs())))
        .collect();
    (beta.iter().copied().collect(), se, p)
}

#[test]
fn std_errors_and_p_values_match_closed_form() {
    for model in all_models() {
        let t = truth(model.name());
        // 4 % noise so that some p values are far from 0 and the comparison is not trivial.
        let obs = grid(model.as_ref(), &t, &GRID, &GRID, 0.04, 3);
        for loss in [Loss::Abs, Loss::Rel] {
            let fit = fit_model(
                model.as_ref(),
                &obs,
                &FitOptions {
                    loss,
                    cv_folds: None,
                    seed: 0,
                },
            )
            .unwrap();
            let (beta, se, p) = closed_form(model.name(), &obs, loss);
            for (j, c) in fit.coefficients.iter().enumerate() {
                let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
                assert!(
                    rel(c.value, beta[j]) < 1e-6,
                    "{} {loss:?} {}: value {} vs {}",
                    model.name(),
                    c.name,
                    c.value,
                    beta[j]
                );
                assert!(
                    rel(c.std_error, se[j]) < 1e-6,
                    "{} {loss:?} {}: se {} vs {}",
                    model.name(),
                    c.name,
                    c.std_error,
                    se[j]
                );
                // p values below ~1e-10 lose relative precision in 1 − cdf; compare those absolutely.
                assert!(
                    rel(c.p_value, p[j]) < 1e-6 || (c.p_value - p[j]).abs() < 1e-12,
                    "{} {loss:?} {}: p {} vs {}",
                    model.name(),
                    c.name,
                    c.p_value,
                    p[j]
                );
            }
        }
    }
}

#[test]
fn degenerate_inputs_are_clear_errors() {
    let fm = model_by_name("flops-mem").unwrap();
    let t = truth("flops-mem");
    // Too few points: 6 coefficients need 7.
    let few = grid(
        fm.as_ref(),
        &t,
        &[64.0, 128.0],
        &[64.0, 128.0, 256.0],
        0.0,
        1,
    );
    let err = fit_model(fm.as_ref(), &few, &FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs at least 7 points, got 6"), "{err}");
    // One output length only: b2's c0 and c1·m are collinear.
    let b2 = model_by_name("b2").unwrap();
    let flat = grid(b2.as_ref(), &truth("b2"), &GRID, &[256.0], 0.0, 1);
    let err = fit_model(b2.as_ref(), &flat, &FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("singular") && err.contains("b2"), "{err}");
}

#[test]
fn cross_validation_is_seeded_and_extrapolation_needs_long_points() {
    let fm = model_by_name("flops-mem").unwrap();
    let obs = grid(fm.as_ref(), &truth("flops-mem"), &GRID, &GRID, 0.02, 5);
    let a = fit_model(
        fm.as_ref(),
        &obs,
        &FitOptions {
            loss: Loss::Rel,
            cv_folds: Some(5),
            seed: 1,
        },
    )
    .unwrap();
    let b = fit_model(
        fm.as_ref(),
        &obs,
        &FitOptions {
            loss: Loss::Rel,
            cv_folds: Some(5),
            seed: 1,
        },
    )
    .unwrap();
    let c = fit_model(
        fm.as_ref(),
        &obs,
        &FitOptions {
            loss: Loss::Rel,
            cv_folds: Some(5),
            seed: 2,
        },
    )
    .unwrap();
    assert_eq!(a.cv_mape_pct, b.cv_mape_pct);
    assert_ne!(a.cv_mape_pct, c.cv_mape_pct);
    let short: Vec<Obs> = obs
        .iter()
        .copied()
        .filter(|o| o.input_tokens <= 1024.0 && o.output_tokens <= 1024.0)
        .collect();
    let s = fit_model(fm.as_ref(), &short, &FitOptions::default()).unwrap();
    assert!(s.extrapolation_mape_pct.is_none() && s.extrapolation_note.unwrap().contains("1024"));
}

#[test]
fn gradients_are_what_the_fitter_uses() {
    // A model evaluated at the fitted coefficients reproduces the fitter's MAPE.
    let m: Box<dyn EnergyModel> = model_by_name("b4").unwrap();
    let obs = grid(m.as_ref(), &truth("b4"), &GRID, &GRID, 0.02, 9);
    let fit = fit_model(m.as_ref(), &obs, &FitOptions::default()).unwrap();
    let again = energy_fit::fit::stats::mape(m.as_ref(), &fit.values(), &obs);
    assert!((again - fit.mape_pct).abs() < 1e-12);
}
