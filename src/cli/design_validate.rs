//! `design --validate FILE`: plan (or replay an adaptive design) with fractions of a fully
//! measured grid's estimated seconds, fit the chosen points' rows and compare with the full fit.

use super::design::DesignArgs;
use super::design_input::candidates;
use crate::analytic::EnergyModel;
use crate::dataset::{Dataset, Group};
use crate::design::{self, Planner};
use crate::fit::table::Table;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

pub fn run(a: &DesignArgs, model: &dyn EnergyModel, file: &Path, mem: u64) -> Result<()> {
    let requests = match a.requests[..] {
        [r] => r,
        _ => {
            let list: Vec<String> = a.requests.iter().map(u64::to_string).collect();
            bail!(
                "--validate --requests {}: validation replays designs of one requests value; give one",
                list.join(",")
            );
        }
    };
    let fractions = if a.budget_fraction.is_empty() {
        vec![0.05, 0.1, 0.2]
    } else {
        a.budget_fraction.clone()
    };
    let ds = Dataset::load(&[file.to_path_buf()]).context("--validate")?;
    let groups = ds.groups(&[])?;
    if groups.len() != 1 {
        let llms: std::collections::BTreeSet<&str> = groups.iter().map(|g| g.llm()).collect();
        let labels: Vec<String> = groups.iter().map(|g| g.label()).collect();
        bail!(
            "--validate: {} holds {} fit groups ({}) of {} LLM(s); validate one grid (one LLM at \
             one set of run settings) at a time",
            file.display(),
            groups.len(),
            labels.join("; "),
            llms.len()
        );
    }
    let g = &groups[0];
    let setting = |col: &str| -> Option<String> {
        let c = ds
            .df
            .column(col)
            .ok()?
            .cast(&polars::prelude::DataType::String)
            .ok()?;
        c.str().ok()?.get(0).map(str::to_string)
    };
    let num = |col: &str, default: u64| -> Result<u64> {
        match setting(col) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .map(|x| x as u64)
                .with_context(|| format!("--validate: {}, column {col}: {v:?}", file.display())),
        }
    };
    let mut pts: Vec<(u64, u64)> = g
        .obs
        .iter()
        .map(|o| (o.input_tokens as u64, o.output_tokens as u64))
        .collect();
    pts.sort();
    pts.dedup();
    let llm = a.llm.clone().unwrap_or_else(|| g.llm().to_string());
    if crate::llm::resolve_llm(&llm).is_err() {
        bail!("--validate: LLM {llm:?} of {} is not in the catalog; give --llm NAME or a config.json with its shape", file.display());
    }
    let base = crate::measure::plan::Point {
        llm,
        input_tokens: 0,
        output_tokens: 0,
        requests: num("requests", requests)?,
        max_batch_size: num("max_batch_size", a.max_batch_size)?,
        max_num_tokens: num("max_num_tokens", a.max_num_tokens)?,
        dtype: setting("dtype").unwrap_or_else(|| a.dtype.clone()),
        repeat: 0,
    };
    let points = pts
        .iter()
        .map(|&(n, m)| crate::measure::plan::Point {
            input_tokens: n,
            output_tokens: m,
            ..base.clone()
        })
        .collect();
    let c = candidates(points, a.prior.as_deref(), mem, a.min_window_s)?;
    if let Some((p, why)) = c.infeasible.first() {
        bail!("--validate: point input_tokens {} output_tokens {} of {} does not fit the GPU memory ({why}); set --gpu-mem-gib", p.input_tokens, p.output_tokens, file.display());
    }
    let p = Planner::new(model, c.list.clone())?;
    let v = design::validate::validate(
        &p,
        &g.obs,
        &fractions,
        a.adaptive.then_some(a.initial_fraction),
    )?;
    let windows = measured_windows(&ds, g, &pts)?;
    let grid_measured_s = windows.as_ref().map(|w| w.values().sum::<f64>());
    let measured_s = |r: &design::validate::Validation| -> Option<f64> {
        let w = windows.as_ref()?;
        Some(
            r.chosen
                .iter()
                .map(|&(n, m)| w[&(n as u64, m as u64)])
                .sum(),
        )
    };
    if a.json {
        let mut vals = serde_json::to_value(&v)?;
        for (j, r) in vals.as_array_mut().into_iter().flatten().zip(&v) {
            j["design_measured_s"] = json!(measured_s(r));
            j["grid_measured_s"] = json!(grid_measured_s);
        }
        let doc = json!({"file": file.display().to_string(), "llm": g.llm(), "model": model.name(), "prior": c.prior, "design": if a.adaptive { "adaptive" } else { "plan" }, "validations": vals});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "validating {}designs of {} on {} ({} rows, {} grid points), model {}",
        if a.adaptive { "adaptive " } else { "" },
        g.llm(),
        file.display(),
        g.obs.len(),
        pts.len(),
        model.name()
    );
    println!("prior: {}", c.prior);
    for r in &v {
        println!(
            "\nbudget {} % ({:.0} s): {} points, {:.0} s; MAPE {:.2} % over all rows (full-grid fit {:.2} %, ratio {:.2}), {} over the unmeasured; worst ({}, {}) {:.2} %",
            percent(r.budget_fraction), r.budget_s, r.points, r.design_s, r.mape_all_pct, r.full_grid_mape_pct,
            r.mape_all_pct / r.full_grid_mape_pct,
            r.mape_unmeasured_pct.map_or("-".into(), |m| format!("{m:.2} %")), r.worst.0, r.worst.1, r.worst.2
        );
        if let (Some(d), Some(grid)) = (measured_s(r), grid_measured_s) {
            println!(
                "measured windows of those points: {d:.0} s, {} % of the grid's {grid:.0} s ({} % by the estimates)",
                percent(d / grid),
                percent(r.design_s * r.budget_fraction / r.budget_s)
            );
        }
        let mut t = Table::new(&[
            "input_tokens",
            "full-grid m*",
            "design m*",
            "95 % interval",
            "deviation %",
            "inside",
        ]);
        for s in &r.sweet_spots {
            t.push(vec![
                format!("{}", s.input_tokens),
                s.full_grid.map_or("none".into(), |m| format!("{m:.0}")),
                s.design
                    .map_or("none".into(), |i| format!("{:.0}", i.value)),
                s.design
                    .map_or("-".into(), |i| format!("[{:.0}, {:.0}]", i.lo, i.hi)),
                s.deviation_pct.map_or("-".into(), |d| format!("{d:+.2}")),
                if s.inside_ci95 {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]);
        }
        let inside = r.sweet_spots.iter().filter(|s| s.inside_ci95).count();
        println!(
            "{}full-grid m* inside the design's 95 % interval at {inside} of {} input lengths",
            t.render(),
            r.sweet_spots.len()
        );
    }
    Ok(())
}

