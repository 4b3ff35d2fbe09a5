//! `energy-fit design`: choose the grid points that tell the most about an energy model per
//! estimated second, within a budget; print them with the predicted errors, write them as a plan,
//! print the budget curve, or validate designs on a fully measured grid.

use super::design_input::{
    candidates, grid_points, holdouts, min_points_per_requests, per_requests_line, Candidates,
    REQUESTS_MODEL,
};
use super::values::{fraction, positive_f64};
use crate::analytic::model_by_name;
use crate::design::{self, plan_with_floor, Design, Planner, Prediction, SpotPrediction};
use crate::fit::table::Table;
use crate::measure::cost::RooflineCost;
use crate::measure::plan::{plan_rows, Grid, PUBLISHED_LENGTHS};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("budget").args(["budget_s", "budget_fraction"])))]
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
    /// Requests R submitted at once; a comma list (e.g. 1,10,100) plans one design over the
    /// concurrency axis too, for a model that spans requests (flops-mem-batch).
    #[arg(long, value_delimiter = ',', default_values_t = [1000u64])]
    pub requests: Vec<u64>,
    /// With several --requests values: at least K design points at each (default 6; 0: none), so
    /// each value can be fitted apart and left out in validation. Refused with one value.
    #[arg(long, value_name = "K", conflicts_with = "validate")]
    pub min_points_per_requests: Option<usize>,
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
    #[arg(long, default_value_t = 80.0, value_parser = super::values::gpu_mem_gib)]
    pub gpu_mem_gib: f64,
    /// Minimum measured window per point (s), as `measure --min-window-s`.
    #[arg(long, default_value_t = 5.0, value_parser = positive_f64)]
    pub min_window_s: f64,
    /// Also pick this many hold-out points outside the design (role `holdout`: measured, never
    /// fitted), spread over the grid; their seconds are outside the budget.
    #[arg(long, default_value_t = 0, requires = "budget")]
    pub holdouts: usize,
    /// Largest estimated seconds of one hold-out point (default: a tenth of the budget).
    #[arg(long, value_parser = positive_f64, requires = "holdouts")]
    pub holdout_max_s: Option<f64>,
    /// Write the chosen points (and hold-outs) to this plan file for `measure --plan`.
    #[arg(long, value_name = "FILE", requires = "budget")]
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
    /// The budget as a fraction of the full grid's estimated seconds (instead of --budget-s); with
    /// --validate, a comma list of them (default 0.05,0.1,0.2).
    #[arg(long, value_delimiter = ',', value_parser = fraction, conflicts_with = "budget_s")]
    pub budget_fraction: Vec<f64>,
    /// Also measure this many design points twice (repeat 1, outside the budget), the cheapest
    /// ones, so the data carry a repeat spread.
    #[arg(long, value_name = "K", default_value_t = 0, requires = "budget")]
    pub repeat_points: usize,
}

/// What a design run picked: the design, the design points measured a second time, the hold-outs.
struct Picked {
    design: Design,
    /// The design points demanded at each requests value (0: none).
    floor: usize,
    again: Vec<usize>,
    hold: Vec<usize>,
}

impl Picked {
    /// (candidate, role, repeat) of every plan row: the design, its repeats, the hold-outs.
    fn rows(&self) -> Vec<(usize, &'static str, u64)> {
        let design = self.design.chosen.iter().map(|&i| (i, "design", 0));
        let again = self.again.iter().map(|&i| (i, "design", 1));
        let hold = self.hold.iter().map(|&i| (i, "holdout", 0));
        design.chain(again).chain(hold).collect()
    }
}

/// Budget fractions of the curve printed without --budget-s.
const CURVE: [f64; 11] = [0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];

