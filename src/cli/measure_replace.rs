//! `measure --plan` / `--budget-s`: a design point that cannot run (its row `skipped`) is replaced
//! by the next-best point, the candidate the per-second greedy rule would add to the design's other
//! points (`design::next_best`), costing at most the lost point's estimated seconds and never a
//! point measured, planned, held out or failed. The replacement is measured next, with role
//! `design`, so the design keeps its size and its seconds.
//!
//! The state is read from the rows alone, so a resumed run reaches the same design: each design
//! row outside the plan is a replacement already made, and the first that many failed design
//! points (in row order) count as replaced. Only designs of one setting (LLM, requests,
//! max_batch_size, max_num_tokens, dtype) are repaired; others, and sharded runs (a shard does not
//! see the others' rows), keep the fixed list.

use super::design_input::{candidates, grid_points};
use crate::analytic::{model_by_name, EnergyModel};
use crate::design::{next_best, Candidate, Planner};
use crate::measure::cost::RooflineCost;
use crate::measure::plan::Grid;
use crate::measure::rows::Row;
use crate::measure::run::key_of;
use crate::measure::{Key, Point, PointSource};
use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// The points of a plan, in order, with a replacement for each design point that fails.
pub struct Replacing {
    model: Box<dyn EnergyModel>,
    points: Vec<Point>,
    list: Vec<Candidate>,
    keys: HashMap<Key, usize>,
    queue: VecDeque<(Point, String)>,
    /// Candidates of the plan's design points (repeat 0).
    planned: Vec<usize>,
    /// Candidates of the plan's hold-outs: never chosen as a replacement.
    holdouts: Vec<usize>,
}

impl Replacing {
    /// The repairing source of `queue` (the plan's points still to measure, with roles) and
    /// `plan` (all of the plan's points), its replacements drawn from the grid of `inputs` ×
    /// `outputs` (the run's, which a plan file leaves at the published lengths) and the plan's own
    /// lengths; `None` where the plan is not one design of one setting (then nothing is replaced).
    pub fn new(
        queue: VecDeque<(Point, String)>,
        plan: &[(Point, String)],
        (inputs, outputs): (&[u64], &[u64]),
        model: &str,
        prior: Option<&Path>,
        mem: u64,
        min_window_s: f64,
    ) -> Option<Replacing> {
        let design: Vec<&Point> = plan
            .iter()
            .filter(|(p, r)| r == "design" && p.repeat == 0)
            .map(|(p, _)| p)
            .collect();
        let first = design.first()?;
        let setting = |p: &Point| {
            (
                key_of(p, &RooflineCost).llm,
                p.requests,
                p.max_batch_size,
                p.max_num_tokens,
                p.dtype.clone(),
            )
        };
        if plan.iter().any(|(p, _)| setting(p) != setting(first)) {
            return None;
        }
        let lengths = |grid: &[u64], f: fn(&Point) -> u64| {
            let mut v = grid.to_vec();
            v.extend(plan.iter().map(|(p, _)| f(p)));
            v.sort_unstable();
            v.dedup();
            v
        };
        let grid = Grid {
            llms: vec![first.llm.clone()],
            inputs: lengths(inputs, |p| p.input_tokens),
            outputs: lengths(outputs, |p| p.output_tokens),
            requests: vec![first.requests],
            max_batch_sizes: vec![first.max_batch_size],
            max_num_tokens: first.max_num_tokens,
            dtypes: vec![first.dtype.clone()],
            repeats: 1,
        };
        let c = candidates(grid_points(&grid, model).ok()?, prior, mem, min_window_s).ok()?;
        let keys: HashMap<Key, usize> = c
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (key_of(p, &RooflineCost), i))
            .collect();
        let index = |role: &'static str| {
            plan.iter()
                .filter(move |(p, r)| r == role && p.repeat == 0)
                .map(|(p, _)| keys.get(&key_of(p, &RooflineCost)).copied())
        };
        Some(Replacing {
            model: model_by_name(model).ok()?,
            // Every design point must be a candidate; a hold-out that is not can never be chosen.
            planned: index("design").collect::<Option<Vec<usize>>>()?,
            holdouts: index("holdout").flatten().collect(),
            points: c.points,
            list: c.list,
            keys,
            queue,
        })
    }

    /// Queue a replacement for every failed design point not yet replaced.
    fn replace_failed(&mut self, rows: &[Row]) {
        let index = |k: &Key| self.keys.get(k).copied();
        let queued: Vec<usize> = self
            .queue
            .iter()
            .filter(|(_, role)| role == "design")
            .filter_map(|(p, _)| index(&key_of(p, &RooflineCost)))
            .collect();
        let mut design = self.planned.clone();
        let mut failed = Vec::new();
        for r in rows.iter().filter(|r| r.role == "design") {
            let Some(i) = index(&r.key()) else { continue };
            if !design.contains(&i) {
                design.push(i);
            }
            let measured = rows
                .iter()
                .any(|o| o.status.is_ok() && index(&o.key()) == Some(i));
            if !measured && !failed.contains(&i) {
                failed.push(i);
            }
        }
        for &i in &queued {
            if !design.contains(&i) {
                design.push(i);
            }
        }
        // Every design point outside the plan replaced one failure, in order.
        let made = design.iter().filter(|i| !self.planned.contains(i)).count();
        let mut excluded: Vec<usize> = rows
            .iter()
            .filter_map(|r| index(&r.key()))
            .chain(queued)
            .chain(self.holdouts.iter().copied())
            .collect();
        for &lost in failed.iter().skip(made) {
            let Ok(p) = Planner::new(self.model.as_ref(), self.list.clone()) else {
                return;
            };
            let set: Vec<usize> = design
                .iter()
                .copied()
                .filter(|i| !failed.contains(i))
                .collect();
            let (n, m) = (
                self.points[lost].input_tokens,
                self.points[lost].output_tokens,
            );
            let left = self.list[lost].cost_s;
            match next_best(&p, &set, &excluded, left) {
                Some(j) => {
                    let q = &self.points[j];
                    eprintln!(
                        "design point n={n} m={m} skipped: replaced by n={} m={} ({:.1} s estimated)",
                        q.input_tokens, q.output_tokens, self.list[j].cost_s
                    );
                    design.push(j);
                    excluded.push(j);
                    self.queue.push_front((q.clone(), "design".into()));
                }
                None => eprintln!(
                    "design point n={n} m={m} skipped: no point outside the design costs at most its {left:.1} s, so it is not replaced"
                ),
            }
        }
    }
}

impl PointSource for Replacing {
    fn next(&mut self, rows: &[Row]) -> Option<(Point, String)> {
        self.replace_failed(rows);
        self.queue.pop_front()
    }

    fn left(&self) -> usize {
        self.queue.len()
    }

    fn queued(&self) -> Vec<Point> {
        self.queue.iter().map(|(p, _)| p.clone()).collect()
    }
}
