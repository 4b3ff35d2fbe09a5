//! What `design` and `measure --budget-s` plan from: the candidate points of one LLM under one set
//! of run settings (or several requests values, for a model that spans them), each with the dry
//! run's estimated seconds, the prior's energy per token and the engine's predicted concurrency,
//! the hold-out points picked beside a design, and the design floor per requests value.

use crate::analytic::flops_mem_batch::{concurrency_of, ConcurrencyFn, FlopsMemBatch, Settings};
use crate::analytic::EnergyModel;
use crate::design::{BoundModel, Candidate, Planner};
use crate::fit::file::FitFile;
use crate::measure::cost::RooflineCost;
use crate::measure::plan::{dtype_bytes, plan_rows, Grid, Point};
use anyhow::{bail, Result};
use std::path::Path;

/// The model whose concurrency term tells rows of different requests values apart, so one
/// design (and one fit) may span several of them.
pub const REQUESTS_MODEL: &str = "flops-mem-batch";

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
    /// c(n, m) of each requests value (ascending), where the LLM's shape gives one.
    pub concurrency: Vec<(u64, ConcurrencyFn)>,
}

impl Candidates {
    /// flops-mem-batch bound to each requests value's concurrency, for that value's sweet spots.
    pub fn bound_models(&self) -> Vec<BoundModel> {
        self.concurrency
            .iter()
            .map(|(r, c)| BoundModel {
                requests: *r as f64,
                model: Box::new(FlopsMemBatch::new(c.clone())),
            })
            .collect()
    }

    /// Whether the candidates span several requests values.
    pub fn several_requests(&self) -> bool {
        self.points
            .windows(2)
            .any(|w| w[0].requests != w[1].requests)
    }
}

/// The design floor per requests value: the flag, or the default where several values are given;
/// a floor with one value is refused (it would only restate the model's own minimum).
pub(crate) fn min_points_per_requests(flag: Option<usize>, requests: &[u64]) -> Result<usize> {
    match (flag, requests) {
        (Some(k), [r]) if k > 0 => bail!(
            "--min-points-per-requests {k}: a floor per requests value needs several --requests values, got one ({r})"
        ),
        (Some(k), _) => Ok(k),
        (None, [_, _, ..]) => Ok(crate::design::floor::DEFAULT_MIN_POINTS_PER_REQUESTS),
        (None, _) => Ok(0),
    }
}

/// "design points per requests value: 1: 8, 10: 6, 100: 19 (at least 6 each)".
pub(crate) fn per_requests_line(p: &Planner, set: &[usize], floor: usize) -> String {
    let counts: Vec<String> = crate::design::floor::counts(p, set)
        .iter()
        .map(|(r, n)| format!("{r}: {n}"))
        .collect();
    let at_least = match floor {
        0 => "no floor".to_string(),
        k => format!("at least {k} each, --min-points-per-requests"),
    };
    format!(
        "design points per requests value: {} ({at_least})",
        counts.join(", ")
    )
}

/// The points of a one-LLM grid (`grid.llms` has one entry, every other axis one value; requests
/// may take several values when `model` spans them).
pub fn grid_points(grid: &Grid, model: &str) -> Result<Vec<Point>> {
    grid.validate()?;
    for (flag, n) in [
        ("--llm", grid.llms.len()),
        ("--max-batch-size", grid.max_batch_sizes.len()),
        ("--dtype", grid.dtypes.len()),
    ] {
        if n != 1 {
            bail!("{flag}: a design is planned for one value, got {n}");
        }
    }
    if grid.requests.len() > 1 && model != REQUESTS_MODEL {
        let list: Vec<String> = grid.requests.iter().map(u64::to_string).collect();
        bail!(
            "--requests {}: model {model} does not model the number of requests, so one design cannot span several values; plan each value apart, or use --model {REQUESTS_MODEL}",
            list.join(",")
        );
    }
    // A repeated value is refused by `Grid::validate` above.
    Ok(grid.points())
}

