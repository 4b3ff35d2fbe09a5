//! `energy-fit design`: choose the grid points that tell the most about an energy model per
//! estimated second, within a budget; print them with the predicted errors, write them as a plan,
//! print the budget curve, or validate designs on a fully measured grid.

use super::design_input::{candidates, grid_points, holdouts, Candidates};
use crate::analytic::{model_by_name, EnergyModel};
use crate::dataset::Dataset;
use crate::design::{self, plan, Design, Planner, Prediction};
use crate::fit::table::Table;
use crate::measure::cost::RooflineCost;
use crate::measure::plan::{plan_rows, Grid, PLAN_COLUMNS, PUBLISHED_LENGTHS};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct DesignArgs {
    /// LLM: catalog name or config.json (with --validate: the shape of the file's LLM, when its
    /// name is not in the catalog).
    #[arg(long, required_unless_present = "validate")]
    pub llm: Option<String>,
    /// Budget in estimated measured seconds (the dry run's roofline estimate × runs per window,
    /// summed over the chosen points). Without it, print the budget curve and write no plan.
    #[arg(long, value_parser = positive_f64)]
    pub budget_s: Option<f64>,
    /// Candidate input lengths n.
    #[arg(long, value_delimiter = ',', default_values_t = PUBLISHED_LENGTHS)]
    pub inputs: Vec<u64>,
    /// Candidate output lengths m.
    #[arg(long, value_delimiter = ',', default_values_t = PUBLISHED_LENGTHS)]
    pub outputs: Vec<u64>,
    /// Requests R submitted at once.
    #[arg(long, default_value_t = 1000)]
    pub requests: u64,
    /// In-flight batch bound.
    #[arg(long, default_value_t = 1024)]
    pub max_batch_size: u64,
    /// Tokens per engine step.
    #[arg(long, default_value_t = 8192)]
    pub max_num_tokens: u64,
    /// bf16, fp16 or fp32.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Energy model whose coefficients the design is for.
    #[arg(long, default_value = "flops-mem")]
    pub model: String,
    /// A fit file (of any LLM) whose surface weights the points instead of the roofline estimate;
    /// it is never fitted.
    #[arg(long, value_name = "FIT.json")]
    pub prior: Option<PathBuf>,
    /// Relative noise of one measured point (%, model misfit included) for the predicted errors.
    #[arg(long, default_value_t = 100.0 * design::DEFAULT_NOISE, value_parser = positive_f64)]
    pub noise_pct: f64,
    /// GPU memory (GiB) for the feasibility and concurrency of each point.
    #[arg(long, default_value_t = 80.0, value_parser = positive_f64)]
    pub gpu_mem_gib: f64,
    /// Minimum measured window per point (s), as `measure --min-window-s`.
    #[arg(long, default_value_t = 5.0, value_parser = positive_f64)]
    pub min_window_s: f64,
    /// Also pick this many hold-out points outside the design (role `holdout`: measured, never
    /// fitted), spread over the grid; their seconds are outside the budget.
    #[arg(long, default_value_t = 0, requires = "budget_s")]
    pub holdouts: usize,
    /// Largest estimated seconds of one hold-out point (default: a tenth of the budget).
    #[arg(long, value_parser = positive_f64, requires = "holdouts")]
    pub holdout_max_s: Option<f64>,
    /// Write the chosen points (and hold-outs) to this plan file for `measure --plan`.
    #[arg(long, value_name = "FILE", requires = "budget_s")]
    pub plan_csv: Option<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Validate designs on this fully measured grid of one LLM: plan with each --budget-fraction
    /// (knowing only the candidates, their cost and the prior), fit the chosen points from the
    /// file, compare with the fit of every point.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["budget_s", "plan_csv", "holdouts"])]
    pub validate: Option<PathBuf>,
    /// With --validate: replay `measure --adaptive` on the file instead of planning once (each
    /// point's measurement is its row in the file).
    #[arg(long, requires = "validate")]
    pub adaptive: bool,
    /// With --adaptive: share of the budget the initial design may spend.
    #[arg(long, value_name = "F", default_value_t = design::DEFAULT_INITIAL_FRACTION, value_parser = fraction, requires = "adaptive")]
    pub initial_fraction: f64,
    /// Budgets of --validate as fractions of the grid's estimated seconds.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2", value_parser = fraction, requires = "validate")]
    pub budget_fraction: Vec<f64>,
}

