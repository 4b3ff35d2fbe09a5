//! The points a calibration is fitted to, one set per LLM: the measured rows of a dataset, or the
//! published flops-mem surfaces evaluated on the 7 × 7 grid, with the GPU, engine and run setting
//! they come from. `energy-fit calibrate` and the report's zero-shot section both load them here,
//! so the report's leave-one-out tables are the command's.

use super::calibrate::LlmPoints;
use super::{Setting, GRID};
use crate::dataset::{Dataset, Group, RunSettings};
use crate::fit::file::FitFile;
use crate::llm::resolve_llm;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What was loaded: per-LLM points, GPU, engine and a description of the source.
pub struct Loaded {
    pub data: Vec<LlmPoints>,
    pub gpu: String,
    pub engine: String,
    pub source: String,
    /// The run setting every measured row shares (the published one for the reference surfaces).
    pub setting: Setting,
}

impl Loaded {
    /// The published flops-mem surfaces (`*.flops-mem.json`) of `dir`, in file-name order, each
    /// evaluated on the 7 × 7 grid. Errors about the folder itself leave naming it to the caller
    /// (a flag or a fixed path).
    pub fn reference(dir: &Path) -> Result<Loaded> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .context("cannot list the folder")?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".flops-mem.json"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            bail!("no *.flops-mem.json reference fits");
        }
        let (mut data, mut gpus, mut engines) = (Vec::new(), Vec::new(), Vec::new());
        for p in &paths {
            let f = FitFile::read(p)?;
            let cfg =
                resolve_llm(&f.llm).with_context(|| format!("{}: field 'llm'", p.display()))?;
            let c = f.values();
            let points = GRID
                .iter()
                .flat_map(|&n| GRID.iter().map(move |&m| (n, m)))
                .map(|(n, m)| {
                    let b = super::model::flops_mem_basis(n as f64, m as f64);
                    (n, m, b.iter().zip(&c).map(|(x, k)| x * k).sum())
                })
                .collect();
            if let Some(pb) = &f.published {
                gpus.push(pb.gpu.clone());
                engines.push(pb.engine.clone());
            }
            data.push(LlmPoints { cfg, points });
        }
        Ok(Loaded {
            data,
            gpu: joined(gpus),
            engine: joined(engines),
            source: format!(
                "published flops-mem surfaces in {} on the 7 x 7 grid",
                dir.display()
            ),
            setting: Setting::default(),
        })
    }

    /// The fitted rows of `ds`, one set of points per LLM (every group of an LLM pooled).
    pub fn measured(ds: &Dataset) -> Result<Loaded> {
        // The GPU and engine are recorded where the file has them; a file of other tools may not.
        let by: Vec<String> = ["gpu", "engine"]
            .into_iter()
            .filter(|c| ds.df.column(c).is_ok())
            .map(String::from)
            .collect();
        let groups = ds.groups(&by)?;
        let setting = shared_setting(ds, &groups)?;
        let (mut by_llm, mut gpus, mut engines) = (BTreeMap::new(), Vec::new(), Vec::new());
        for g in &groups {
            let pts: &mut Vec<(usize, usize, f64)> = by_llm.entry(g.llm().to_string()).or_default();
            pts.extend(g.obs.iter().map(|o| {
                (
                    o.input_tokens as usize,
                    o.output_tokens as usize,
                    o.energy_per_token_j,
                )
            }));
            for (k, v) in &g.key {
                match k.as_str() {
                    "gpu" => gpus.push(v.clone()),
                    "engine" => engines.push(v.clone()),
                    _ => {}
                }
            }
        }
        let data = by_llm
            .into_iter()
            .map(|(llm, points)| {
                let cfg = resolve_llm(&llm)
                    .with_context(|| format!("column 'llm': no shape known for LLM '{llm}'"))?;
                Ok(LlmPoints { cfg, points })
            })
            .collect::<Result<Vec<_>>>()?;
        let files: Vec<String> = ds
            .sources
            .iter()
            .map(|s| s.path.display().to_string())
            .collect();
        Ok(Loaded {
            data,
            gpu: joined(gpus),
            engine: joined(engines),
            source: format!("measurements: {}", files.join(", ")),
            setting,
        })
    }
}

/// The run setting of every group: the constants take the concurrency of one setting (the
/// calibration file states it), so rows measured under several, within an LLM or between
/// LLMs, are refused naming the column and the values rather than pooled.
fn shared_setting(ds: &Dataset, groups: &[Group]) -> Result<Setting> {
    let mut seen: Vec<(String, RunSettings)> = Vec::new();
    for g in groups {
        seen.push((g.label(), ds.run_settings(g)?));
    }
    let Some((_, first)) = seen.first().cloned() else {
        bail!("no fitted rows to calibrate on");
    };
    for (label, s) in &seen {
        let values = [
            (
                "requests",
                first.requests.to_string(),
                s.requests.to_string(),
            ),
            (
                "max_batch_size",
                first.max_batch_size.to_string(),
                s.max_batch_size.to_string(),
            ),
            (
                "max_num_tokens",
                first.max_num_tokens.to_string(),
                s.max_num_tokens.to_string(),
            ),
            ("dtype", first.dtype.clone(), s.dtype.clone()),
        ];
        if let Some((col, a, b)) = values.iter().find(|v| v.1 != v.2) {
            bail!(
                "calibration takes rows of one run setting, but column '{col}' is {a} for {} and \
                 {b} for {label}; calibrate on the rows of one setting",
                seen[0].0
            );
        }
    }
    let dtype_bytes = crate::measure::plan::dtype_bytes(&first.dtype)
        .with_context(|| format!("column 'dtype': unknown dtype {:?}", first.dtype))?;
    Ok(Setting {
        requests: first.requests as usize,
        max_batch_size: first.max_batch_size as usize,
        max_num_tokens: first.max_num_tokens as usize,
        dtype_bytes,
        ..Setting::default()
    })
}

/// Distinct values, sorted, joined with "; ".
fn joined(mut v: Vec<String>) -> String {
    v.sort();
    v.dedup();
    if v.is_empty() {
        "unknown".into()
    } else {
        v.join("; ")
    }
}