/// c(n, m) of each requests value among `points` (which share one LLM and the other settings)
/// on a GPU of `mem` bytes; empty where the LLM's shape or KV capacity gives none (a model that
/// needs it then refuses the candidates, naming a point).
fn concurrency_by_requests(points: &[Point], mem: u64) -> Vec<(u64, ConcurrencyFn)> {
    let Some(first) = points.first() else {
        return Vec::new();
    };
    let (Ok(cfg), Some(bytes)) = (
        crate::llm::resolve_llm(&first.llm),
        dtype_bytes(&first.dtype),
    ) else {
        return Vec::new();
    };
    let mut rs: Vec<u64> = points.iter().map(|p| p.requests).collect();
    rs.sort_unstable();
    rs.dedup();
    rs.into_iter()
        .filter_map(|r| {
            let s = Settings {
                requests: r as usize,
                max_batch_size: first.max_batch_size as usize,
                max_num_tokens: first.max_num_tokens as usize,
                dtype_bytes: bytes,
                gpu_memory_bytes: mem as f64,
            };
            concurrency_of(&cfg, s).ok().map(|c| (r, c))
        })
        .collect()
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
    let concurrency = concurrency_by_requests(&points, mem);
    let mut out = Candidates {
        concurrency,
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
        let concurrency = out
            .concurrency
            .iter()
            .find(|(r, _)| *r == p.requests)
            .map(|(_, c)| c(n, m));
        // A prior fit of flops-mem-batch predicts at this point's own requests value.
        let prior_e = match (&fit, &model) {
            (Some(f), Some(model)) => {
                let o = crate::dataset::Obs {
                    input_tokens: n,
                    output_tokens: m,
                    energy_per_token_j: 0.0,
                    concurrency,
                };
                model.energy_per_token_at(&f.values(), &o)
            }
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
            requests: p.requests as f64,
            cost_s: est * runs as f64,
            prior_e,
            concurrency,
        });
        out.points.push(p);
        out.est.push((est, runs));
    }
    Ok(out)
}