pub(crate) fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a positive number, got {s:?}")),
    }
}

pub(crate) fn fraction(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("expected a fraction in (0, 1], got {s:?}")),
    }
}

/// Budget fractions of the curve printed without --budget-s.
const CURVE: [f64; 11] = [0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];

pub fn run(a: DesignArgs) -> Result<()> {
    let model = model_by_name(&a.model)?;
    let mem = (a.gpu_mem_gib * (1u64 << 30) as f64) as u64;
    if let Some(file) = &a.validate {
        return validate(&a, model.as_ref(), file, mem);
    }
    let grid = Grid {
        llms: vec![a.llm.clone().unwrap_or_default()],
        inputs: a.inputs.clone(),
        outputs: a.outputs.clone(),
        requests: vec![a.requests],
        max_batch_sizes: vec![a.max_batch_size],
        max_num_tokens: a.max_num_tokens,
        dtypes: vec![a.dtype.clone()],
        repeats: 1,
    };
    let c = candidates(grid_points(&grid)?, a.prior.as_deref(), mem, a.min_window_s)?;
    let p = Planner::new(model.as_ref(), c.list.clone())?;
    let grid_s = p.cost(&(0..c.list.len()).collect::<Vec<_>>());
    let inputs: Vec<f64> = a.inputs.iter().map(|&n| n as f64).collect();
    let noise = a.noise_pct / 100.0;
    let Some(budget) = a.budget_s else {
        return curve(&a, &p, &c, grid_s, &inputs, noise);
    };
    let d = plan(&p, budget, &[])?;
    let pred = p
        .predict(&d.chosen, noise, &inputs)
        .context("the design does not identify the model")?;
    let hold = holdouts(
        &c.list,
        &d.chosen,
        a.holdouts,
        a.holdout_max_s.unwrap_or(budget / 10.0),
    );
    if hold.len() < a.holdouts {
        eprintln!(
            "note: only {} of {} hold-out points cost at most --holdout-max-s",
            hold.len(),
            a.holdouts
        );
    }
    if let Some(path) = &a.plan_csv {
        write_plan(path, &c, &d.chosen, &hold, mem, a.min_window_s)?;
    }
    if a.json {
        let doc = design_json(&a, &p, &c, &d, &hold, &pred, grid_s, budget);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    header(&a, &p, &c, grid_s);
    println!(
        "budget {budget:.1} s ({:.1} % of the grid): {} points, {:.1} s estimated ({:.1} %)",
        100.0 * budget / grid_s,
        d.chosen.len(),
        d.cost_s,
        100.0 * d.cost_s / grid_s
    );
    println!("{}", points_table(&c, &d.chosen, "design").render());
    if !hold.is_empty() {
        let hs: f64 = hold.iter().map(|&i| c.list[i].cost_s).sum();
        println!("hold-outs (measured, never fitted; {hs:.1} s outside the budget):");
        println!("{}", points_table(&c, &hold, "holdout").render());
    }
    print_prediction(&p, &pred, a.noise_pct);
    if let Some(path) = &a.plan_csv {
        println!(
            "wrote {} points to {}",
            d.chosen.len() + hold.len(),
            path.display()
        );
    }
    Ok(())
}

fn header(a: &DesignArgs, p: &Planner, c: &Candidates, grid_s: f64) {
    println!(
        "design for {} ({}), model {}",
        c.points[0].llm,
        a.dtype,
        p.model.name()
    );
    println!("prior: {}", c.prior);
    println!(
        "candidates: {} points, full grid {grid_s:.0} s estimated (roofline lower bound, windows ≥ {} s){}",
        c.list.len(),
        a.min_window_s,
        if c.infeasible.is_empty() { String::new() } else { format!("; {} do not fit and are left out", c.infeasible.len()) }
    );
}

fn points_table(c: &Candidates, set: &[usize], role: &str) -> Table {
    let mut t = Table::new(&[
        "input_tokens",
        "output_tokens",
        "est_s",
        "runs",
        "seconds",
        "role",
    ]);
    let mut sorted = set.to_vec();
    sorted.sort_by_key(|&i| (c.points[i].input_tokens, c.points[i].output_tokens));
    for i in sorted {
        let (est, runs) = c.est[i];
        t.push(vec![
            c.points[i].input_tokens.to_string(),
            c.points[i].output_tokens.to_string(),
            format!("{est:.2}"),
            runs.to_string(),
            format!("{:.1}", c.list[i].cost_s),
            role.into(),
        ]);
    }
    t
}

fn print_prediction(p: &Planner, pred: &Prediction, noise_pct: f64) {
    println!("predicted standard errors (relative noise {noise_pct} % per point):");
    let mut t = Table::new(&["coefficient", "s.e. (% of the prior's value)"]);
    for (name, se) in p.model.coef_names().iter().zip(&pred.coef_rel_se_pct) {
        t.push(vec![name.to_string(), format!("{se:.2}")]);
    }
    println!("{}", t.render());
    let mut t = Table::new(&[
        "input_tokens",
        "m* (prior)",
        "predicted 95 % interval",
        "±%",
    ]);
    for (n, i) in &pred.sweet_spots {
        t.push(match i {
            Some(i) => vec![
                format!("{n}"),
                format!("{:.0}", i.value),
                format!("[{:.0}, {:.0}]", i.lo, i.hi),
                format!("{:.1}", i.half_width_pct()),
            ],
            None => vec![format!("{n}"), "none".into(), "-".into(), "-".into()],
        });
    }
    println!(
        "sweet spots (the prior's m*, with the interval this design is predicted to give):\n{}",
        t.render()
    );
}

fn curve(
    a: &DesignArgs,
    p: &Planner,
    c: &Candidates,
    grid_s: f64,
    inputs: &[f64],
    noise: f64,
) -> Result<()> {
    let min = p.cost(&design::cheapest_identifying(p, &[])?);
    let mut rows: Vec<(f64, Design, Prediction)> = Vec::new();
    for b in std::iter::once(min).chain(CURVE.iter().map(|f| f * grid_s).filter(|&b| b > min)) {
        let d = plan(p, b, &[])?;
        let pred = p
            .predict(&d.chosen, noise, inputs)
            .context("design does not identify")?;
        rows.push((b, d, pred));
    }
    if a.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(b, d, pr)| json!({"budget_s": b, "budget_fraction": b / grid_s, "points": d.chosen.len(), "design_s": d.cost_s,
                "worst_sweet_spot_pct": finite(pr.worst_sweet_spot_pct()), "mean_sweet_spot_pct": mean_pct(pr)}))
            .collect();
        let doc = json!({"llm": c.points[0].llm, "model": p.model.name(), "prior": c.prior, "noise_pct": a.noise_pct,
            "grid_s": grid_s, "smallest_identifying_budget_s": min, "curve": v});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    header(a, p, c, grid_s);
    println!(
        "smallest budget that identifies {}: {min:.1} s; no plan written (give --budget-s)",
        p.model.name()
    );
    let mut t = Table::new(&[
        "budget_s",
        "% of grid",
        "points",
        "design_s",
        "worst m* ±%",
        "mean m* ±%",
    ]);
    for (b, d, pr) in &rows {
        t.push(vec![
            format!("{b:.1}"),
            format!("{:.1}", 100.0 * b / grid_s),
            d.chosen.len().to_string(),
            format!("{:.1}", d.cost_s),
            format!("{:.2}", pr.worst_sweet_spot_pct()),
            mean_pct(pr).map_or("-".into(), |v| format!("{v:.2}")),
        ]);
    }
    println!(
        "budget curve (predicted 95 % half-width of m*, relative noise {} % per point):\n{}",
        a.noise_pct,
        t.render()
    );
    Ok(())
}

