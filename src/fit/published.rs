//! Our flops-mem fits beside the published ones (`fits/reference/`, TensorRT-LLM on an H100): per
//! LLM the MAPEs, the sweet spot at the published input length with its interval against the
//! published estimate and measured best, and how many tokens/J our measured points deliver
//! against the published surface at the same (n, m).

use super::file::FitFile;
use super::table::Table;
use crate::dataset::Obs;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// Where the published fits ship.
pub const REFERENCE_DIR: &str = "fits/reference";

/// One LLM we measured: its flops-mem fit file and every measured point (fitted and hold-out).
pub struct Ours<'a> {
    pub llm: &'a str,
    pub fit: &'a FitFile,
    pub measured: Vec<Obs>,
}

/// One row of the comparison (an LLM measured, published, or both).
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub llm: String,
    pub mape_pct: Option<f64>,
    pub cv_mape_pct: Option<f64>,
    pub holdout_mape_pct: Option<f64>,
    pub published_mape_pct: Option<f64>,
    /// The input length of the published sweet spot (64 in the study).
    pub sweet_spot_input_tokens: Option<f64>,
    pub sweet_spot_output_tokens: Option<f64>,
    pub sweet_spot_output_tokens_ci95: Option<[f64; 2]>,
    pub published_estimated_output_tokens: Option<f64>,
    pub published_measured_output_tokens: Option<f64>,
    /// Our measured tokens/J over the published surface's at the same points: min and median.
    pub tokens_per_j_ratio_min: Option<f64>,
    pub tokens_per_j_ratio_median: Option<f64>,
    pub points: usize,
}

