//! Heatmaps over input × output length on log2 axes (figures 1, 3, 7 and 8): one cell per grid
//! point coloured on a perceptually uniform scale (linear or logarithmic), the value printed in
//! the cell, optional marked cells (sweet spots) and dots (measured points, with their repeat
//! count), and a colour bar with its unit.

use super::canvas::{pe, render, Area};
use super::style::{fmt_value, ink_on, log2_axis, log2_label, text, ColorMap};
use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::Pos;

/// Values on a grid: `values[i][j]` belongs to `inputs[i]`, `outputs[j]`; `None` = not measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Surface {
    pub inputs: Vec<f64>,
    pub outputs: Vec<f64>,
    pub values: Vec<Vec<Option<f64>>>,
}

impl Surface {
    /// Build from (n, m, value) triples (later duplicates overwrite earlier ones).
    pub fn from_points(points: &[(f64, f64, f64)]) -> Surface {
        let mut inputs: Vec<f64> = points.iter().map(|p| p.0).collect();
        let mut outputs: Vec<f64> = points.iter().map(|p| p.1).collect();
        for v in [&mut inputs, &mut outputs] {
            v.sort_by(f64::total_cmp);
            v.dedup();
        }
        let mut values = vec![vec![None; outputs.len()]; inputs.len()];
        for &(n, m, v) in points {
            let i = inputs.iter().position(|x| *x == n).unwrap_or(0);
            let j = outputs.iter().position(|x| *x == m).unwrap_or(0);
            values[i][j] = Some(v);
        }
        Surface {
            inputs,
            outputs,
            values,
        }
    }

    /// Evaluate `f(n, m)` on a grid.
    pub fn from_fn(inputs: &[f64], outputs: &[f64], f: impl Fn(f64, f64) -> f64) -> Surface {
        let values = inputs
            .iter()
            .map(|&n| {
                outputs
                    .iter()
                    .map(|&m| Some(f(n, m)).filter(|v| v.is_finite()))
                    .collect()
            })
            .collect();
        Surface {
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            values,
        }
    }

    pub fn get(&self, n: f64, m: f64) -> Option<f64> {
        let i = self.inputs.iter().position(|x| *x == n)?;
        let j = self.outputs.iter().position(|x| *x == m)?;
        self.values[i][j]
    }

    /// Every present value.
    pub fn present(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().flatten().filter_map(|v| *v)
    }

    pub fn cells(&self) -> usize {
        self.present().count()
    }
}

/// A heatmap figure.
pub struct Heatmap<'a> {
    pub title: String,
    /// Colour-bar label with its unit, e.g. "tokens/J".
    pub value_label: String,
    pub surface: &'a Surface,
    /// Cells to outline, as (input, output).
    pub marked: Vec<(f64, f64)>,
    /// What an outlined cell means (printed under the plot).
    pub marked_label: String,
    pub cmap: ColorMap,
    /// Fixed colour range; `None` = the data's min and max.
    pub range: Option<(f64, f64)>,
    /// Points to dot, as (input, output, rows there); a count above one is printed beside the dot.
    pub dots: Vec<(f64, f64, usize)>,
    /// What a dot means (printed under the plot).
    pub dots_label: String,
    /// Hold-out points (measured, never fitted): open rings where the dots go.
    pub rings: Vec<(f64, f64)>,
    /// Colour by the logarithm of the value (for values > 0 spanning a wide range).
    pub log: bool,
}

