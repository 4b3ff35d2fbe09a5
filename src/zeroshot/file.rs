//! Calibration files: the zero-shot constants of one GPU and engine, with their covariance, the
//! setting they assume and the LLMs they come from. `"kind": "calibration"` tells them from fit
//! files, which may share a folder (`fits/calibration/`).

use super::calibrate::Constants;
use super::loo::Loo;
use super::model::{term_names, TERMS};
use super::Setting;
use anyhow::{bail, Context, Result};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `kind` of a calibration file.
pub const KIND: &str = "calibration";

/// Where `predict --llm` looks without `--calibration`.
pub const DEFAULT_PATH: &str = "fits/calibration/h100-reference.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConstantEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub std_error: f64,
}

/// Leave-one-LLM-out summary kept with the constants.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LooSummary {
    pub mean_mape_pct: f64,
    pub worst_mape_pct: f64,
    pub params_proportional_mean_mape_pct: f64,
    pub nearest_llm_mean_mape_pct: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CalibrationFile {
    pub kind: String,
    pub tool: String,
    pub gpu: String,
    pub engine: String,
    /// What the constants were fitted on (data files, or the published surfaces).
    pub source: String,
    pub setting: Setting,
    /// Input and output lengths over which a prediction is summarised as flops-mem.
    pub grid: Vec<usize>,
    pub llms: Vec<String>,
    pub points: usize,
    pub loss: String,
    pub dof: f64,
    pub mape_pct: f64,
    pub constants: Vec<ConstantEntry>,
    /// Covariance of the constants, in the order of `constants`.
    pub covariance: Vec<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_one_out: Option<LooSummary>,
}

impl CalibrationFile {
    pub fn new(
        c: &Constants,
        gpu: &str,
        engine: &str,
        source: &str,
        setting: Setting,
        grid: &[usize],
        loo: Option<&Loo>,
    ) -> CalibrationFile {
        CalibrationFile {
            kind: KIND.into(),
            tool: format!("energy-fit {}", env!("CARGO_PKG_VERSION")),
            gpu: gpu.into(),
            engine: engine.into(),
            source: source.into(),
            setting,
            grid: grid.to_vec(),
            llms: c.llms.clone(),
            points: c.points,
            loss: "rel".into(),
            dof: c.dof,
            mape_pct: c.mape_pct,
            constants: TERMS
                .iter()
                .zip(c.values.iter().zip(&c.std_errors))
                .map(|(t, (v, se))| ConstantEntry {
                    name: t.name.into(),
                    unit: t.unit.into(),
                    value: *v,
                    std_error: *se,
                })
                .collect(),
            covariance: c
                .covariance
                .row_iter()
                .map(|r| r.iter().copied().collect())
                .collect(),
            leave_one_out: loo.map(|l| LooSummary {
                mean_mape_pct: l.zero_shot.mean_mape_pct,
                worst_mape_pct: l.zero_shot.worst_mape_pct(),
                params_proportional_mean_mape_pct: l.params_proportional.mean_mape_pct,
                nearest_llm_mean_mape_pct: l.nearest_llm.mean_mape_pct,
            }),
        }
    }

    pub fn values(&self) -> Vec<f64> {
        self.constants.iter().map(|c| c.value).collect()
    }

    pub fn covariance(&self) -> DMatrix<f64> {
        let k = self.constants.len();
        DMatrix::from_fn(k, k, |i, j| self.covariance[i][j])
    }

    /// Read and check a calibration file; every error names the file and the field.
    pub fn read(path: &Path) -> Result<CalibrationFile> {
        let p = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read calibration file '{p}'"))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{p}: not valid JSON"))?;
        match v.get("kind").and_then(|k| k.as_str()) {
            Some(KIND) => {}
            Some(other) => {
                bail!("{p}: field 'kind' is \"{other}\", not \"{KIND}\": not a calibration file")
            }
            None => {
                bail!("{p}: no field 'kind' = \"{KIND}\": not a calibration file (a fit file?)")
            }
        }
        let f: CalibrationFile = serde_json::from_value(v)
            .with_context(|| format!("{p}: malformed calibration file"))?;
        let names: Vec<&str> = f.constants.iter().map(|c| c.name.as_str()).collect();
        if names != term_names() {
            bail!(
                "{p}: field 'constants' must hold {:?} in this order, file has {names:?}",
                term_names()
            );
        }
        for c in &f.constants {
            if !c.value.is_finite() || !c.std_error.is_finite() {
                bail!("{p}: field 'constants' entry '{}' is not finite", c.name);
            }
        }
        let k = names.len();
        if f.covariance.len() != k || f.covariance.iter().any(|r| r.len() != k) {
            bail!("{p}: field 'covariance' must be a {k} x {k} matrix");
        }
        if f.covariance.iter().flatten().any(|x| !x.is_finite()) {
            bail!("{p}: field 'covariance' holds a non-finite number");
        }
        if f.grid.len() < 3 || f.grid.contains(&0) {
            bail!("{p}: field 'grid' must hold at least 3 positive lengths");
        }
        let s = &f.setting;
        if s.requests == 0
            || s.max_batch_size == 0
            || s.max_num_tokens == 0
            || s.dtype_bytes == 0
            || s.gpu_memory_gib.is_nan()
            || s.gpu_memory_gib <= 0.0
        {
            bail!("{p}: field 'setting' needs positive requests, max_batch_size, max_num_tokens, gpu_memory_gib, dtype_bytes");
        }
        Ok(f)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create '{}'", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::fsutil::write_atomic(path, text.as_bytes())
    }
}

/// Whether `path` is a JSON file whose `kind` is "calibration" (so readers of fit files can skip
/// it). Unreadable or non-JSON files are not calibration files.
pub fn is_calibration_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(KIND))
}