/// The published flops-mem fits in `dir` (files `*.flops-mem.json` with a `published` block), in
/// the study's order (by size, as its tables list them: the order of `sweetspot-table5.csv`
/// there), the rest by name.
pub fn read_references(dir: &Path) -> Result<Vec<FitFile>> {
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the published fits in '{}'", dir.display()))?;
    let mut paths: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".flops-mem.json"))
        })
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let f = FitFile::read(&p)?;
        if f.published.is_some() {
            out.push(f);
        }
    }
    let order: Vec<String> = std::fs::read_to_string(dir.join("sweetspot-table5.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect();
    out.sort_by_key(|f| order.iter().position(|l| *l == f.llm).unwrap_or(usize::MAX));
    Ok(out)
}

/// One row per LLM that we measured or that was published, ours first in the published order.
pub fn compare(ours: &[Ours], published: &[FitFile]) -> Vec<Comparison> {
    let mut llms: Vec<&str> = published.iter().map(|f| f.llm.as_str()).collect();
    for o in ours {
        if !llms.contains(&o.llm) {
            llms.push(o.llm);
        }
    }
    llms.into_iter()
        .map(|llm| {
            let o = ours.iter().find(|o| o.llm == llm);
            let r = published.iter().find(|f| f.llm == llm);
            let p = r.and_then(|r| r.published.as_ref());
            let n0 = p.map(|p| p.sweet_spot_input_tokens);
            let spot = o
                .zip(n0)
                .and_then(|(o, n)| o.fit.sweet_spots.iter().find(|s| s.input_tokens == n));
            let (lo, median) = o
                .zip(r)
                .map_or((None, None), |(o, r)| ratios(&o.measured, r));
            Comparison {
                llm: llm.to_string(),
                mape_pct: o.and_then(|o| o.fit.metrics.mape_pct),
                cv_mape_pct: o.and_then(|o| o.fit.metrics.cv_mape_pct),
                holdout_mape_pct: o.and_then(|o| o.fit.metrics.holdout_mape_pct),
                published_mape_pct: p.and_then(|p| p.mape_pct_by_model.get("flops-mem").copied()),
                sweet_spot_input_tokens: n0,
                sweet_spot_output_tokens: spot.and_then(|s| s.predicted_output_tokens),
                sweet_spot_output_tokens_ci95: spot.and_then(|s| s.predicted_output_tokens_ci95),
                published_estimated_output_tokens: p.map(|p| p.sweet_spot_estimated_output_tokens),
                published_measured_output_tokens: p.map(|p| p.sweet_spot_measured_output_tokens),
                tokens_per_j_ratio_min: lo,
                tokens_per_j_ratio_median: median,
                points: o.map_or(0, |o| o.measured.len()),
            }
        })
        .collect()
}

/// Min and median over `measured` of (our tokens/J) / (the published surface's tokens/J).
fn ratios(measured: &[Obs], reference: &FitFile) -> (Option<f64>, Option<f64>) {
    let Ok(model) = reference.energy_model() else {
        return (None, None);
    };
    let coefs = reference.values();
    let r: Vec<f64> = measured
        .iter()
        .map(|o| {
            model.energy_per_token(&coefs, o.input_tokens, o.output_tokens) / o.energy_per_token_j
        })
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    super::stats::min_median_max(r).map_or((None, None), |(lo, median, _)| (Some(lo), Some(median)))
}

/// The comparison as a table, with the mean over the LLMs measured.
pub fn table(rows: &[Comparison]) -> Table {
    let mut t = Table::new(&[
        "LLM",
        "rows",
        "MAPE",
        "CV",
        "hold-out",
        "published",
        "m* (95 % interval)",
        "published m* est. / best",
        "tokens/J ÷ published: min",
        "median",
    ]);
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}×"));
    for r in rows {
        let spot = match (r.sweet_spot_input_tokens, r.sweet_spot_output_tokens) {
            (Some(n), Some(m)) => match r.sweet_spot_output_tokens_ci95 {
                Some([lo, hi]) => format!("{m:.0} [{lo:.0}, {hi:.0}] at n={n}"),
                None => format!("{m:.0} at n={n}"),
            },
            _ => "-".into(),
        };
        let published = match (
            r.published_estimated_output_tokens,
            r.published_measured_output_tokens,
        ) {
            (Some(e), Some(b)) => format!("{e:.0} / {b:.0}"),
            _ => "-".into(),
        };
        t.push(vec![
            r.llm.clone(),
            r.points.to_string(),
            pct(r.mape_pct),
            pct(r.cv_mape_pct),
            pct(r.holdout_mape_pct),
            pct(r.published_mape_pct),
            spot,
            published,
            x(r.tokens_per_j_ratio_min),
            x(r.tokens_per_j_ratio_median),
        ]);
    }
    let measured: Vec<&Comparison> = rows.iter().filter(|r| r.mape_pct.is_some()).collect();
    let mean = |f: &dyn Fn(&Comparison) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = measured.iter().filter_map(|r| f(r)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    if !measured.is_empty() {
        t.push(vec![
            format!("mean of the {} measured", measured.len()),
            String::new(),
            pct(mean(&|r| r.mape_pct)),
            pct(mean(&|r| r.cv_mape_pct)),
            pct(mean(&|r| r.holdout_mape_pct)),
            pct(mean(&|r| r.published_mape_pct)),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A surface against itself is 1×; twice its energy is 0.5×; the median of an even count is
    /// the mean of the middle two.
    #[test]
    fn ratios_compare_tokens_per_joule() {
        let r = FitFile::read(Path::new("fits/reference/llama-3.2-1b.flops-mem.json")).unwrap();
        let (model, c) = (r.energy_model().unwrap(), r.values());
        let at = |n: f64, m: f64, k: f64| Obs {
            input_tokens: n,
            output_tokens: m,
            energy_per_token_j: k * model.energy_per_token(&c, n, m),
            concurrency: None,
        };
        let (lo, med) = ratios(&[at(64.0, 64.0, 1.0), at(512.0, 128.0, 2.0)], &r);
        assert!((lo.unwrap() - 0.5).abs() < 1e-12);
        assert!((med.unwrap() - 0.75).abs() < 1e-12);
        let rows = compare(&[], &read_references(Path::new(REFERENCE_DIR)).unwrap());
        assert_eq!(rows.len(), 13);
        assert!(rows
            .iter()
            .all(|r| r.mape_pct.is_none() && r.published_mape_pct.is_some()));
    }
}
