//! Figure 3: every LLM's efficiency normalised to its own range and averaged over LLMs.

use super::assemble::{efficiency_surface, fitted_surface, skip, write, Figure, Subject};
use super::heatmap::{heatmap_svg, Heatmap, Surface};
use super::style::ColorMap;
use crate::dataset::synthetic::GRID;
use anyhow::Result;
use std::path::Path;

/// A subject's surface for figure 3: its measured points where they cover the whole grid, else
/// (a budgeted design measures a fraction of it) its flops-mem fit over the grid, so that every
/// LLM enters the mean on the same cells. The flag says which.
fn aggregate_surface(s: &Subject) -> Option<(Surface, bool)> {
    let measured = efficiency_surface(s)?;
    let full = GRID
        .iter()
        .all(|&n| GRID.iter().all(|&m| measured.get(n, m).is_some()));
    if full || s.obs.is_empty() {
        return Some((measured, false));
    }
    Some((fitted_surface(s)?, true))
}

/// Figure 3: min–max-normalised efficiency averaged over subjects, on the cells all share
/// (measured grids as measured, budgeted designs through their flops-mem fits).
pub fn fig3(subjects: &[Subject], out: &Path) -> Result<Figure> {
    let title = "Aggregated normalised efficiency".to_string();
    let (surfaces, fitted): (Vec<Surface>, Vec<bool>) = subjects
        .iter()
        .filter_map(aggregate_surface)
        .filter(|(s, _)| s.cells() >= 2)
        .unzip();
    if surfaces.len() < 2 {
        return Ok(skip(
            3,
            title,
            format!(
                "needs at least two LLMs with two or more grid points each ({} here)",
                surfaces.len()
            ),
        ));
    }
    let base = &surfaces[0];
    let mut pts = Vec::new();
    for &n in &base.inputs {
        for &m in &base.outputs {
            let norm: Option<Vec<f64>> = surfaces
                .iter()
                .map(|s| {
                    let (lo, hi) = (
                        s.present().fold(f64::MAX, f64::min),
                        s.present().fold(f64::MIN, f64::max),
                    );
                    s.get(n, m)
                        .map(|v| if hi > lo { (v - lo) / (hi - lo) } else { 1.0 })
                })
                .collect();
            if let Some(v) = norm {
                pts.push((n, m, v.iter().sum::<f64>() / v.len() as f64));
            }
        }
    }
    let surface = Surface::from_points(&pts);
    let n_fitted = fitted.iter().filter(|f| **f).count();
    let t = if n_fitted == 0 {
        format!(
            "Min–max-normalised efficiency, mean over {} LLMs",
            surfaces.len()
        )
    } else {
        format!(
            "Min–max-normalised efficiency, mean over {} LLMs ({} through their flops-mem fits)",
            surfaces.len(),
            n_fitted
        )
    };
    let h = Heatmap {
        title: t.clone(),
        value_label: "normalised efficiency (1 = each LLM's best)".into(),
        surface: &surface,
        marked: vec![],
        marked_label: String::new(),
        cmap: ColorMap::Viridis,
        range: Some((0.0, 1.0)),
        dots: vec![],
        rings: vec![],
        dots_label: String::new(),
        log: false,
    };
    write(
        out,
        3,
        t,
        "fig3-normalised-efficiency.svg".into(),
        heatmap_svg(&h),
        surface.cells(),
    )
}