/// Draw the heatmap as SVG text. Errors when the surface has fewer than two cells.
pub fn heatmap_svg(h: &Heatmap) -> Result<String> {
    let s = h.surface;
    if s.cells() < 2 {
        bail!(
            "fewer than two grid points ({}) — nothing to colour",
            s.cells()
        );
    }
    let (lo, hi) = h.range.unwrap_or_else(|| {
        let lo = s.present().fold(f64::MAX, f64::min);
        let hi = s.present().fold(f64::MIN, f64::max);
        (lo, hi)
    });
    let scale = Scale::new(h.log, lo, hi);
    let t = |v: f64| scale.t(v);
    render(820, 640, |root: &Area| {
        let (main, bar) = root.split_horizontally(690);
        let (xt, xr) = log2_axis(&s.outputs, 0.5);
        let (yt, yr) = log2_axis(&s.inputs, 0.5);
        let mut chart = ChartBuilder::on(&main)
            .caption(&h.title, text(20.0))
            .margin(12)
            .margin_bottom(if h.marked.is_empty() && h.dots.is_empty() {
                12
            } else {
                34
            })
            .x_label_area_size(52)
            .y_label_area_size(70)
            .build_cartesian_2d(xr, yr)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("output length m (tokens)")
            .y_desc("input length n (tokens)")
            .x_labels(xt.len() + 1)
            .y_labels(yt.len() + 1)
            .x_label_formatter(&log2_label)
            .y_label_formatter(&log2_label)
            .label_style(text(14.0))
            .axis_desc_style(text(15.0))
            .draw()
            .map_err(pe)?;
        let edges = |ticks: &[f64], k: usize| {
            let a = if k == 0 {
                ticks[k] - 0.5
            } else {
                (ticks[k - 1] + ticks[k]) / 2.0
            };
            let b = if k + 1 == ticks.len() {
                ticks[k] + 0.5
            } else {
                (ticks[k] + ticks[k + 1]) / 2.0
            };
            (a, b)
        };
        let cell_px = 560.0 / (xt.len().max(yt.len()) as f64);
        let font_px = (cell_px / 4.5).clamp(9.0, 14.0);
        for (i, &n) in s.inputs.iter().enumerate() {
            for (j, &m) in s.outputs.iter().enumerate() {
                let Some(v) = s.values[i][j] else { continue };
                let (ix, jx) = (
                    yt.iter().position(|y| *y == n.log2()),
                    xt.iter().position(|x| *x == m.log2()),
                );
                let (Some(ix), Some(jx)) = (ix, jx) else {
                    continue;
                };
                let ((x0, x1), (y0, y1)) = (edges(&xt, jx), edges(&yt, ix));
                let c = h.cmap.at(t(v));
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x1, y1)],
                        c.filled(),
                    )))
                    .map_err(pe)?;
                let ink = ink_on(c);
                let style = text(font_px)
                    .color(&ink)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                chart
                    .draw_series(std::iter::once(Text::new(
                        fmt_value(v),
                        (m.log2(), n.log2()),
                        style,
                    )))
                    .map_err(pe)?;
            }
        }
        for &(n, m) in &h.marked {
            let (ix, jx) = (
                yt.iter().position(|y| *y == n.log2()),
                xt.iter().position(|x| *x == m.log2()),
            );
            let (Some(ix), Some(jx)) = (ix, jx) else {
                continue;
            };
            let ((x0, x1), (y0, y1)) = (edges(&xt, jx), edges(&yt, ix));
            // A white ring outside a black one reads on dark and on light cells alike.
            let ring = |i: f64| [(x0 + i, y0 + i), (x1 - i, y1 - i)];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    ring(0.04),
                    WHITE.stroke_width(4),
                )))
                .map_err(pe)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    ring(0.08),
                    BLACK.stroke_width(2),
                )))
                .map_err(pe)?;
        }
        // Where a mark goes: under the value of cell (n, m), if the grid has that cell.
        let mark_at = |n: f64, m: f64| -> Option<(f64, f64)> {
            let ix = yt.iter().position(|y| *y == n.log2())?;
            let jx = xt.iter().position(|x| *x == m.log2())?;
            Some((xt[jx], yt[ix] - 0.27))
        };
        for &(n, m, rows) in &h.dots {
            let Some(at) = mark_at(n, m) else {
                continue;
            };
            // A white dot in a black ring reads on any cell colour.
            chart
                .draw_series([
                    Circle::new(at, 5, WHITE.filled()),
                    Circle::new(at, 5, BLACK.stroke_width(2)),
                ])
                .map_err(pe)?;
            if rows > 1 {
                let ink = ink_on(s.get(n, m).map_or(WHITE, |v| h.cmap.at(t(v))));
                let style = text(12.0).color(&ink).pos(Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                ));
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("×{rows}"),
                        (at.0 + 0.1, at.1),
                        style,
                    )))
                    .map_err(pe)?;
            }
        }
        for &(n, m) in &h.rings {
            let Some(at) = mark_at(n, m) else {
                continue;
            };
            chart
                .draw_series([
                    Circle::new(at, 7, WHITE.stroke_width(4)),
                    Circle::new(at, 7, BLACK.stroke_width(2)),
                ])
                .map_err(pe)?;
        }
        let (_, hh) = main.dim_in_pixel();
        let y = hh as i32 - 18;
        let mut x = 84;
        if !h.marked.is_empty() {
            main.draw(&Rectangle::new(
                [(x, y - 8), (x + 16, y + 8)],
                BLACK.stroke_width(2),
            ))
            .map_err(pe)?;
            main.draw_text(&h.marked_label, &text(14.0), (x + 24, y - 8))
                .map_err(pe)?;
            x += 300;
        }
        if !h.dots.is_empty() {
            main.draw(&Circle::new((x + 8, y), 5, WHITE.filled()))
                .map_err(pe)?;
            main.draw(&Circle::new((x + 8, y), 5, BLACK.stroke_width(2)))
                .map_err(pe)?;
            main.draw_text(&h.dots_label, &text(14.0), (x + 24, y - 8))
                .map_err(pe)?;
            x += 320;
        }
        if !h.rings.is_empty() {
            main.draw(&Circle::new((x + 8, y), 7, BLACK.stroke_width(2)))
                .map_err(pe)?;
            main.draw_text(
                "hold-out (measured, not fitted)",
                &text(14.0),
                (x + 24, y - 8),
            )
            .map_err(pe)?;
        }
        colour_bar(&bar, h, &scale)
    })
}

