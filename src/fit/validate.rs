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

/// Leave-one-value-out MAPE over a run setting: over all rows, and per left-out value.
#[derive(Debug, Clone)]
pub struct CvBy {
    pub mape_pct: f64,
    /// Each value's MAPE, its rows predicted from the fit on the other values.
    pub by_value: std::collections::BTreeMap<u64, f64>,
}

/// Leave-one-value-out MAPE over a run setting (`fit --cv-by requests`): for each value of
/// `labels` (one per observation), fit on the rows of the other values and score the rows of
/// that one; the MAPE over all rows and per value (predicting 100 requests from 1, 10 and 1000
/// is one of them). `flag` names the setting in errors, which say why when the group holds a
/// single value.
pub fn cv_by_mape(
    model: &dyn EnergyModel,
    obs: &[Obs],
    labels: &[u64],
    loss: Loss,
    flag: &str,
    what: &str,
) -> Result<CvBy> {
    let values: std::collections::BTreeSet<u64> = labels.iter().copied().collect();
    if values.len() < 2 {
        let found = values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let example = match flag {
            "max_batch_size" => "measure --max-batch-size 64,1024",
            _ => "measure --requests 1,1000",
        };
        bail!(
            "{what}: --cv-by {flag} leaves one {flag} value out and fits on the others, but the \
             rows hold one {flag} value ({found}); measure at least two (e.g. {example})"
        );
    }
    let mut abs_pct_sum = 0.0;
    let mut by_value = std::collections::BTreeMap::new();
    for v in &values {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (o, l) in obs.iter().zip(labels) {
            if l == v {
                test.push(*o)
            } else {
                train.push(*o)
            }
        }
        let sol = solve(
            model,
            &train,
            loss,
            &format!("{what} ({flag} {v} left out)"),
        )?;
        let m = mape(model, &sol.coefs, &test);
        by_value.insert(*v, m);
        abs_pct_sum += m * test.len() as f64;
    }
    Ok(CvBy {
        mape_pct: abs_pct_sum / obs.len() as f64,
        by_value,
    })
}
