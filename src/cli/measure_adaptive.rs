//! `measure --budget-s S --adaptive`: measure an initial design, then after every point refit the
//! model to what is measured and pick the next point by the largest expected reduction of the
//! sweet spots' uncertainty per second (`design::next_point`), until the budget is spent.
//!
//! Seconds are counted in the design's currency, the dry run's estimate of each point's measured
//! window, except that a point whose measured window took longer counts what it took: the budget
//! is then never overrun by more than the last point's misestimate, whether the roofline estimate
//! is optimistic (a real GPU) or pessimistic (the stand-in). Rows already in the file (`--resume`)
//! count as measured and are never measured again; hold-out rows neither count nor are fitted.

use super::design_input::Candidates;
use crate::analytic::EnergyModel;
use crate::dataset::Obs;
use crate::design::{initial_design, refine, Candidate, Planner};
use crate::measure::rows::Row;
use crate::measure::{Key, Point, PointSource};
use anyhow::Result;
use std::collections::{HashMap, VecDeque};

/// The point source of an adaptive design over one LLM's candidates.
pub struct Adaptive {
    model: Box<dyn EnergyModel>,
    points: Vec<Point>,
    /// Cost and the prior's energy per token of each candidate (the prior before any fit).
    prior: Vec<Candidate>,
    keys: HashMap<Key, usize>,
    initial: VecDeque<usize>,
    /// Candidates handed out (measured or in flight), in order.
    issued: Vec<usize>,
    budget_s: f64,
    inputs: Vec<f64>,
    /// Whether the last request found a point to measure (for `left`).
    more: bool,
    log: bool,
}

impl Adaptive {
    /// The initial design spends at most `initial_fraction` of `budget_s`, or the cheapest set
    /// that identifies the model where that is more; `keys[i]` identifies `c.points[i]` in rows.
    pub fn new(
        model: Box<dyn EnergyModel>,
        c: &Candidates,
        keys: Vec<Key>,
        budget_s: f64,
        initial_fraction: f64,
        log: bool,
    ) -> Result<Adaptive> {
        let d = initial_design(
            &Planner::new(model.as_ref(), c.list.clone())?,
            budget_s,
            initial_fraction,
        )?;
        let (initial, cost) = (d.chosen, d.cost_s);
        if log {
            eprintln!(
                "adaptive design: initial {} points, {cost:.1} s estimated of the {budget_s:.1} s budget (prior: {}); then one point at a time",
                initial.len(),
                c.prior
            );
        }
        let mut inputs: Vec<f64> = c.list.iter().map(|c| c.input_tokens).collect();
        inputs.sort_by(f64::total_cmp);
        inputs.dedup();
        Ok(Adaptive {
            model,
            points: c.points.clone(),
            prior: c.list.clone(),
            keys: keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect(),
            initial: initial.into(),
            issued: Vec::new(),
            budget_s,
            inputs,
            more: true,
            log,
        })
    }

    /// The initial design's points, in the order they are measured.
    pub fn initial_points(&self) -> Vec<(Point, String)> {
        self.initial
            .iter()
            .map(|&i| (self.points[i].clone(), "design".to_string()))
            .collect()
    }

    /// The candidates measured (rows of this design) plus those handed out, and the seconds they
    /// count; and the observations to fit.
    fn state(&self, rows: &[Row]) -> (Vec<usize>, f64, Vec<Obs>) {
        let mut done: Vec<usize> = Vec::new();
        let mut spent = 0.0;
        let mut obs = Vec::new();
        for r in rows.iter().filter(|r| r.role != "holdout") {
            let Some(&i) = self.keys.get(&r.key()) else {
                continue;
            };
            if done.contains(&i) {
                continue;
            }
            done.push(i);
            spent += self.prior[i].cost_s.max(r.window_s.unwrap_or(0.0));
            if let (true, Some(e)) = (r.status.is_ok(), r.energy_j) {
                obs.push(Obs {
                    input_tokens: r.input_tokens as f64,
                    output_tokens: r.output_tokens as f64,
                    energy_per_token_j: e / (r.requests * r.output_tokens) as f64,
                    concurrency: None,
                });
            }
        }
        for &i in &self.issued {
            if !done.contains(&i) {
                done.push(i);
                spent += self.prior[i].cost_s;
            }
        }
        (done, spent, obs)
    }
}

impl PointSource for Adaptive {
    fn next(&mut self, rows: &[Row]) -> Option<(Point, String)> {
        let (done, spent, obs) = self.state(rows);
        while let Some(i) = self.initial.pop_front() {
            if !done.contains(&i) {
                self.issued.push(i);
                return Some((self.points[i].clone(), "design".into()));
            }
        }
        let (j, mape) = refine(
            self.model.as_ref(),
            &self.prior,
            &done,
            &obs,
            self.budget_s - spent,
            &self.inputs,
        );
        self.more = j.is_some();
        let j = j?;
        if self.log {
            eprintln!(
                "adaptive: next n={} m={} ({:.1} s estimated; {spent:.1} of {:.1} s spent; {} points fitted{})",
                self.points[j].input_tokens,
                self.points[j].output_tokens,
                self.prior[j].cost_s,
                self.budget_s,
                obs.len(),
                mape.map_or(String::from(", prior weights"), |m| format!(
                    ", MAPE {m:.2} %"
                ))
            );
        }
        self.issued.push(j);
        Some((self.points[j].clone(), "design".into()))
    }

    fn left(&self) -> usize {
        self.initial.len() + usize::from(self.more)
    }

    fn queued(&self) -> Vec<Point> {
        self.initial
            .iter()
            .map(|&i| self.points[i].clone())
            .collect()
    }
}
