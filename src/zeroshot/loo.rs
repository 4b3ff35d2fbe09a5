//! Leave-one-LLM-out: for each LLM, calibrate on the others, predict it from its shape, and score
//! the prediction over its points; the two baselines are scored the same way.
//!
//! An LLM's own sweet spots come from the flops-mem surface fitted to its own points (for the
//! published surfaces, the published coefficients themselves); a predicted m* that is undefined
//! counts as a miss (its error is null).

use super::calibrate::{calibrate, fit_flops_mem, Constants, Prepared, MIN_LLMS};
use super::model::{flops_mem_basis, project};
use super::{baselines, sweet_spot, Setting, GRID};
use crate::fit::table::Table;
use anyhow::{Context, Result};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// m* error (%) per input length, in grid order (serialised as a JSON object keyed by n).
#[derive(Clone, Debug, PartialEq)]
pub struct SweetSpotErrors(pub Vec<(usize, Option<f64>)>);

impl Serialize for SweetSpotErrors {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (n, e) in &self.0 {
            map.serialize_entry(&n.to_string(), e)?;
        }
        map.end()
    }
}

/// One LLM's score.
#[derive(Clone, Debug, Serialize)]
pub struct LooRow {
    pub llm: String,
    pub mape_pct: f64,
    pub max_error_pct: f64,
    pub sweet_spot_error_pct: SweetSpotErrors,
}

/// One predictor's scores over all LLMs.
#[derive(Clone, Debug, Serialize)]
pub struct LooTable {
    pub llms: Vec<LooRow>,
    pub mean_mape_pct: f64,
}

impl LooTable {
    fn new(llms: Vec<LooRow>) -> LooTable {
        let mean_mape_pct = llms.iter().map(|r| r.mape_pct).sum::<f64>() / llms.len() as f64;
        LooTable {
            llms,
            mean_mape_pct,
        }
    }
    /// Largest per-LLM MAPE.
    pub fn worst_mape_pct(&self) -> f64 {
        self.llms.iter().map(|r| r.mape_pct).fold(0.0, f64::max)
    }
    /// Largest |m* error| at input length n; `None` when some prediction has no m* there.
    pub fn worst_sweet_spot_pct(&self, n: usize) -> Option<f64> {
        self.llms.iter().try_fold(0.0f64, |w, r| {
            let e = r.sweet_spot_error_pct.0.iter().find(|(k, _)| *k == n)?.1?;
            Some(w.max(e.abs()))
        })
    }
}

/// The zero-shot model and both baselines, left out one LLM at a time.
#[derive(Clone, Debug, Serialize)]
pub struct Loo {
    pub zero_shot: LooTable,
    pub params_proportional: LooTable,
    pub nearest_llm: LooTable,
}

/// Score flops-mem coefficients `pred` against an LLM's points and its own sweet spots.
pub fn score(llm: &str, points: &[(usize, usize, f64)], own: &[f64], pred: &[f64]) -> LooRow {
    let errs: Vec<f64> = points
        .iter()
        .map(|&(n, m, e)| {
            let b = flops_mem_basis(n as f64, m as f64);
            let p: f64 = b.iter().zip(pred).map(|(x, c)| x * c).sum();
            100.0 * (p / e - 1.0).abs()
        })
        .collect();
    let sweet = GRID
        .iter()
        .map(|&n| {
            let err = match (sweet_spot(pred, n as f64), sweet_spot(own, n as f64)) {
                (Some(p), Some(t)) => Some(100.0 * (p / t - 1.0)),
                _ => None,
            };
            (n, err)
        })
        .collect();
    LooRow {
        llm: llm.to_string(),
        mape_pct: errs.iter().sum::<f64>() / errs.len() as f64,
        max_error_pct: errs.iter().copied().fold(0.0, f64::max),
        sweet_spot_error_pct: SweetSpotErrors(sweet),
    }
}

/// Why leave-one-out cannot run on `data` (each LLM left out in turn, [`MIN_LLMS`] to calibrate
/// on), or `None` when it can.
pub fn too_few(data: &[Prepared]) -> Option<String> {
    let names: Vec<&str> = data.iter().map(|d| d.cfg.name.as_str()).collect();
    (data.len() < MIN_LLMS + 1).then(|| {
        format!(
            "needs at least {} LLMs (each left out in turn, {MIN_LLMS} to calibrate on); the data \
             has {} ({})",
            MIN_LLMS + 1,
            data.len(),
            names.join(", ")
        )
    })
}

