//! Figure 8, a design on the grid: every point of the published 64…4096 grid (widened by any
//! other length the data hold) coloured by the relative 95 % half-width of the energy per token
//! that the flops-mem fit predicts there (delta method, from the fit's covariance), with the
//! measured points dotted. It shows which unmeasured points the fit is least sure of, and so
//! where a new measurement would tell it most.

use super::assemble::{skip, write, Figure, Subject};
use super::heatmap::{heatmap_svg, Heatmap, Surface};
use super::style::ColorMap;
use super::uncertain::Uncertain;
use crate::dataset::synthetic::GRID;
use anyhow::Result;
use std::path::Path;

/// The fit's relative half-width over the grid, and the measured points.
pub struct DesignGrid {
    /// Relative 95 % half-width of e (%) at every grid point.
    pub half_width: Surface,
    /// Measured points as (input, output, rows there).
    pub measured: Vec<(f64, f64, usize)>,
}

/// Where the fit is least and most sure, for report.md.
pub struct DesignSummary {
    /// Smallest, median and largest half-width over the measured points (%).
    pub measured: (f64, f64, f64),
    /// The unmeasured point with the widest interval, as (input, output, %).
    pub widest_unmeasured: Option<(f64, f64, f64)>,
    pub unmeasured: usize,
}

/// The grid of a subject; `Err` says why there is none.
pub fn grid(s: &Subject) -> Result<DesignGrid, String> {
    let Some(fm) = s.fits.get("flops-mem") else {
        return Err(match s.fit_errors.get("flops-mem") {
            Some(e) => format!("no flops-mem fit: {e}"),
            None => "no flops-mem fit".into(),
        });
    };
    if s.obs.is_empty() {
        return Err("no measurements to place on the grid".into());
    }
    let Some(u) = Uncertain::of(fm) else {
        return Err(if fm.published.is_some() {
            "published fits carry no covariance: no intervals to map".into()
        } else {
            "the flops-mem fit file carries no covariance (written before intervals existed): \
             no intervals to map; `energy-fit fit` rewrites it with them"
                .into()
        });
    };
    let axis = |f: fn(&crate::dataset::Obs) -> f64| {
        let mut v: Vec<f64> = GRID.iter().copied().chain(s.obs.iter().map(f)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (inputs, outputs) = (axis(|o| o.input_tokens), axis(|o| o.output_tokens));
    let half_width = Surface::from_fn(&inputs, &outputs, |n, m| {
        u.half_width_pct(n, m).unwrap_or(f64::NAN)
    });
    let mut measured: Vec<(f64, f64, usize)> = Vec::new();
    for o in &s.obs {
        match measured
            .iter_mut()
            .find(|p| p.0 == o.input_tokens && p.1 == o.output_tokens)
        {
            Some(p) => p.2 += 1,
            None => measured.push((o.input_tokens, o.output_tokens, 1)),
        }
    }
    measured.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    Ok(DesignGrid {
        half_width,
        measured,
    })
}

impl DesignGrid {
    fn is_measured(&self, n: f64, m: f64) -> bool {
        self.measured.iter().any(|p| p.0 == n && p.1 == m)
    }

    pub fn summary(&self) -> Option<DesignSummary> {
        let s = &self.half_width;
        let cells = s.inputs.iter().enumerate().flat_map(|(i, &n)| {
            s.outputs
                .iter()
                .enumerate()
                .filter_map(move |(j, &m)| Some((n, m, s.values[i][j]?)))
        });
        let (on, off): (Vec<_>, Vec<_>) = cells.partition(|c| self.is_measured(c.0, c.1));
        let measured = crate::fit::stats::min_median_max(on.iter().map(|c| c.2).collect())?;
        Some(DesignSummary {
            measured,
            widest_unmeasured: off.iter().copied().max_by(|a, b| a.2.total_cmp(&b.2)),
            unmeasured: off.len(),
        })
    }
}

/// Figure 8 for one subject, or why it is skipped.
pub fn fig8(s: &Subject, out: &Path) -> Result<Figure> {
    let title = format!("Where the flops-mem fit of {} is least sure", s.label);
    let g = match grid(s) {
        Ok(g) => g,
        Err(why) => return Ok(skip(8, title, why)),
    };
    let h = Heatmap {
        title: format!("{}: 95 % interval of e from the flops-mem fit", s.label),
        value_label: "half-width of the 95 % interval of e (± %, log scale)".into(),
        surface: &g.half_width,
        marked: vec![],
        marked_label: String::new(),
        cmap: ColorMap::MagmaReversed,
        range: None,
        dots: g.measured.clone(),
        dots_label: "measured point (×k: k rows there)".into(),
        rings: s
            .holdouts
            .iter()
            .map(|o| (o.input_tokens, o.output_tokens))
            .collect(),
        log: true,
    };
    write(
        out,
        8,
        title,
        format!("fig8-design-{}.svg", s.slug),
        heatmap_svg(&h),
        g.half_width.cells(),
    )
}
