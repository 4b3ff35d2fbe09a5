//! What `energy-fit measure` measures: the grid its flags give, or a plan file's points, or a
//! budgeted design of the grid (planned once, or the initial design of `--adaptive`), with each
//! point's role, cut to this host's `--shard`.

use super::measure::MeasureArgs;
use super::measure_adaptive::Adaptive;
use crate::measure::cost::RooflineCost;
use crate::measure::plan::Grid;
use crate::measure::plan_file::read_plan;
use crate::measure::run::key_of;
use crate::measure::{CostModel, Key, Point};
use anyhow::Result;
use std::collections::HashMap;

/// The grid the flags give, checked (each list's values in range and unique).
pub(super) fn grid(a: &MeasureArgs) -> Result<Grid> {
    let list = |s: &str| {
        s.split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
    };
    let g = Grid {
        llms: list(&a.llm),
        inputs: a.inputs.clone(),
        outputs: a.outputs.clone(),
        requests: a.requests.clone(),
        max_batch_sizes: a.max_batch_size.clone(),
        max_num_tokens: a.max_num_tokens,
        dtypes: list(&a.dtype),
        repeats: a.repeats,
    };
    g.validate()?;
    Ok(g)
}

/// The points a run measures, after the plan, the design or the grid and the shard.
pub(super) struct Planned {
    pub points: Vec<Point>,
    /// The `role` column of each point (design, holdout or empty).
    pub roles: HashMap<Key, String>,
    /// `--adaptive`: the source that chooses the points after the initial design.
    pub adaptive: Option<Adaptive>,
}

/// The points to measure: a plan file's, a design's (`--budget-s`, the initial one with
/// `--adaptive`) or the grid's; then this host's shard of them.
pub(super) fn plan(
    a: &MeasureArgs,
    g: &Grid,
    gpu_mem: Option<u64>,
    min_window_s: f64,
    cost: &RooflineCost,
) -> Result<Planned> {
    let mut adaptive = None;
    let planned: Vec<(Point, String)> = match (&a.plan, a.budget_s) {
        (Some(path), _) => read_plan(path)?,
        (None, Some(budget)) if a.adaptive => {
            let ad = adaptive_source(a, g, budget, gpu_mem, min_window_s)?;
            let initial = ad.initial_points();
            adaptive = Some(ad);
            initial
        }
        (None, Some(budget)) => designed(a, g, budget, gpu_mem, min_window_s)?,
        (None, None) => g.points().into_iter().map(|p| (p, String::new())).collect(),
    };
    for (p, _) in planned.iter().take(1) {
        cost.llm_name(&p.llm)?;
    }
    crate::measure::plan::check_runnable(planned.iter().map(|(p, _)| p))?;
    let roles = planned
        .iter()
        .map(|(p, r)| (key_of(p, cost), r.clone()))
        .collect();
    let mut points: Vec<Point> = planned.into_iter().map(|(p, _)| p).collect();
    if let Some(s) = a.shard {
        points = s.take(points);
    }
    Ok(Planned {
        points,
        roles,
        adaptive,
    })
}

/// `--budget-s`: the D-optimal design of the grid's points within the budget.
fn designed(
    a: &MeasureArgs,
    g: &Grid,
    budget: f64,
    mem: Option<u64>,
    min_window_s: f64,
) -> Result<Vec<(Point, String)>> {
    let model = crate::analytic::model_by_name(&a.model)?;
    let mem = mem.unwrap_or(80 << 30);
    let c = super::design_input::candidates(
        super::design_input::grid_points(g, &a.model)?,
        a.prior.as_deref(),
        mem,
        min_window_s,
    )?;
    let p = crate::design::Planner::new(model.as_ref(), c.list.clone())?;
    let floor =
        super::design_input::min_points_per_requests(a.min_points_per_requests, &g.requests)?;
    let d = crate::design::plan_with_floor(&p, budget, &[], floor)?;
    eprintln!(
        "design: {} points, {:.1} s estimated of the {budget:.1} s budget (prior: {})",
        d.chosen.len(),
        d.cost_s,
        c.prior
    );
    if c.several_requests() {
        eprintln!(
            "{}",
            super::design_input::per_requests_line(&p, &d.chosen, floor)
        );
    }
    Ok(d.chosen
        .iter()
        .map(|&i| (c.points[i].clone(), "design".to_string()))
        .collect())
}

/// `--adaptive`: the candidates of the grid and the source that refines their design.
fn adaptive_source(
    a: &MeasureArgs,
    g: &Grid,
    budget: f64,
    mem: Option<u64>,
    min_window_s: f64,
) -> Result<Adaptive> {
    if g.requests.len() > 1 {
        anyhow::bail!(
            "--adaptive --requests {}: an adaptive design is refined for one requests value; plan several with `design --requests` or `measure --budget-s` without --adaptive",
            a.requests
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    let c = super::design_input::candidates(
        super::design_input::grid_points(g, &a.model)?,
        a.prior.as_deref(),
        mem.unwrap_or(80 << 30),
        min_window_s,
    )?;
    let keys = c.points.iter().map(|p| key_of(p, &RooflineCost)).collect();
    Adaptive::new(
        crate::analytic::model_by_name(&a.model)?,
        &c,
        keys,
        budget,
        a.initial_fraction,
        !a.quiet,
    )
}
