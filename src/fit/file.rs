//! The JSON fit file: one per (dataset group, model). Holds everything needed to use and judge a
//! fit later — formula, coefficients with significance, metrics, the dataset's SHA-256 and the
//! predicted vs measured sweet spots. Published reference fits use the same format.

use super::{intervals, FitResult, Loss};
use crate::analytic::{model_by_name, EnergyModel};
use crate::dataset::{Dataset, Group, RepeatSpread};
use crate::sweetspot;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitFile {
    /// Producer, e.g. `energy-fit 0.1.0`.
    pub tool: String,
    pub llm: String,
    /// Group key: llm and any `--by` columns.
    pub group: BTreeMap<String, String>,
    pub model: String,
    pub formula: String,
    /// `abs`, `rel`, or `published` for reference fits.
    pub loss: String,
    pub points: usize,
    pub coefficients: Vec<CoefEntry>,
    pub metrics: Metrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<RepeatSpread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRef>,
    pub sweet_spots: Vec<SweetSpotEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_to_worst_ratio: Option<f64>,
    /// For reference fits: where the numbers come from and what was published with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// The coefficients' covariance, from which every interval is derived (absent in reference
    /// fits and in files written before intervals existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<Uncertainty>,
    /// flops-mem-batch only: the LLM and run settings its concurrency c(n, m) comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::analytic::flops_mem_batch::BatchContext>,
    /// What is wrong with the fit (`fit::warnings`); empty exactly when nothing was found.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What a fit knows of its own uncertainty.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Uncertainty {
    /// How intervals are derived from the covariance (`delta`: the delta method, see
    /// `fit::intervals`).
    pub interval_method: String,
    /// How the covariance was estimated (classical under `rel`, HC3 under `abs`).
    pub covariance_method: String,
    /// Residual degrees of freedom (points − coefficients), for Student's t.
    pub dof: f64,
    /// Covariance of the coefficients, rows and columns in the order of `coefficients`.
    pub covariance: Vec<Vec<f64>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CoefEntry {
    pub name: String,
    pub value: f64,
    pub std_error: Option<f64>,
    pub t_value: Option<f64>,
    pub p_value: Option<f64>,
    pub stars: Option<String>,
    /// 95 % interval [lo, hi] (`fit::intervals::coefficients`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub mape_pct: Option<f64>,
    pub rmse_j: Option<f64>,
    pub r2: Option<f64>,
    pub aic: Option<f64>,
    pub bic: Option<f64>,
    pub cv_folds: Option<usize>,
    pub cv_mape_pct: Option<f64>,
    pub extrapolation_mape_pct: Option<f64>,
    /// The run setting of `fit --cv-by` and the MAPE of leaving each of its values out in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_by_mape_pct: Option<f64>,
    /// The same per left-out value, in numeric order: {"1": .., "10": .., "100": ..}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_by_mape_pct_by_value: Option<std::collections::BTreeMap<u64, f64>>,
    /// MAPE over the group's hold-out rows (`role` = `holdout`, never fitted); None without any.
    #[serde(default)]
    pub holdout_mape_pct: Option<f64>,
    /// Each hold-out row's error, in the file's row order: the MAPE alone does not say which
    /// point of a design the fit misses, nor whether it misses them all on the same side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdout_errors: Vec<HoldoutError>,
    /// In-sample MAPE under each loss, when both were fitted (`--both-losses`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mape_pct_by_loss: BTreeMap<String, f64>,
}

/// One hold-out row against the fit's prediction at its point.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HoldoutError {
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// Measured J per output token.
    pub energy_per_token_j: f64,
    pub predicted_energy_per_token_j: f64,
    /// (predicted − measured) / measured, in %: negative where the fit predicts low.
    pub error_pct: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DatasetRef {
    pub paths: Vec<String>,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweetSpotEntry {
    pub input_tokens: f64,
    pub predicted_output_tokens: Option<f64>,
    pub method: String,
    pub measured_output_tokens: Option<f64>,
    pub measured_tokens_per_j: Option<f64>,
    /// 95 % interval [lo, hi] of the predicted m* (`fit::intervals::sweet_spot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_output_tokens_ci95: Option<[f64; 2]>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Published {
    pub source: String,
    pub gpu: String,
    pub engine: String,
    /// In-sample MAPE of each model on the LLM's grid, as published (%).
    pub mape_pct_by_model: BTreeMap<String, f64>,
    pub sweet_spot_input_tokens: f64,
    pub sweet_spot_measured_output_tokens: f64,
    pub sweet_spot_estimated_output_tokens: f64,
}

impl FitFile {
    /// Build the file for one group's fit.
    pub fn from_fit(
        fit: &FitResult,
        model: &dyn EnergyModel,
        group: &Group,
        ds: &Dataset,
        cv_folds: Option<usize>,
    ) -> FitFile {
        let values = fit.values();
        let measured = sweetspot::measured_best(&group.measured());
        let (lo, hi) = output_range(group);
        let sweet_spots = measured
            .iter()
            .map(|&(n, m, eta)| {
                let p = sweetspot::predicted(model, &values, n, lo, hi);
                let ci = intervals::sweet_spot(model, &values, &fit.covariance, fit.dof, n);
                SweetSpotEntry {
                    predicted_output_tokens_ci95: ci.map(|i| [i.lo, i.hi]),
                    input_tokens: n,
                    predicted_output_tokens: p.output_tokens,
                    method: p.method,
                    measured_output_tokens: Some(m),
                    measured_tokens_per_j: Some(eta),
                }
            })
            .collect();
        FitFile {
            tool: format!("energy-fit {}", env!("CARGO_PKG_VERSION")),
            llm: group.llm().to_string(),
            group: group.key.iter().cloned().collect(),
            model: model.name().to_string(),
            formula: model.formula().to_string(),
            loss: fit.loss.name().to_string(),
            points: fit.points,
            coefficients: fit
                .coefficients
                .iter()
                .zip(intervals::coefficients(&values, &fit.covariance, fit.dof))
                .map(|(c, ci)| CoefEntry {
                    ci95: Some([ci.lo, ci.hi]),
                    name: c.name.clone(),
                    value: c.value,
                    std_error: Some(c.std_error),
                    t_value: Some(c.t_value),
                    p_value: Some(c.p_value),
                    stars: Some(c.stars.clone()),
                })
                .collect(),
            metrics: Metrics {
                mape_pct: Some(fit.mape_pct),
                rmse_j: Some(fit.rmse_j),
                r2: fit.r2.is_finite().then_some(fit.r2),
                aic: Some(fit.aic),
                bic: Some(fit.bic),
                cv_folds: cv_folds.filter(|_| fit.cv_mape_pct.is_some()),
                cv_mape_pct: fit.cv_mape_pct,
                extrapolation_mape_pct: fit.extrapolation_mape_pct,
                cv_by: None,
                cv_by_mape_pct: None,
                cv_by_mape_pct_by_value: None,
                holdout_mape_pct: (!group.holdouts.is_empty())
                    .then(|| super::stats::mape(model, &values, &group.holdouts)),
                holdout_errors: group
                    .holdouts
                    .iter()
                    .map(|o| {
                        let predicted = model.energy_per_token_at(&values, o);
                        HoldoutError {
                            input_tokens: o.input_tokens,
                            output_tokens: o.output_tokens,
                            energy_per_token_j: o.energy_per_token_j,
                            predicted_energy_per_token_j: predicted,
                            error_pct: 100.0 * (predicted - o.energy_per_token_j)
                                / o.energy_per_token_j,
                        }
                    })
                    .collect(),
                mape_pct_by_loss: BTreeMap::new(),
            },
            repeats: ds.repeat_spread(group).ok(),
            dataset: Some(DatasetRef {
                paths: ds
                    .sources
                    .iter()
                    .map(|s| s.path.display().to_string())
                    .collect(),
                sha256: ds.sha256(),
            }),
            sweet_spots,
            best_to_worst_ratio: sweetspot::best_to_worst_ratio(&group.measured()),
            published: None,
            uncertainty: Some(Uncertainty {
                interval_method: intervals::METHOD.into(),
                covariance_method: super::stats::covariance_method(fit.loss).into(),
                dof: fit.dof,
                covariance: fit
                    .covariance
                    .row_iter()
                    .map(|r| r.iter().copied().collect())
                    .collect(),
            }),
            batch: None,
            warnings: super::warnings::of(fit),
        }
    }

    /// The covariance and degrees of freedom, where the file has them and they match the
    /// coefficients in size.
    pub fn covariance(&self) -> Option<(nalgebra::DMatrix<f64>, f64)> {
        let u = self.uncertainty.as_ref()?;
        let k = self.coefficients.len();
        if u.covariance.len() != k || u.covariance.iter().any(|r| r.len() != k) {
            return None;
        }
        Some((
            nalgebra::DMatrix::from_fn(k, k, |i, j| u.covariance[i][j]),
            u.dof,
        ))
    }

    pub fn read(path: &Path) -> Result<FitFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read fit file '{}'", path.display()))?;
        if crate::zeroshot::file::is_calibration_file(path) {
            bail!(
                "{}: a calibration file (\"kind\": \"calibration\"), not a fit file: use it with `predict --llm NAME --calibration FILE`",
                path.display()
            );
        }
        let f: FitFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid fit file", path.display()))?;
        if let (Some(b), "flops-mem-batch") = (&f.batch, f.model.as_str()) {
            check_batch(b).with_context(|| format!("{}: field 'batch'", path.display()))?;
        }
        let model = f
            .energy_model()
            .with_context(|| format!("{}: field 'model'", path.display()))?;
        let names: Vec<&str> = f.coefficients.iter().map(|c| c.name.as_str()).collect();
        if names != model.coef_names() {
            bail!(
                "{}: model {} needs coefficients {:?}, file has {:?}",
                path.display(),
                f.model,
                model.coef_names(),
                names
            );
        }
        if f.uncertainty.is_some() && f.covariance().is_none() {
            bail!(
                "{}: field 'uncertainty.covariance' must be a {k} x {k} matrix for the {k} coefficients",
                path.display(),
                k = names.len()
            );
        }
        Ok(f)
    }

    /// The file's text: pretty JSON and a final newline.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Write the file atomically (see `fsutil`).
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, self.to_json()?.as_bytes())
    }

    /// The fitted model, bound to its run settings where it depends on them (flops-mem-batch).
    pub fn energy_model(&self) -> Result<Box<dyn EnergyModel>> {
        match (&self.batch, self.model.as_str()) {
            (Some(ctx), "flops-mem-batch") => Ok(Box::new(ctx.model()?)),
            (None, "flops-mem-batch") => anyhow::bail!(
                "fit file of {} (flops-mem-batch) carries no run settings (key batch), so its concurrency is unknown",
                self.llm
            ),
            _ => model_by_name(&self.model),
        }
    }

    pub fn values(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.value).collect()
    }

    /// The loss as an enum, where the file was fitted by us.
    pub fn loss_kind(&self) -> Option<Loss> {
        match self.loss.as_str() {
            "abs" => Some(Loss::Abs),
            "rel" => Some(Loss::Rel),
            _ => None,
        }
    }
}