pub fn run(a: DesignArgs) -> Result<()> {
    let model = model_by_name(&a.model)?;
    let mem = (a.gpu_mem_gib * (1u64 << 30) as f64) as u64;
    if let Some(file) = &a.validate {
        return super::design_validate::run(&a, model.as_ref(), file, mem);
    }
    let grid = Grid {
        llms: vec![a.llm.clone().unwrap_or_default()],
        inputs: a.inputs.clone(),
        outputs: a.outputs.clone(),
        requests: a.requests.clone(),
        max_batch_sizes: vec![a.max_batch_size],
        max_num_tokens: a.max_num_tokens,
        dtypes: vec![a.dtype.clone()],
        repeats: 1,
    };
    let c = candidates(
        grid_points(&grid, &a.model)?,
        a.prior.as_deref(),
        mem,
        a.min_window_s,
    )?;
    if c.list.len() <= model.n_coefs() {
        bail!(
            "--gpu-mem-gib {}: {} of the grid's points fit in the GPU's memory, and model {} \
             needs at least {} (give more memory, or shorter --inputs / --outputs)",
            a.gpu_mem_gib,
            c.list.len(),
            model.name(),
            model.n_coefs() + 1
        );
    }
    let mut p = Planner::new(model.as_ref(), c.list.clone())?;
    if a.model == REQUESTS_MODEL {
        // Its m* depends on how the concurrency of each requests value falls with m.
        p = p.with_bound_models(c.bound_models());
    }
    let grid_s = p.cost(&(0..c.list.len()).collect::<Vec<_>>());
    let inputs: Vec<f64> = a.inputs.iter().map(|&n| n as f64).collect();
    let noise = a.noise_pct / 100.0;
    let floor = min_points_per_requests(a.min_points_per_requests, &a.requests)?;
    let budget = match (a.budget_s, a.budget_fraction.as_slice()) {
        (Some(b), _) => b,
        (None, [f]) => f * grid_s,
        (None, []) => return curve(&a, &p, &c, grid_s, &inputs, noise, floor),
        (None, _) => {
            bail!("--budget-fraction: one fraction plans a design (a list is for --validate)")
        }
    };
    let d = plan_with_floor(&p, budget, &[], floor)?;
    let pred = p
        .predict(&d.chosen, noise, &inputs)
        .context("the design does not identify the model")?;
    let hold_max_s = a.holdout_max_s.unwrap_or(budget / 10.0);
    let hold = holdouts(&c.list, &d.chosen, a.holdouts, hold_max_s);
    if hold.len() < a.holdouts {
        eprintln!(
            "note: {} of {} hold-outs: only {} grid points outside the design cost at most \
             --holdout-max-s ({hold_max_s:.0} s); a larger --holdout-max-s admits more",
            hold.len(),
            a.holdouts,
            hold.len()
        );
    }
    let mut again = d.chosen.clone();
    again.sort_by(|&x, &y| c.list[x].cost_s.total_cmp(&c.list[y].cost_s));
    again.truncate(a.repeat_points);
    let picked = Picked {
        design: d,
        floor,
        again,
        hold,
    };
    let (d, again, hold) = (&picked.design, &picked.again, &picked.hold);
    if let Some(path) = &a.plan_csv {
        write_plan(path, &c, &picked, mem, a.min_window_s)?;
    }
    if a.json {
        let doc = design_json(&a, &p, &c, &picked, &pred, grid_s, budget);
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
    if c.several_requests() {
        println!("{}", per_requests_line(&p, &d.chosen, floor));
    }
    println!("{}", points_table(&c, &d.chosen, "design").render());
    if !again.is_empty() {
        let rs: f64 = again.iter().map(|&i| c.list[i].cost_s).sum();
        println!("repeated (a second row each, repeat 1; {rs:.1} s outside the budget):");
        println!("{}", points_table(&c, again, "design").render());
    }
    if !hold.is_empty() {
        let hs: f64 = hold.iter().map(|&i| c.list[i].cost_s).sum();
        println!("hold-outs (measured, never fitted; {hs:.1} s outside the budget):");
        println!("{}", points_table(&c, hold, "holdout").render());
    }
    print_prediction(&p, &pred, a.noise_pct);
    if let Some(path) = &a.plan_csv {
        println!(
            "wrote {} rows to {}",
            d.chosen.len() + again.len() + hold.len(),
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
    if c.several_requests() {
        let rs: Vec<String> = p.requests_values().iter().map(|r| r.to_string()).collect();
        println!(
            "requests: {} (one design over the concurrency axis)",
            rs.join(", ")
        );
    }
    println!(
        "candidates: {} points, full grid {grid_s:.0} s estimated (roofline lower bound, windows ≥ {} s){}",
        c.list.len(),
        a.min_window_s,
        if c.infeasible.is_empty() { String::new() } else { format!("; {} do not fit and are left out", c.infeasible.len()) }
    );
}

/// The points of `set`, by requests, n, m; a requests column where the design spans several.
fn points_table(c: &Candidates, set: &[usize], role: &str) -> Table {
    let several = c.several_requests();
    let mut head = vec!["input_tokens", "output_tokens"];
    if several {
        head.push("requests");
    }
    head.extend(["est_s", "runs", "seconds", "role"]);
    let mut t = Table::new(&head);
    let mut sorted = set.to_vec();
    sorted.sort_by_key(|&i| {
        let p = &c.points[i];
        (p.requests, p.input_tokens, p.output_tokens)
    });
    for i in sorted {
        let (est, runs) = c.est[i];
        let mut row = vec![
            c.points[i].input_tokens.to_string(),
            c.points[i].output_tokens.to_string(),
        ];
        if several {
            row.push(c.points[i].requests.to_string());
        }
        row.extend([
            format!("{est:.2}"),
            runs.to_string(),
            format!("{:.1}", c.list[i].cost_s),
            role.into(),
        ]);
        t.push(row);
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
    // One table per requests value (one table, as before, for a design of one unbound value).
    let mut groups: Vec<(Option<f64>, Vec<&SpotPrediction>)> = Vec::new();
    for s in &pred.sweet_spots {
        match groups.last_mut() {
            Some((r, v)) if *r == s.requests => v.push(s),
            _ => groups.push((s.requests, vec![s])),
        }
    }
    for (r, spots) in groups {
        let mut t = Table::new(&[
            "input_tokens",
            "m* (prior)",
            "predicted 95 % interval",
            "±%",
        ]);
        for s in spots {
            let n = s.input_tokens;
            t.push(match s.interval {
                Some(i) => vec![
                    format!("{n}"),
                    format!("{:.0}", i.value),
                    format!("[{:.0}, {:.0}]", i.lo, i.hi),
                    format!("{:.1}", i.half_width_pct()),
                ],
                None => vec![format!("{n}"), "none".into(), "-".into(), "-".into()],
            });
        }
        let at = r.map_or(String::new(), |r| format!(" at requests {r}"));
        println!(
            "sweet spots{at} (the prior's m*, with the interval this design is predicted to give):\n{}",
            t.render()
        );
    }
}

fn curve(
    a: &DesignArgs,
    p: &Planner,
    c: &Candidates,
    grid_s: f64,
    inputs: &[f64],
    noise: f64,
    floor: usize,
) -> Result<()> {
    let min = p.cost(&design::floor::minimal(p, &[], floor)?);
    let mut rows: Vec<(f64, Design, Prediction)> = Vec::new();
    for b in std::iter::once(min).chain(CURVE.iter().map(|f| f * grid_s).filter(|&b| b > min)) {
        let d = plan_with_floor(p, b, &[], floor)?;
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
        "smallest budget that identifies {}{}: {min:.1} s; no plan written (give --budget-s)",
        p.model.name(),
        match floor {
            0 => String::new(),
            k => format!(" with at least {k} points per requests value"),
        }
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
        .filter_map(|s| s.interval.map(|i| i.half_width_pct()))
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn design_json(
    a: &DesignArgs,
    p: &Planner,
    c: &Candidates,
    picked: &Picked,
    pred: &Prediction,
    grid_s: f64,
    budget: f64,
) -> Value {
    let several = c.several_requests();
    let pt = |&(i, role, repeat): &(usize, &str, u64)| {
        let mut v = json!({"input_tokens": c.points[i].input_tokens, "output_tokens": c.points[i].output_tokens,
        "repeat": repeat, "est_s": c.est[i].0, "runs": c.est[i].1, "seconds": c.list[i].cost_s, "role": role});
        if several {
            v["requests"] = json!(c.points[i].requests);
        }
        v
    };
    let spot = |s: &SpotPrediction| {
        let i = s.interval;
        let mut v = json!({"input_tokens": s.input_tokens, "output_tokens": i.map(|i| i.value),
            "ci95": i.map(|i| [i.lo, i.hi]), "half_width_pct": i.map(|i| i.half_width_pct())});
        if let Some(r) = s.requests {
            v["requests"] = json!(r as u64);
        }
        v
    };
    let mut doc = json!({
        "llm": c.points[0].llm, "model": p.model.name(), "prior": c.prior, "noise_pct": a.noise_pct,
        "grid_s": grid_s, "budget_s": budget, "design_s": picked.design.cost_s,
        "points": picked.rows().iter().map(pt).collect::<Vec<_>>(),
        "coefficients": p.model.coef_names().iter().zip(&p.prior_coefs).zip(&pred.coef_rel_se_pct)
            .map(|((n, v), se)| (n.to_string(), json!({"prior": v, "rel_se_pct": se}))).collect::<serde_json::Map<_, _>>(),
        "sweet_spots": pred.sweet_spots.iter().map(spot).collect::<Vec<_>>(),
    });
    if several {
        doc["min_points_per_requests"] = json!(picked.floor);
        doc["points_per_requests"] = design::floor::counts(p, &picked.design.chosen)
            .iter()
            .map(|(r, n)| json!({"requests": *r as u64, "points": n}))
            .collect();
    }
    doc
}

/// The plan file, in the plan format of `measure --dry-run --plan-csv`: the picked rows in order.
/// An existing file is replaced only when it is a plan (never a measurement).
fn write_plan(
    path: &Path,
    c: &Candidates,
    picked: &Picked,
    mem: u64,
    min_window_s: f64,
) -> Result<()> {
    let rows = picked.rows();
    let points: Vec<_> = rows
        .iter()
        .map(|&(i, _, repeat)| crate::measure::plan::Point {
            repeat,
            ..c.points[i].clone()
        })
        .collect();
    let roles: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let rows = plan_rows(&points, &RooflineCost, mem, min_window_s)?;
    crate::measure::plan_file::write_plan(path, &crate::measure::plan::plan_csv(&rows, &roles))
}
