//! `measure --plan` / `--budget-s`: a design point that cannot run (its row `skipped`) is replaced
//! by the next-best point, the candidate the per-second greedy rule would add to the design's other
//! points (`design::next_best`), costing at most the lost point's estimated seconds and never a
//! point measured, planned, held out or failed. The replacement is measured next, with role
//! `design`, so the design keeps its size and its seconds.
//!
//! The state is read from the rows, so a resumed run reaches the same design: each design point
//! outside the plan is a replacement already made, paired with the failure it followed. Only designs of one setting (LLM, requests,
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
    /// Failed design points this run found no replacement for (said once, not at every point).
    unreplaceable: Vec<usize>,
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
            unreplaceable: Vec::new(),
        })
    }

    /// Queue a replacement for every failed design point not yet replaced.
    ///
    /// The rows are read in order: a design point outside the plan, at its first row, is the
    /// replacement of the latest failure still waiting for one (a replacement is measured next,
    /// so it follows its failure; replacements still queued pair the same way). A point fails at
    /// its first row that is not `ok` unless an `ok` row came before, and is replaced once.
    fn replace_failed(&mut self, rows: &[Row]) {
        let index = |k: &Key| self.keys.get(k).copied();
        let mut design = self.planned.clone();
        let (mut ok, mut failed, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for r in rows.iter().filter(|r| r.role == "design") {
            let Some(i) = index(&r.key()) else { continue };
            if !design.contains(&i) {
                design.push(i);
                waiting.pop();
            }
            if r.status.is_ok() {
                ok.push(i);
                waiting.retain(|&w| w != i);
            } else if !ok.contains(&i) && !failed.contains(&i) {
                failed.push(i);
                waiting.push(i);
            }
        }
        let queued: Vec<usize> = self
            .queue
            .iter()
            .filter(|(_, role)| role == "design")
            .filter_map(|(p, _)| index(&key_of(p, &RooflineCost)))
            .collect();
        for &i in &queued {
            if !design.contains(&i) {
                design.push(i);
                waiting.pop();
            }
        }
        waiting.retain(|i| !self.unreplaceable.contains(i));
        if waiting.is_empty() {
            return;
        }
        let Ok(p) = Planner::new(self.model.as_ref(), self.list.clone()) else {
            return;
        };
        let mut excluded: Vec<usize> = rows
            .iter()
            .filter_map(|r| index(&r.key()))
            .chain(queued)
            .chain(self.holdouts.iter().copied())
            .collect();
        for lost in waiting {
            let set: Vec<usize> = design
                .iter()
                .copied()
                .filter(|i| !failed.contains(i) || ok.contains(i))
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
                None => {
                    eprintln!(
                        "design point n={n} m={m} skipped: no point outside the design costs at most its {left:.1} s, so it is not replaced"
                    );
                    self.unreplaceable.push(lost);
                }
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