/// Each grid point's measured window in the grid's fitted rows (the mean of its rows'
/// `window_s`), keyed by (input_tokens, output_tokens): what a design of those points would really
/// take, beside the estimate it was planned with. None when a point of `pts` has no window (files
/// written before the column existed).
fn measured_windows(
    ds: &Dataset,
    g: &Group,
    pts: &[(u64, u64)],
) -> Result<Option<HashMap<(u64, u64), f64>>> {
    let Some(windows) = ds.optional_f64("window_s")? else {
        return Ok(None);
    };
    let mut sums: HashMap<(u64, u64), (f64, usize)> = HashMap::new();
    for (o, &i) in g.obs.iter().zip(&g.rows) {
        if let Some(w) = windows[i].filter(|w| w.is_finite() && *w > 0.0) {
            let key = (o.input_tokens as u64, o.output_tokens as u64);
            let e = sums.entry(key).or_default();
            (e.0, e.1) = (e.0 + w, e.1 + 1);
        }
    }
    Ok(pts
        .iter()
        .map(|p| sums.get(p).map(|&(s, k)| (*p, s / k as f64)))
        .collect())
}

/// A fraction as a percentage to one decimal, without a trailing ".0" (8.5, 10).
fn percent(f: f64) -> String {
    let s = format!("{:.1}", 100.0 * f);
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}
