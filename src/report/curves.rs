//! Figure 2: tokens/J against output length, one curve per input length. Left: the measured
//! points, the fitted flops-mem curve with its 95 % band and the predicted sweet spot m* with its
//! 95 % interval (where the fit carries a covariance); right: all six models at one input length.

use super::assemble::{efficiency_surface, log_space, predict, skip, write, Figure, Subject};
use super::lines::{panels_svg, Mark, Panel, Series};
use super::uncertain::Uncertain;
use crate::analytic::{all_models, model_by_name};
use crate::fit::file::FitFile;
use anyhow::Result;
use std::path::Path;

/// Why figure 2 has no intervals for a fit without covariance.
pub const NO_COVARIANCE: &str = "the flops-mem fit file carries no covariance (written before \
intervals existed): no 95 % band or m* interval";

pub fn fig2(s: &Subject, out: &Path) -> Result<Figure> {
    let title = format!("Tokens/J against output length — {}", s.label);
    let Some(fm) = s.fits.get("flops-mem") else {
        let why = s
            .fit_errors
            .get("flops-mem")
            .cloned()
            .unwrap_or_else(|| "no flops-mem fit".into());
        return Ok(skip(2, title, format!("no flops-mem fit: {why}")));
    };
    let surface = efficiency_surface(s).unwrap_or_default();
    let (lo, hi) = (
        surface.outputs.first().copied().unwrap_or(64.0),
        surface.outputs.last().copied().unwrap_or(4096.0),
    );
    if hi <= lo {
        return Ok(skip(
            2,
            title,
            format!("one output length only ({lo}) — no curve to draw"),
        ));
    }
    let ms = log_space(lo, hi, 32); // SVG pixels are integers: fewer, longer segments draw smoother
    let eta = |f: &FitFile, n: f64, m: f64| predict(f, n, m).map(|e| 1.0 / e);
    let unc = Uncertain::of(fm);
    let left_title = match (s.obs.is_empty(), unc.is_some()) {
        (true, _) => "published flops-mem fit (lines), predicted m* (×)",
        (false, false) => "measured (points), flops-mem fit (lines), predicted m* (×)",
        (false, true) => "measured (points), flops-mem fit (lines, 95 % band), m* (×)",
    };
    let mut left = efficiency_panel(left_title.into(), &surface.outputs);
    let model = model_by_name("flops-mem")?;
    // Hold-outs go after the curves, so their legend entry follows the input lengths'.
    let mut held_series = Vec::new();
    for (i, &n) in surface.inputs.iter().enumerate() {
        let color = i;
        let pts: Vec<(f64, f64)> = surface
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(j, &m)| surface.values[i][j].map(|v| (m, v)))
            .collect();
        if !s.obs.is_empty() {
            left.series.push(Series {
                label: format!("n = {n}"),
                color,
                mark: Mark::Points,
                points: pts,
            });
        }
        let held: Vec<(f64, f64)> = s
            .holdouts
            .iter()
            .filter(|o| o.input_tokens == n)
            .map(|o| (o.output_tokens, 1.0 / o.energy_per_token_j))
            .collect();
        if !held.is_empty() {
            // One legend entry for all hold-outs; their colour still tells their n.
            let first = held_series.is_empty();
            held_series.push(Series {
                label: if first {
                    "hold-out (not fitted)".into()
                } else {
                    String::new()
                },
                color,
                mark: Mark::Hollow,
                points: held,
            });
        }
        if let Some(u) = &unc {
            left.series.push(Series {
                label: String::new(),
                color,
                mark: Mark::Band,
                points: u.band(n, &ms),
            });
        }
        let curve: Vec<(f64, f64)> = ms
            .iter()
            .filter_map(|&m| eta(fm, n, m).map(|v| (m, v)))
            .collect();
        left.series.push(Series {
            label: format!("n = {n}"),
            color,
            mark: Mark::Line,
            points: curve,
        });
        let Some(m) = model
            .closed_form_sweet_spot(&fm.values(), n)
            .filter(|m| *m >= lo && *m <= hi)
        else {
            continue;
        };
        let Some(v) = eta(fm, n, m) else { continue };
        if let Some(ci) = unc.as_ref().and_then(|u| u.sweet_spot(n)) {
            left.series.push(Series {
                label: String::new(),
                color,
                mark: Mark::Interval,
                points: vec![(ci.lo, v), (ci.hi, v)],
            });
        }
        left.series.push(Series {
            label: String::new(),
            color,
            mark: Mark::Cross,
            points: vec![(m, v)],
        });
    }
    left.series.extend(held_series);
    for (mark, label) in [
        (Mark::Cross, "predicted m*"),
        (Mark::Band, "95 % band of the fit"),
        (Mark::Interval, "95 % interval of m*"),
    ] {
        if left.series.iter().any(|x| x.mark == mark) {
            left.series.push(Series {
                label: label.into(),
                color: 0,
                mark,
                points: vec![],
            });
        }
    }
    let n0 = *surface
        .inputs
        .iter()
        .min_by(|a, b| (a.log2() - 9.0).abs().total_cmp(&(b.log2() - 9.0).abs()))
        .unwrap_or(&512.0);
    let mut right = efficiency_panel(format!("all six models at n = {n0}"), &surface.outputs);
    if let Some(i) = surface
        .inputs
        .iter()
        .position(|x| *x == n0)
        .filter(|_| !s.obs.is_empty())
    {
        let pts = surface
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(j, &m)| surface.values[i][j].map(|v| (m, v)))
            .collect();
        right.series.push(Series {
            label: "measured".into(),
            color: 0,
            mark: Mark::Points,
            points: pts,
        });
    }
    for (k, m) in all_models().iter().enumerate() {
        if let Some(f) = s.fits.get(m.name()) {
            let curve = ms
                .iter()
                .filter_map(|&x| eta(f, n0, x).map(|v| (x, v)))
                .collect();
            right.series.push(Series {
                label: m.name().into(),
                color: k + 1,
                mark: if m.name().starts_with("flops") {
                    Mark::Line
                } else {
                    Mark::Dashed
                },
                points: curve,
            });
        }
    }
    let mut panels = vec![left];
    if right.series.len() > 2 {
        panels.push(right);
    }
    let series = panels.iter().map(|p| p.drawn()).sum();
    let mut f = write(
        out,
        2,
        title,
        format!("fig2-curves-{}.svg", s.slug),
        panels_svg(
            &format!("Energy efficiency against output length — {}", s.label),
            &panels,
        ),
        series,
    )?;
    if f.file.is_some() && unc.is_none() && fm.published.is_none() {
        f.note = NO_COVARIANCE.into();
    }
    Ok(f)
}

/// An empty panel of tokens/J against output length on a log₂ axis (both halves of figure 2).
fn efficiency_panel(title: String, outputs: &[f64]) -> Panel {
    Panel {
        title,
        x_label: "output length m (tokens)".into(),
        y_label: "energy efficiency (tokens/J)".into(),
        x_log2_ticks: Some(outputs.to_vec()),
        hline: None,
        y_range: None,
        series: vec![],
    }
}