/// The colour scale: value → position on the colour map, linear or on log values.
struct Scale {
    log: bool,
    /// Ends of the scale, in the scale's own units (log values when `log`).
    a: f64,
    b: f64,
}

impl Scale {
    fn new(log: bool, lo: f64, hi: f64) -> Scale {
        let log = log && lo > 0.0;
        let f = |v: f64| if log { v.ln() } else { v };
        let (a, b) = (f(lo), f(hi));
        Scale {
            log,
            a,
            b: if b > a { b } else { a + 1.0 },
        }
    }

    fn to_axis(&self, v: f64) -> f64 {
        if self.log {
            v.ln()
        } else {
            v
        }
    }

    fn t(&self, v: f64) -> f64 {
        (self.to_axis(v) - self.a) / (self.b - self.a)
    }
}

fn colour_bar(area: &Area, h: &Heatmap, scale: &Scale) -> Result<()> {
    let (a, b) = (scale.a, scale.b);
    let mut chart = ChartBuilder::on(area)
        .margin_top(48)
        .margin_bottom(64)
        .margin_left(40)
        .y_label_area_size(0)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0.0..1.0, a..b)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(&h.value_label)
        .y_label_formatter(&|v| fmt_value(*v))
        // A log scale labels its own ticks below, at round values.
        .y_labels(if scale.log { 0 } else { 8 })
        .label_style(text(13.0))
        .axis_desc_style(text(15.0))
        .draw()
        .map_err(pe)?;
    let steps = 120;
    let d = (b - a) / steps as f64;
    chart
        .draw_series((0..steps).map(|k| {
            let v0 = a + d * k as f64;
            Rectangle::new(
                [(0.0, v0), (1.0, v0 + d * 1.02)],
                h.cmap.at((v0 + d / 2.0 - a) / (b - a)).filled(),
            )
        }))
        .map_err(pe)?;
    if scale.log {
        let base = area.get_base_pixel();
        for v in log_ticks(a.exp(), b.exp()) {
            let (x, y) = chart.backend_coord(&(1.0, v.ln()));
            let (x, y) = (x - base.0, y - base.1);
            area.draw(&PathElement::new(vec![(x, y), (x + 5, y)], BLACK))
                .map_err(pe)?;
            area.draw_text(
                &fmt_value(v),
                &text(13.0).pos(Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
                (x + 8, y),
            )
            .map_err(pe)?;
        }
    }
    Ok(())
}

/// Round values between `lo` and `hi` for a log axis: 1, 2, 5 × 10^k, finer when that gives
/// fewer than three, the ends themselves when even that gives fewer than two.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let within = |mantissas: &[f64]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|x| *x >= lo * (1.0 - 1e-9) && *x <= hi * (1.0 + 1e-9))
            .collect()
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 3 {
        return coarse;
    }
    let fine = within(&[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0]);
    if fine.len() >= 2 {
        fine
    } else {
        vec![lo, hi]
    }
}