fn mean_pct(p: &Prediction) -> Option<f64> {
    let v: Vec<f64> = p
        .sweet_spots
        .iter()
        .filter_map(|(_, i)| i.map(|i| i.half_width_pct()))
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[allow(clippy::too_many_arguments)]
fn design_json(
    a: &DesignArgs,
    p: &Planner,
    c: &Candidates,
    d: &Design,
    hold: &[usize],
    pred: &Prediction,
    grid_s: f64,
    budget: f64,
) -> Value {
    let pt = |i: usize, role: &str| {
        json!({"input_tokens": c.points[i].input_tokens, "output_tokens": c.points[i].output_tokens,
        "est_s": c.est[i].0, "runs": c.est[i].1, "seconds": c.list[i].cost_s, "role": role})
    };
    json!({
        "llm": c.points[0].llm, "model": p.model.name(), "prior": c.prior, "noise_pct": a.noise_pct,
        "grid_s": grid_s, "budget_s": budget, "design_s": d.cost_s,
        "points": d.chosen.iter().map(|&i| pt(i, "design")).chain(hold.iter().map(|&i| pt(i, "holdout"))).collect::<Vec<_>>(),
        "coefficients": p.model.coef_names().iter().zip(&p.prior_coefs).zip(&pred.coef_rel_se_pct)
            .map(|((n, v), se)| (n.to_string(), json!({"prior": v, "rel_se_pct": se}))).collect::<serde_json::Map<_, _>>(),
        "sweet_spots": pred.sweet_spots.iter().map(|(n, i)| json!({"input_tokens": n, "output_tokens": i.map(|i| i.value),
            "ci95": i.map(|i| [i.lo, i.hi]), "half_width_pct": i.map(|i| i.half_width_pct())})).collect::<Vec<_>>(),
    })
}

/// The plan file: the plan format of `measure --dry-run --plan-csv`, design points then hold-outs.
/// An existing file is replaced only when it is a plan (never a measurement).
fn write_plan(
    path: &Path,
    c: &Candidates,
    chosen: &[usize],
    hold: &[usize],
    mem: u64,
    min_window_s: f64,
) -> Result<()> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--plan-csv: cannot read existing '{}'", path.display()))?;
        let first = text.lines().next().unwrap_or("");
        if !first.is_empty()
            && !first.starts_with(&PLAN_COLUMNS[..PLAN_COLUMNS.len() - 1].join(","))
        {
            bail!(
                "--plan-csv: '{}' exists and is not a plan file; refusing to overwrite it",
                path.display()
            );
        }
    }
    let points: Vec<_> = chosen
        .iter()
        .chain(hold)
        .map(|&i| c.points[i].clone())
        .collect();
    let roles: Vec<&str> = chosen
        .iter()
        .map(|_| "design")
        .chain(hold.iter().map(|_| "holdout"))
        .collect();
    let rows = plan_rows(&points, &RooflineCost, mem, min_window_s)?;
    crate::fsutil::write_atomic(
        path,
        crate::measure::plan::plan_csv(&rows, &roles).as_bytes(),
    )
    .context("--plan-csv")
}

