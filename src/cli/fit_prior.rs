//! `energy-fit fit --prior CALIBRATION`: few-shot flops-mem fits, each LLM's zero-shot prediction
//! serving as the prior (`zeroshot::fewshot`), so a few measured points suffice. With `--points`,
//! only those grid points are fitted and every other measured point scores the fit.

use crate::analytic::FlopsMem;
use crate::dataset::Dataset;
use crate::fit::intervals;
use crate::fit::table::{sci, Table};
use crate::zeroshot::fewshot::{choose_points, fit_with_prior, NOISE_REL_SD, PRIOR_REL_SD};
use crate::zeroshot::file::CalibrationFile;
use crate::zeroshot::model::{flops_mem_basis, project};
use crate::zeroshot::GRID;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Parse `--points 64x64,512x512,…`.
pub fn parse_points(text: &str) -> Result<Vec<(f64, f64)>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| {
            let (n, m) = p
                .split_once('x')
                .with_context(|| format!("--points: '{p}' is not NxM"))?;
            let v = |s: &str| -> Result<f64> {
                let x: u64 = s.trim().parse().map_err(|_| {
                    anyhow::anyhow!("--points: '{s}' in '{p}' is not a positive integer")
                })?;
                if x == 0 {
                    bail!("--points: '{p}' has a zero length");
                }
                Ok(x as f64)
            };
            Ok((v(n)?, v(m)?))
        })
        .collect()
}

pub fn run(
    data: &[PathBuf],
    prior: &Path,
    points: Option<&str>,
    design_points: Option<usize>,
    json_out: bool,
) -> Result<()> {
    let cal = CalibrationFile::read(prior).context("--prior")?;
    let chosen = points.map(parse_points).transpose()?;
    let ds = Dataset::load(data)?;
    let mut docs = Vec::new();
    let mut notes = Vec::new();
    let mut t = Table::new(&[
        "LLM",
        "fitted",
        "MAPE fitted %",
        "MAPE others %",
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "m* n=64 [95 %]",
    ]);
    for g in ds.groups(&[])? {
        let cfg = crate::llm::resolve_llm(g.llm())
            .with_context(|| format!("column 'llm': no shape known for LLM '{}'", g.llm()))?;
        let z = project(
            &cfg,
            &cal.setting,
            &cal.grid,
            &cal.values(),
            &cal.covariance(),
        )
        .with_context(|| format!("zero-shot prior for {}", cfg.name))?;
        let all: Vec<(f64, f64, f64)> = g
            .obs
            .iter()
            .map(|o| (o.input_tokens, o.output_tokens, o.energy_per_token_j))
            .collect();
        let designed = design_points
            .map(|k| designed_points(&z.coefs, &all, k))
            .transpose()
            .with_context(|| format!("--design-points for {}", cfg.name))?;
        let pick = designed.as_ref().or(chosen.as_ref());
        let (fitted, others): (Vec<_>, Vec<_>) = all
            .iter()
            .partition(|p| pick.is_none_or(|c| c.contains(&(p.0, p.1))));
        if fitted.is_empty() {
            bail!(
                "--points: none of the given points is measured for {}",
                cfg.name
            );
        }
        let f = fit_with_prior(&z.coefs, &fitted, PRIOR_REL_SD, NOISE_REL_SD)
            .with_context(|| format!("few-shot fit of {}", cfg.name))?;
        let mape = |pts: &[(f64, f64, f64)]| -> Option<f64> {
            (!pts.is_empty()).then(|| {
                100.0
                    * pts
                        .iter()
                        .map(|&(n, m, e)| {
                            let b = flops_mem_basis(n, m);
                            (b.iter().zip(&f.coefs).map(|(x, c)| x * c).sum::<f64>() / e - 1.0)
                                .abs()
                        })
                        .sum::<f64>()
                    / pts.len() as f64
            })
        };
        let (m_fit, m_oth) = (mape(&fitted), mape(&others));
        let spots: Vec<_> = GRID
            .iter()
            .map(|&n| {
                let i = intervals::sweet_spot(
                    &FlopsMem,
                    &f.coefs,
                    &f.covariance,
                    f64::INFINITY,
                    n as f64,
                );
                json!({"input_tokens": n, "predicted_output_tokens": i.map(|i| i.value),
                       "predicted_output_tokens_ci95": i.map(|i| [i.lo, i.hi])})
            })
            .collect();
        let s64 = intervals::sweet_spot(&FlopsMem, &f.coefs, &f.covariance, f64::INFINITY, 64.0);
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let mut row = vec![
            cfg.name.clone(),
            fitted.len().to_string(),
            pct(m_fit),
            pct(m_oth),
        ];
        row.extend(f.coefs.iter().map(|c| sci(*c)));
        row.push(s64.map_or("none".into(), |i| {
            format!("{:.0} [{:.0}, {:.0}]", i.value, i.lo, i.hi)
        }));
        t.push(row);
        let names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
        if let Some(d) = &designed {
            let list: Vec<String> = d.iter().map(|(n, m)| format!("{n}x{m}")).collect();
            notes.push(format!("{}: designed points {}", cfg.name, list.join(",")));
        }
        docs.push(json!({
            "llm": cfg.name,
            "model": "flops-mem",
            "designed_points": designed.as_ref().map(|d| d.iter().map(|(n, m)| [n, m]).collect::<Vec<_>>()),
            "fitted_points": fitted.len(),
            "other_points": others.len(),
            "mape_fitted_pct": m_fit,
            "mape_others_pct": m_oth,
            "coefficients": names.iter().zip(&f.coefs).map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "std_errors": names.iter().enumerate().map(|(j, k)| (k.to_string(), json!(f.covariance[(j, j)].max(0.0).sqrt()))).collect::<serde_json::Map<_, _>>(),
            "sweet_spots": spots,
        }));
    }
    if json_out {
        let doc = json!({"prior": prior, "gpu": cal.gpu, "engine": cal.engine,
                         "prior_rel_sd": PRIOR_REL_SD, "noise_rel_sd": NOISE_REL_SD, "fits": docs});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "few-shot flops-mem fits, prior: zero-shot from {} ({}, {}); prior spread {:.0} % per coefficient, noise {:.0} % per point",
        prior.display(),
        cal.gpu,
        cal.engine,
        100.0 * PRIOR_REL_SD,
        100.0 * NOISE_REL_SD
    );
    print!("{}", t.render());
    for n in &notes {
        println!("{n}");
    }
    println!("few-shot fits are printed, not written to fit files");
    Ok(())
}

/// `--design-points K`: the K distinct measured (n, m) that the prior's few-shot design takes.
fn designed_points(prior: &[f64], all: &[(f64, f64, f64)], k: usize) -> Result<Vec<(f64, f64)>> {
    let mut cands: Vec<(f64, f64)> = all.iter().map(|p| (p.0, p.1)).collect();
    cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    cands.dedup();
    if cands.len() < k {
        bail!(
            "{k} points asked for, {} distinct points measured",
            cands.len()
        );
    }
    let idx = choose_points(prior, &cands, k, PRIOR_REL_SD, NOISE_REL_SD)?;
    Ok(idx.into_iter().map(|i| cands[i]).collect())
}
