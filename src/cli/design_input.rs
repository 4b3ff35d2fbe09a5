//! What `design` and `measure --budget-s` plan from: the candidate points of one LLM under one set
//! of run settings, each with the dry run's estimated seconds and the prior's energy per token,
//! and the hold-out points picked beside a design.

use crate::analytic::EnergyModel;
use crate::design::Candidate;
use crate::fit::file::FitFile;
use crate::measure::cost::RooflineCost;
use crate::measure::plan::{plan_rows, Grid, Point};
use anyhow::{bail, Result};
use std::path::Path;

/// The candidates of a design and what they came from.
pub struct Candidates {
    /// One point per candidate, in the same order.
    pub points: Vec<Point>,
    /// Estimated seconds of one run and runs per window, per candidate.
    pub est: Vec<(f64, u64)>,
    pub list: Vec<Candidate>,
    /// Points that cannot run on this GPU, with the reason.
    pub infeasible: Vec<(Point, String)>,
    /// One line saying which prior weights the points, and why.
    pub prior: String,
}

/// The points of a one-LLM grid (`grid.llms` has one entry, every other axis one value).
pub fn grid_points(grid: &Grid) -> Result<Vec<Point>> {
    grid.validate()?;
    for (flag, n) in [
        ("--llm", grid.llms.len()),
        ("--requests", grid.requests.len()),
        ("--max-batch-size", grid.max_batch_sizes.len()),
        ("--dtype", grid.dtypes.len()),
    ] {
        if n != 1 {
            bail!("{flag}: a design is planned for one value, got {n}");
        }
    }
    Ok(grid.points())
}

/// Cost and prior of every point on a GPU with `mem` bytes. `prior`: a fit file whose surface
/// weights the points; without one, the roofline estimate: energy per token ∝ a run's estimated
/// seconds / (requests · output_tokens), i.e. constant power. That needs no measurement of the
/// LLM and follows its exact shape (KV cache size and so concurrency included), which the nearest
/// published surface would not.
pub fn candidates(
    points: Vec<Point>,
    prior: Option<&Path>,
    mem: u64,
    min_window_s: f64,
) -> Result<Candidates> {
    let rows = plan_rows(&points, &RooflineCost, mem, min_window_s)?;
    let llm = rows.first().map(|r| r.llm.clone()).unwrap_or_default();
    let fit = prior.map(FitFile::read).transpose()?;
    let model: Option<Box<dyn EnergyModel>> = fit.as_ref().map(|f| f.energy_model()).transpose()?;
    let mut out = Candidates {
        points: Vec::new(),
        est: Vec::new(),
        list: Vec::new(),
        infeasible: Vec::new(),
        prior: match (&fit, prior) {
            (Some(f), Some(path)) if f.llm != llm => format!(
                "{} (model {} of {}, another LLM: it only weights the points, it is never fitted)",
                path.display(),
                f.model,
                f.llm
            ),
            (Some(f), Some(path)) => format!(
                "{} (model {} of {}: it only weights the points, it is never fitted)",
                path.display(),
                f.model,
                f.llm
            ),
            _ => format!(
                "roofline estimate of {llm}'s shape at constant power (no measurement of this LLM)"
            ),
        },
    };
    for r in rows {
        let p = r.point.clone();
        let (est, runs) = match r.fit {
            Ok(x) => x,
            Err(why) => {
                out.infeasible.push((p, why));
                continue;
            }
        };
        let (n, m) = (p.input_tokens as f64, p.output_tokens as f64);
        let prior_e = match (&fit, &model) {
            (Some(f), Some(model)) => model.energy_per_token(&f.values(), n, m),
            _ => est / (p.requests as f64 * m),
        };
        if !(prior_e > 0.0 && prior_e.is_finite()) {
            bail!(
                "--prior {}: predicts energy per token {prior_e} at input_tokens {n}, output_tokens {m}; a prior must be positive over the grid",
                prior.map_or("(roofline)".into(), |p| p.display().to_string())
            );
        }
        out.list.push(Candidate {
            input_tokens: n,
            output_tokens: m,
            cost_s: est * runs as f64,
            prior_e,
        });
        out.points.push(p);
        out.est.push((est, runs));
    }
    Ok(out)
}

/// `count` hold-out points outside `chosen`, spread over the grid: each in turn the candidate
/// farthest (in log₂ n, log₂ m) from the design and the hold-outs so far, among those costing at
/// most `max_s`; the first is taken from the longest outputs that fit (where the KV cache limits
/// concurrency and a fit is least sure). Ties go to the cheaper point.
pub fn holdouts(c: &[Candidate], chosen: &[usize], count: usize, max_s: f64) -> Vec<usize> {
    let d = |a: &Candidate, b: &Candidate| {
        (a.input_tokens.log2() - b.input_tokens.log2())
            .hypot(a.output_tokens.log2() - b.output_tokens.log2())
    };
    let mut picked: Vec<usize> = Vec::new();
    let free = |picked: &[usize]| -> Vec<usize> {
        (0..c.len())
            .filter(|i| !chosen.contains(i) && !picked.contains(i) && c[*i].cost_s <= max_s)
            .collect()
    };
    while picked.len() < count {
        let options = free(&picked);
        let first = picked.is_empty();
        let longest = options
            .iter()
            .map(|&i| c[i].output_tokens)
            .fold(0.0, f64::max);
        let best = options
            .into_iter()
            .filter(|&i| !first || c[i].output_tokens == longest)
            .map(|i| {
                let near = chosen
                    .iter()
                    .chain(&picked)
                    .map(|&j| d(&c[i], &c[j]))
                    .fold(f64::INFINITY, f64::min);
                (i, near)
            })
            .max_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then(c[b.0].cost_s.total_cmp(&c[a.0].cost_s))
            });
        match best {
            Some((i, _)) => picked.push(i),
            None => break,
        }
    }
    picked
}
