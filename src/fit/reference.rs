//! The published TensorRT-LLM fits (SweetSpot paper, Table 5 and Table 3) as fit files, so that
//! `predict` and `report` can use "what TensorRT-LLM on an H100 spends" like any fit of ours.

use super::file::{CoefEntry, FitFile, Metrics, Published, SweetSpotEntry};
use crate::analytic::{EnergyModel, FlopsMem};
use crate::dataset::read_table;
use anyhow::{bail, Context, Result};
use polars::prelude::DataType;
use std::collections::BTreeMap;
use std::path::Path;

pub const SOURCE: &str = "Pizzini Cavagna et al. 2026, Determining Energy Efficiency Sweet Spots in Production LLM Inference, Tables 3 and 5";

/// Read `sweetspot-table5.csv` into one flops-mem fit file per LLM.
pub fn reference_fits(csv: &Path) -> Result<Vec<FitFile>> {
    let df = read_table(csv)?;
    let text = |c: &str| -> Result<Vec<String>> {
        let col = df
            .column(c)
            .with_context(|| format!("{}: missing column '{c}'", csv.display()))?
            .cast(&DataType::String)?;
        Ok(col
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect())
    };
    let num = |c: &str| -> Result<Vec<f64>> {
        let col = df
            .column(c)
            .with_context(|| format!("{}: missing column '{c}'", csv.display()))?
            .cast(&DataType::Float64)?;
        col.f64()?
            .iter()
            .enumerate()
            .map(|(r, v)| {
                v.with_context(|| {
                    format!(
                        "{}, row {}, column '{c}': not a number",
                        csv.display(),
                        r + 1
                    )
                })
            })
            .collect()
    };
    let (llm, gpu, engine) = (text("llm")?, text("gpu")?, text("engine")?);
    let model = FlopsMem;
    let coefs: Vec<Vec<f64>> = model
        .coef_names()
        .iter()
        .map(|c| num(c))
        .collect::<Result<_>>()?;
    let (sn, sm, se) = (
        num("sweet_spot_input_tokens")?,
        num("sweet_spot_measured_output_tokens")?,
        num("sweet_spot_estimated_output_tokens")?,
    );
    let mape_cols = [
        ("b1", "mape_b1_pct"),
        ("b2", "mape_b2_pct"),
        ("b3", "mape_b3_pct"),
        ("b4", "mape_b4_pct"),
        ("flops", "mape_flops_pct"),
        ("flops-mem", "mape_flops_mem_pct"),
    ];
    let mapes: Vec<Vec<f64>> = mape_cols
        .iter()
        .map(|(_, c)| num(c))
        .collect::<Result<_>>()?;
    if llm.is_empty() {
        bail!("{}: no rows", csv.display());
    }
    Ok((0..llm.len())
        .map(|i| {
            let values: Vec<f64> = coefs.iter().map(|c| c[i]).collect();
            FitFile {
                tool: format!("energy-fit {} (imported)", env!("CARGO_PKG_VERSION")),
                llm: llm[i].clone(),
                group: BTreeMap::from([("llm".to_string(), llm[i].clone())]),
                model: model.name().into(),
                formula: model.formula().into(),
                loss: "published".into(),
                points: 49,
                coefficients: model
                    .coef_names()
                    .iter()
                    .zip(&values)
                    .map(|(n, v)| CoefEntry {
                        name: n.to_string(),
                        value: *v,
                        std_error: None,
                        t_value: None,
                        p_value: None,
                        stars: None,
                        ci95: None,
                    })
                    .collect(),
                metrics: Metrics {
                    mape_pct: Some(mapes[5][i]),
                    ..Metrics::default()
                },
                repeats: None,
                dataset: None,
                sweet_spots: vec![SweetSpotEntry {
                    input_tokens: sn[i],
                    predicted_output_tokens: model.closed_form_sweet_spot(&values, sn[i]),
                    method: "closed-form".into(),
                    measured_output_tokens: Some(sm[i]),
                    measured_tokens_per_j: None,
                    predicted_output_tokens_ci95: None,
                }],
                best_to_worst_ratio: None,
                uncertainty: None,
                batch: None,
                published: Some(Published {
                    source: SOURCE.into(),
                    gpu: gpu[i].clone(),
                    engine: engine[i].clone(),
                    mape_pct_by_model: mape_cols
                        .iter()
                        .zip(&mapes)
                        .map(|((m, _), v)| (m.to_string(), v[i]))
                        .collect(),
                    sweet_spot_input_tokens: sn[i],
                    sweet_spot_measured_output_tokens: sm[i],
                    sweet_spot_estimated_output_tokens: se[i],
                }),
                warnings: Vec::new(),
            }
        })
        .collect())
}