fn validate(a: &DesignArgs, model: &dyn EnergyModel, file: &Path, mem: u64) -> Result<()> {
    let ds = Dataset::load(&[file.to_path_buf()]).context("--validate")?;
    let groups = ds.groups(&[])?;
    if groups.len() != 1 {
        bail!(
            "--validate: {} holds {} LLMs; validate one LLM's grid at a time",
            file.display(),
            groups.len()
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
        requests: num("requests", a.requests)?,
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
        &a.budget_fraction,
        a.adaptive.then_some(a.initial_fraction),
    )?;
    if a.json {
        let doc = json!({"file": file.display().to_string(), "llm": g.llm(), "model": model.name(), "prior": c.prior, "design": if a.adaptive { "adaptive" } else { "plan" }, "validations": v});
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
            "\nbudget {:.0} % ({:.0} s): {} points, {:.0} s; MAPE {:.2} % over all rows (full-grid fit {:.2} %, ratio {:.2}), {} over the unmeasured; worst ({}, {}) {:.2} %",
            100.0 * r.budget_fraction, r.budget_s, r.points, r.design_s, r.mape_all_pct, r.full_grid_mape_pct,
            r.mape_all_pct / r.full_grid_mape_pct,
            r.mape_unmeasured_pct.map_or("-".into(), |m| format!("{m:.2} %")), r.worst.0, r.worst.1, r.worst.2
        );
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
