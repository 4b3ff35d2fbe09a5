//! Validation beyond the in-sample error: seeded k-fold cross-validated MAPE and an extrapolation
//! score (fit on n, m ≤ 1024, test on the longer rest of the grid).

use super::problem::Loss;
use super::solve::solve;
use super::stats::mape;
use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Largest input and output length of the extrapolation split's training part.
pub const EXTRAPOLATION_LIMIT: f64 = 1024.0;

/// MAPE over all held-out points of a seeded k-fold split (each point held out once).
pub fn cv_mape(
    model: &dyn EnergyModel,
    obs: &[Obs],
    loss: Loss,
    folds: usize,
    seed: u64,
    what: &str,
) -> Result<f64> {
    if folds < 2 {
        bail!("--cv {folds}: need at least 2 folds (or 0 to skip cross-validation)");
    }
    if folds > obs.len() {
        bail!(
            "{what}: --cv {folds} needs at least {folds} points, got {}",
            obs.len()
        );
    }
    let mut idx: Vec<usize> = (0..obs.len()).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut abs_pct_sum = 0.0;
    for f in 0..folds {
        let in_test = |pos: usize| pos % folds == f;
        let train: Vec<Obs> = idx
            .iter()
            .enumerate()
            .filter(|(pos, _)| !in_test(*pos))
            .map(|(_, &i)| obs[i])
            .collect();
        let test: Vec<Obs> = idx
            .iter()
            .enumerate()
            .filter(|(pos, _)| in_test(*pos))
            .map(|(_, &i)| obs[i])
            .collect();
        let sol = solve(
            model,
            &train,
            loss,
            &format!("{what} (fold {} of {folds})", f + 1),
        )?;
        abs_pct_sum += mape(model, &sol.coefs, &test) * test.len() as f64;
    }
    Ok(abs_pct_sum / obs.len() as f64)
}

/// MAPE on points with n > 1024 or m > 1024 of a fit on the others.
pub fn extrapolation_mape(
    model: &dyn EnergyModel,
    obs: &[Obs],
    loss: Loss,
    what: &str,
) -> Result<f64> {
    let inside =
        |o: &Obs| o.input_tokens <= EXTRAPOLATION_LIMIT && o.output_tokens <= EXTRAPOLATION_LIMIT;
    let (train, test): (Vec<Obs>, Vec<Obs>) = obs.iter().partition(|o| inside(o));
    if test.is_empty() {
        bail!("{what}: no point beyond n, m ≤ 1024 to extrapolate to");
    }
    let sol = solve(
        model,
        &train,
        loss,
        &format!("{what} (extrapolation split, n, m ≤ 1024)"),
    )?;
    Ok(mape(model, &sol.coefs, &test))
}