/// `count` hold-out points outside `chosen`, spread over the grid: each in turn the candidate
/// farthest (in log₂ n, log₂ m, log₂ R) from the design and the hold-outs so far, among those
/// costing at most `max_s`; the first is taken from the longest outputs that fit (where the KV
/// cache limits concurrency and a fit is least sure). Ties go to the cheaper point.
pub fn holdouts(c: &[Candidate], chosen: &[usize], count: usize, max_s: f64) -> Vec<usize> {
    let d = |a: &Candidate, b: &Candidate| {
        (a.input_tokens.log2() - b.input_tokens.log2())
            .hypot(a.output_tokens.log2() - b.output_tokens.log2())
            .hypot(a.requests.log2() - b.requests.log2())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::FlopsMemBatch;
    use crate::design::{plan, Planner};

    const MEM: u64 = 80 << 30;

    fn over(requests: &[u64]) -> Candidates {
        let grid = Grid {
            requests: requests.to_vec(),
            ..Grid::default()
        };
        candidates(grid_points(&grid, REQUESTS_MODEL).unwrap(), None, MEM, 5.0).unwrap()
    }

    /// Predicted relative standard error (%) of eta when every candidate is measured.
    fn eta_se_all(c: &Candidates) -> anyhow::Result<f64> {
        let model = FlopsMemBatch::unbound();
        let p = Planner::new(&model, c.list.clone())?;
        let all: Vec<usize> = (0..c.list.len()).collect();
        let pred = p
            .predict(&all, 0.015, &[])
            .ok_or_else(|| anyhow::anyhow!("not identified"))?;
        Ok(pred.coef_rel_se_pct[6])
    }

    /// eta is the energy a decode step shares among its sequences: at one requests value the
    /// concurrency barely varies (R = 1: not at all, so eta is alpha), and only a design across
    /// requests values tells it apart.
    #[test]
    fn a_design_across_requests_identifies_eta() {
        let one = eta_se_all(&over(&[1])).unwrap_err();
        assert!(format!("{one:#}").contains("singular"), "{one:#}");
        let hundred = eta_se_all(&over(&[100])).unwrap();
        assert!(hundred > 1000.0, "R = 100 alone: eta s.e. {hundred} %");
        let c = over(&[1, 10, 100]);
        assert!(c.several_requests());
        let three = eta_se_all(&c).unwrap();
        assert!(three < 1.0, "R = 1, 10, 100: eta s.e. {three} %");
        // A budget of a third of the grid still pins it down.
        let model = FlopsMemBatch::unbound();
        let p = Planner::new(&model, c.list.clone()).unwrap();
        let d = plan(&p, 300.0, &[]).unwrap();
        assert!(d.cost_s <= 300.0);
        let se = p.predict(&d.chosen, 0.015, &[]).unwrap().coef_rel_se_pct[6];
        assert!(se < 5.0, "eta s.e. {se} % at 300 s");
        let rs: std::collections::BTreeSet<u64> =
            d.chosen.iter().map(|&i| c.points[i].requests).collect();
        assert!(
            rs.len() > 1,
            "the design measures one requests value: {rs:?}"
        );
    }

    /// Each candidate's concurrency is the engine schedule's at its own requests value.
    #[test]
    fn candidates_carry_their_requests_and_concurrency() {
        let c = over(&[1, 10, 100]);
        assert_eq!(c.list.len(), 3 * 49);
        for (cand, p) in c.list.iter().zip(&c.points) {
            assert_eq!(cand.requests, p.requests as f64);
            let conc = cand.concurrency.unwrap();
            assert!(conc >= 1.0 && conc <= cand.requests + 1e-9, "{cand:?}");
        }
        let at = |r: f64| {
            c.list
                .iter()
                .find(|x| x.requests == r && x.input_tokens == 64.0 && x.output_tokens == 64.0)
                .unwrap()
                .concurrency
                .unwrap()
        };
        assert_eq!(at(1.0), 1.0);
        assert!(at(100.0) > 10.0 * at(1.0), "{}", at(100.0));
        assert_eq!(c.bound_models().len(), 3);
    }

    #[test]
    fn several_requests_need_a_model_that_spans_them() {
        let grid = Grid {
            requests: vec![1, 10, 100],
            ..Grid::default()
        };
        let e = grid_points(&grid, "flops-mem").unwrap_err().to_string();
        for want in [
            "--requests 1,10,100",
            "flops-mem",
            "flops-mem-batch",
            "each value apart",
        ] {
            assert!(e.contains(want), "{want:?} not in {e}");
        }
        let grid = Grid {
            requests: vec![10, 10],
            ..Grid::default()
        };
        let e = grid_points(&grid, REQUESTS_MODEL).unwrap_err().to_string();
        assert!(
            e.contains("--requests") && e.contains("10 is listed twice"),
            "{e}"
        );
    }

    /// Hold-outs spread over log R too: with the design at one requests value, the next farthest
    /// points lie at another.
    #[test]
    fn holdouts_spread_over_requests() {
        let c = over(&[1, 100]);
        let chosen: Vec<usize> = (0..c.list.len())
            .filter(|&i| c.list[i].requests == 1.0)
            .collect();
        let h = holdouts(&c.list, &chosen, 2, f64::INFINITY);
        assert_eq!(h.len(), 2);
        assert!(h.iter().all(|&i| c.list[i].requests == 100.0), "{h:?}");
    }

    /// Without a floor the design over requests is the one planned before floors existed (llama-3.2-1b,
    /// 300 s, in the order chosen); the floor then lifts R = 10 from 2 points to 6 or more.
    #[test]
    fn a_floor_of_zero_keeps_the_design_without_one() {
        const BEFORE: [(u64, u64, u64); 47] = [
            (64, 64, 100),
            (4096, 64, 10),
            (64, 256, 100),
            (512, 64, 100),
            (128, 2048, 100),
            (64, 64, 1),
            (4096, 256, 100),
            (4096, 1024, 100),
            (1024, 64, 100),
            (4096, 64, 100),
            (128, 64, 1),
            (64, 2048, 100),
            (128, 256, 100),
            (128, 64, 100),
            (256, 64, 1),
            (64, 512, 100),
            (64, 4096, 100),
            (2048, 64, 100),
            (64, 128, 1),
            (2048, 512, 100),
            (64, 128, 100),
            (4096, 128, 100),
            (256, 64, 100),
            (64, 256, 1),
            (128, 512, 100),
            (2048, 1024, 100),
            (1024, 128, 100),
            (128, 128, 1),
            (128, 4096, 100),
            (128, 256, 1),
            (4096, 512, 100),
            (64, 1024, 100),
            (512, 128, 100),
            (64, 512, 1),
            (256, 128, 1),
            (256, 256, 100),
            (2048, 2048, 100),
            (4096, 128, 10),
            (128, 128, 100),
            (128, 512, 1),
            (256, 512, 100),
            (256, 4096, 100),
            (256, 256, 1),
            (4096, 2048, 100),
            (2048, 128, 100),
            (256, 512, 1),
            (128, 1024, 100),
        ];
        let c = over(&[1, 10, 100]);
        let model = FlopsMemBatch::unbound();
        let p = Planner::new(&model, c.list.clone()).unwrap();
        let at = |d: &crate::design::Design| -> Vec<(u64, u64, u64)> {
            d.chosen
                .iter()
                .map(|&i| {
                    let q = &c.points[i];
                    (q.input_tokens, q.output_tokens, q.requests)
                })
                .collect()
        };
        let d = crate::design::plan_with_floor(&p, 300.0, &[], 0).unwrap();
        assert_eq!(at(&d), BEFORE);
        let count = |v: &[(u64, u64, u64)], r: u64| v.iter().filter(|t| t.2 == r).count();
        assert_eq!(count(&BEFORE, 10), 2);
        let floored = crate::design::plan_with_floor(&p, 300.0, &[], 6).unwrap();
        assert!(floored.cost_s <= 300.0);
        for r in [1, 10, 100] {
            assert!(count(&at(&floored), r) >= 6, "R = {r}: {:?}", at(&floored));
        }
    }
}
