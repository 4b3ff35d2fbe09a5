//! Figure 10, drawn where an LLM was measured at several `requests` values: efficiency (tokens/J)
//! against output length, one line per requests value with flops-mem-batch's curve at that value
//! (the study's Figure 4), and the sweet spot m* against the concurrency.

use super::assemble::{skip, Figure};
use super::canvas::save;
use super::lines::{panels_svg, Mark, Panel, Series};
use crate::analytic::flops_mem_batch::{ConcurrencyFn, FlopsMemBatch};
use crate::analytic::EnergyModel;
use crate::dataset::{Dataset, Group};
use crate::fit::{batch, fit_model_named, FitOptions};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

const NUMBER: u8 = 10;
const TITLE: &str = "Efficiency by requests and the sweet spot against concurrency";

/// One figure per LLM with two or more requests values; a skip note where none has.
pub fn fig10(ds: &Dataset, gpu_mem_gib: f64, out: &Path) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    for mut g in ds.groups_spanning(&[], &batch::SPANS)? {
        let rs = batch::counts_of(ds, &g, "requests")?;
        if rs.iter().collect::<BTreeSet<_>>().len() < 2 {
            continue;
        }
        let title = format!("{}: efficiency by requests", g.label());
        match draw(ds, &mut g, &rs, gpu_mem_gib, &title, out) {
            Ok(f) => figs.push(f),
            Err(e) => figs.push(skip(NUMBER, title, format!("{e:#}"))),
        }
    }
    if figs.is_empty() {
        figs.push(skip(
            NUMBER,
            TITLE.into(),
            "no LLM was measured at more than one requests value".into(),
        ));
    }
    Ok(figs)
}

fn draw(
    ds: &Dataset,
    g: &mut Group,
    rs: &[u64],
    gpu_mem_gib: f64,
    title: &str,
    out: &Path,
) -> Result<Figure> {
    let ctx = batch::context(ds, g, gpu_mem_gib)?;
    batch::fill_concurrency(ds, g, &ctx)?;
    let fitted = ctx.model()?;
    let opts = FitOptions {
        cv_folds: None,
        ..FitOptions::default()
    };
    let fit = fit_model_named(&fitted, &g.obs, &opts, &g.label())?;
    let coefs = fit.values();
    // The input length measured at the most requests values (a design over requests need not
    // measure one length at all of them), nearest 512 among those (the study's choice); every
    // requests value gets the model's curve, and its measured points where it has some.
    let values: BTreeSet<u64> = rs.iter().copied().collect();
    let mut by_n: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (o, r) in g.obs.iter().zip(rs) {
        by_n.entry(o.input_tokens as u64).or_default().insert(*r);
    }
    let most = by_n.values().map(BTreeSet::len).max().unwrap_or(0);
    if most < 2 {
        bail!("no input length was measured at two requests values or more");
    }
    let n = by_n
        .iter()
        .filter(|(_, r)| r.len() == most)
        .map(|(n, _)| *n)
        .min_by_key(|n| ((*n as f64 / 512.0).ln().abs() * 1e6) as u64)
        .expect("an input length with the most requests values") as f64;
    let outputs: BTreeSet<u64> = g.obs.iter().map(|o| o.output_tokens as u64).collect();
    let ticks: Vec<f64> = outputs.iter().map(|&m| m as f64).collect();
    let (lo, hi) = (ticks[0], ticks[ticks.len() - 1]);
    let mut series = Vec::new();
    for (i, &r) in values.iter().enumerate() {
        // Measured means at (n, m) for this requests value.
        let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (o, _) in g
            .obs
            .iter()
            .zip(rs)
            .filter(|(o, q)| **q == r && o.input_tokens == n)
        {
            at.entry(o.output_tokens as u64)
                .or_default()
                .push(o.energy_per_token_j);
        }
        if !at.is_empty() {
            series.push(Series {
                label: format!("R = {r}"),
                color: i,
                mark: Mark::Points,
                points: at
                    .iter()
                    .map(|(m, es)| (*m as f64, es.len() as f64 / es.iter().sum::<f64>()))
                    .collect(),
            });
        }
        let mut at_r = ctx.clone();
        at_r.settings.requests = r as usize;
        let model = at_r.model()?;
        series.push(Series {
            // Named here where no point of this requests value carries the name.
            label: if at.is_empty() {
                format!("R = {r}")
            } else {
                String::new()
            },
            color: i,
            mark: Mark::Line,
            points: log_steps(lo, hi)
                .map(|m| (m, 1.0 / model.energy_per_token(&coefs, n, m)))
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .collect(),
        });
    }
    let left = Panel {
        title: format!("n = {n}: measured (points), flops-mem-batch (lines)"),
        x_label: "output length m (tokens)".into(),
        y_label: "energy efficiency (tokens/J)".into(),
        x_log2_ticks: Some(ticks),
        series,
        ..Panel::default()
    };
    let top = g
        .obs
        .iter()
        .filter_map(|o| o.concurrency)
        .fold(1.0, f64::max);
    let cs: Vec<f64> = (0..)
        .map(|k| 2f64.powi(k))
        .take_while(|c| *c <= top.max(2.0) * 1.0001)
        .collect();
    let star = |c: f64| -> Option<f64> {
        let cf: ConcurrencyFn = Arc::new(move |_, _| c);
        crate::sweetspot::predicted(&FlopsMemBatch::new(cf), &coefs, n, lo, hi).output_tokens
    };
    let right = Panel {
        title: format!("n = {n}: flops-mem-batch's m* at a fixed concurrency"),
        x_label: "sequences in flight c".into(),
        y_label: "sweet spot m* (tokens)".into(),
        x_log2_ticks: Some(cs.clone()),
        series: vec![Series {
            label: "m*".into(),
            color: 0,
            mark: Mark::Line,
            points: cs.iter().filter_map(|&c| star(c).map(|m| (c, m))).collect(),
        }],
        ..Panel::default()
    };
    let panels = [left, right];
    let svg = panels_svg(title, &panels)?;
    let file = format!("fig10-requests-{}.svg", g.file_stem());
    save(&svg, &out.join(&file))?;
    Ok(Figure {
        number: NUMBER,
        title: title.to_string(),
        file: Some(file),
        note: format!(
            "flops-mem-batch fitted across requests {} ({} points, MAPE {:.2} %)",
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            fit.points,
            fit.mape_pct
        ),
        series: panels.iter().map(|p| p.drawn()).sum(),
    })
}

/// lo … hi in steps of 2^(1/4), both ends included.
fn log_steps(lo: f64, hi: f64) -> impl Iterator<Item = f64> {
    let k = ((hi / lo).log2() * 4.0).ceil().max(1.0) as i32;
    (0..=k).map(move |i| (lo * 2f64.powf(i as f64 / 4.0)).min(hi))
}