/// Output-length range of a group's data (for numeric sweet spots).
pub fn output_range(group: &Group) -> (f64, f64) {
    let lo = group
        .obs
        .iter()
        .map(|o| o.output_tokens)
        .fold(f64::MAX, f64::min);
    let hi = group
        .obs
        .iter()
        .map(|o| o.output_tokens)
        .fold(f64::MIN, f64::max);
    (lo, hi)
}

/// File name of a group's fit: `<slug>.<model>.json` (see [`Group::file_stem`]).
pub fn file_name(group: &Group, model: &str) -> String {
    format!("{}.{model}.json", group.file_stem())
}

/// flops-mem-batch's binding as a fit file states it: every limit a count, the GPU memory a
/// positive size and the LLM one whose shape is known, each refused naming its key (the model
/// would otherwise simulate no batch and predict at one sequence in flight).
fn check_batch(b: &crate::analytic::flops_mem_batch::BatchContext) -> Result<()> {
    let s = &b.settings;
    for (key, v) in [
        ("requests", s.requests),
        ("max_batch_size", s.max_batch_size),
        ("max_num_tokens", s.max_num_tokens),
        ("dtype_bytes", s.dtype_bytes),
    ] {
        if v == 0 {
            bail!("'batch.settings.{key}' is 0; it must be at least 1");
        }
    }
    if !(s.gpu_memory_bytes.is_finite() && s.gpu_memory_bytes > 0.0) {
        bail!(
            "'batch.settings.gpu_memory_bytes' is {}; it must be a positive number of bytes",
            s.gpu_memory_bytes
        );
    }
    let shape = b.llm.strip_prefix("synthetic-").unwrap_or(&b.llm);
    if crate::llm::resolve_llm(shape).is_err() {
        bail!(
            "'batch.llm' is {:?}, neither a catalog LLM (energy-fit llms) nor a config.json path",
            b.llm
        );
    }
    Ok(())
}