/// Leave each LLM of `data` out in turn.
pub fn leave_one_out(data: &[Prepared], s: &Setting) -> Result<Loo> {
    let own: Vec<Vec<f64>> = data
        .iter()
        .map(|d| fit_flops_mem(&d.points).with_context(|| format!("LLM {}", d.cfg.name)))
        .collect::<Result<_>>()?;
    let (mut zs, mut pp, mut nl) = (Vec::new(), Vec::new(), Vec::new());
    for (i, target) in data.iter().enumerate() {
        let name = &target.cfg.name;
        let rest: Vec<Prepared> = (0..data.len())
            .filter(|&j| j != i)
            .map(|j| data[j].clone())
            .collect();
        let c = calibrate(&rest).with_context(|| format!("leaving out {name}"))?;
        let proj = project(&target.cfg, s, &GRID, &c.values, &c.covariance)
            .with_context(|| format!("predicting {name}"))?;
        zs.push(score(name, &target.points, &own[i], &proj.coefs));
        let others: Vec<&Prepared> = rest.iter().collect();
        let own_others: Vec<&Vec<f64>> = (0..data.len())
            .filter(|&j| j != i)
            .map(|j| &own[j])
            .collect();
        let p = baselines::params_proportional(target, &others)?;
        pp.push(score(name, &target.points, &own[i], &p));
        let (p, _) = baselines::nearest_llm(target, &others, &own_others)?;
        nl.push(score(name, &target.points, &own[i], &p));
    }
    Ok(Loo {
        zero_shot: LooTable::new(zs),
        params_proportional: LooTable::new(pp),
        nearest_llm: LooTable::new(nl),
    })
}

/// Each LLM of `data` scored against the calibration `c` that includes it: how closely the shared
/// constants can follow that LLM when it is part of the fit. An LLM missed here is one the model's
/// counts do not describe, not one the other LLMs failed to pin down.
pub fn in_sample(data: &[Prepared], s: &Setting, c: &Constants) -> Result<LooTable> {
    let rows = data
        .iter()
        .map(|d| {
            let name = &d.cfg.name;
            let own = fit_flops_mem(&d.points).with_context(|| format!("LLM {name}"))?;
            let proj = project(&d.cfg, s, &GRID, &c.values, &c.covariance)
                .with_context(|| format!("predicting {name}"))?;
            Ok(score(name, &d.points, &own, &proj.coefs))
        })
        .collect::<Result<_>>()?;
    Ok(LooTable::new(rows))
}

/// LLM, MAPE, max error and the m* error at each input length of `sweet_spot_at`: the cells every
/// score table starts with.
fn score_cells(r: &LooRow, sweet_spot_at: &[usize]) -> Vec<String> {
    let mut row = vec![
        r.llm.clone(),
        format!("{:.2}", r.mape_pct),
        format!("{:.2}", r.max_error_pct),
    ];
    row.extend(sweet_spot_at.iter().map(|n| {
        let e = r.sweet_spot_error_pct.0.iter().find(|(k, _)| k == n);
        match e.and_then(|(_, e)| *e) {
            Some(e) => format!("{e:+.1}"),
            None => "none".into(),
        }
    }));
    row
}

fn score_head(sweet_spot_at: &[usize]) -> Vec<String> {
    let mut head = vec!["LLM".to_string(), "MAPE %".into(), "max %".into()];
    head.extend(sweet_spot_at.iter().map(|n| format!("m* err n={n}")));
    head
}

/// The in-sample scores of [`in_sample`], one row per LLM and the mean.
pub fn in_sample_table(t: &LooTable, sweet_spot_at: &[usize]) -> Table {
    let mut out = Table::new(&score_head(sweet_spot_at));
    for r in &t.llms {
        out.push(score_cells(r, sweet_spot_at));
    }
    out.push(mean_cells(t, sweet_spot_at));
    out
}

/// The mean row's cells under [`score_head`]: the mean MAPE, the rest blank.
fn mean_cells(t: &LooTable, sweet_spot_at: &[usize]) -> Vec<String> {
    let mut mean = vec![
        "mean".to_string(),
        format!("{:.2}", t.mean_mape_pct),
        String::new(),
    ];
    mean.extend(sweet_spot_at.iter().map(|_| String::new()));
    mean
}

/// One row per LLM (zero-shot MAPE, max error, m* error at each input length of `sweet_spot_at`,
/// both baselines' MAPE) and the mean row: what `calibrate --leave-one-out` prints and the report
/// shows.
pub fn table(l: &Loo, sweet_spot_at: &[usize]) -> Table {
    let mut head = score_head(sweet_spot_at);
    head.extend([
        "params-prop. MAPE %".to_string(),
        "nearest-LLM MAPE %".into(),
    ]);
    let mut t = Table::new(&head);
    for (i, r) in l.zero_shot.llms.iter().enumerate() {
        let mut row = score_cells(r, sweet_spot_at);
        row.push(format!("{:.2}", l.params_proportional.llms[i].mape_pct));
        row.push(format!("{:.2}", l.nearest_llm.llms[i].mape_pct));
        t.push(row);
    }
    let mut mean = mean_cells(&l.zero_shot, sweet_spot_at);
    mean.push(format!("{:.2}", l.params_proportional.mean_mape_pct));
    mean.push(format!("{:.2}", l.nearest_llm.mean_mape_pct));
    t.push(mean);
    t
}
