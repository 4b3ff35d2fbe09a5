//! Line and scatter panels (figures 2, 5 and 6): several panels side by side, each with its own
//! legend in a column beside the plot so that no legend covers data; optional log2 x axis with
//! ticks on the grid's lengths. Intervals (a band around a curve, a bar through a point) are
//! drawn within the range the data span and never widen it, so one wide interval cannot squash
//! the rest of the panel.

use super::canvas::{pe, render, Area};
use super::style::{fmt_value, log2_label, series_color, text};
use anyhow::{bail, Result};
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    Line,
    Dashed,
    Points,
    /// Open circles: measured points that were not fitted (hold-outs).
    Hollow,
    /// Large crosses, for predicted sweet spots.
    Cross,
    /// A light fill of the series' colour: `points` is the outline (upper edge left to right, then
    /// the lower edge right to left), e.g. a curve's 95 % band.
    Band,
    /// A horizontal bar from `points[0]` to `points[1]`, e.g. an x value's 95 % interval; its ends
    /// are capped unless cut at the edge of the plot.
    Interval,
}

impl Mark {
    /// Drawn inside the data's range, without widening it.
    fn overlay(self) -> bool {
        matches!(self, Mark::Band | Mark::Interval)
    }
}

#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text; empty = not in the legend.
    pub label: String,
    /// Index into the Okabe–Ito palette.
    pub color: usize,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// x drawn on a log2 axis with ticks at these values.
    pub x_log2_ticks: Option<Vec<f64>>,
    /// A horizontal reference line (e.g. zero residual).
    pub hline: Option<f64>,
    /// Fixed y range (shared between panels); `None` = from the data.
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
}

impl Panel {
    /// Series that hold data (what a reader counts as lines or point sets).
    pub fn drawn(&self) -> usize {
        self.series.iter().filter(|s| !s.points.is_empty()).count()
    }
}

const LEGEND_W: u32 = 190;

/// Panels side by side under one title. Errors when no panel has two points to draw.
pub fn panels_svg(title: &str, panels: &[Panel]) -> Result<String> {
    if panels
        .iter()
        .all(|p| p.series.iter().map(|s| s.points.len()).sum::<usize>() < 2)
    {
        bail!("fewer than two points to draw");
    }
    let w = 640 * panels.len() as u32;
    render(w.max(640), 560, |root: &Area| {
        let root = root.titled(title, text(20.0)).map_err(pe)?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, p) in areas.iter().zip(panels) {
            panel(area, p)?;
        }
        Ok(())
    })
}

fn panel(area: &Area, p: &Panel) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (plot, legend) = area.split_horizontally(w.saturating_sub(LEGEND_W));
    let fx = |x: f64| {
        if p.x_log2_ticks.is_some() {
            x.log2()
        } else {
            x
        }
    };
    let pts: Vec<(f64, f64)> = p
        .series
        .iter()
        .filter(|s| !s.mark.overlay())
        .flat_map(|s| s.points.iter().map(|&(x, y)| (fx(x), y)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.len() < 2 {
        plot.draw_text(
            &format!("{}: nothing to draw", p.title),
            &text(14.0),
            (20, 40),
        )
        .map_err(pe)?;
        return Ok(());
    }
    let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| {
        (a.min(*x), b.max(*x))
    });
    let (mut y0, mut y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| {
        (a.min(*y), b.max(*y))
    });
    if let Some((a, b)) = p.y_range {
        (y0, y1) = (a, b);
    }
    if let Some(h) = p.hline {
        y0 = y0.min(h);
        y1 = y1.max(h);
    }
    if let Some(t) = &p.x_log2_ticks {
        for v in t.iter().filter(|v| **v > 0.0) {
            x0 = x0.min(v.log2());
            x1 = x1.max(v.log2());
        }
    }
    let (xp, yp) = (
        ((x1 - x0) * 0.04).max(0.25),
        ((y1 - y0) * 0.06).max(y1.abs() * 0.02).max(1e-12),
    );
    let ticks = p.x_log2_ticks.as_ref().map(|t| {
        t.iter()
            .filter(|v| **v > 0.0)
            .map(|v| v.log2())
            .collect::<Vec<f64>>()
    });
    let mut chart = ChartBuilder::on(&plot)
        .caption(&p.title, text(16.0))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(72)
        .build_cartesian_2d((x0 - xp)..(x1 + xp), (y0 - yp)..(y1 + yp))
        .map_err(pe)?;
    let on_tick = |v: &f64| {
        ticks
            .as_ref()
            .is_none_or(|t| t.iter().any(|k| (k - v).abs() < 1e-6))
    };
    let xfmt = |v: &f64| -> String {
        if ticks.is_some() {
            if on_tick(v) {
                log2_label(v)
            } else {
                String::new()
            }
        } else {
            fmt_value(*v)
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_label_formatter(&xfmt)
        .y_label_formatter(&|v| fmt_value(*v))
        .label_style(text(13.0))
        .axis_desc_style(text(14.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215));
    if ticks.is_some() {
        // Ask for half steps: the formatter keeps only the grid's lengths.
        mesh.x_labels((((x1 - x0) * 2.0) as usize + 3).max(4));
    }
    mesh.draw().map_err(pe)?;
    if let Some(h) = p.hline {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0 - xp, h), (x1 + xp, h)],
                RGBColor(120, 120, 120).stroke_width(1),
            )))
            .map_err(pe)?;
    }
    let (xa, xb, ya, yb) = (x0 - xp, x1 + xp, y0 - yp, y1 + yp);
    // Bands first, so lines and points lie on top of them.
    let order = p
        .series
        .iter()
        .filter(|s| s.mark == Mark::Band)
        .chain(p.series.iter().filter(|s| s.mark != Mark::Band));
    for s in order {
        let c = series_color(s.color);
        let data: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(x, y)| (fx(x), y))
            .map(|(x, y)| {
                if s.mark.overlay() {
                    (x.clamp(xa, xb), y.clamp(ya, yb))
                } else {
                    (x, y)
                }
            })
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        match s.mark {
            Mark::Line => {
                chart
                    .draw_series(LineSeries::new(data, c.stroke_width(2)))
                    .map_err(pe)?;
            }
            Mark::Dashed => {
                chart
                    .draw_series(DashedLineSeries::new(data, 8, 5, c.stroke_width(2)))
                    .map_err(pe)?;
            }
            Mark::Points => {
                chart
                    .draw_series(data.into_iter().map(|pt| Circle::new(pt, 4, c.filled())))
                    .map_err(pe)?;
            }
            Mark::Hollow => {
                chart
                    .draw_series(
                        data.into_iter()
                            .map(|pt| Circle::new(pt, 6, c.stroke_width(2))),
                    )
                    .map_err(pe)?;
            }
            Mark::Cross => {
                chart
                    .draw_series(
                        data.into_iter()
                            .map(|pt| Cross::new(pt, 7, c.stroke_width(3))),
                    )
                    .map_err(pe)?;
            }
            Mark::Band => {
                if data.len() >= 3 {
                    chart
                        .draw_series(std::iter::once(Polygon::new(data, band_fill(c))))
                        .map_err(pe)?;
                }
            }
            Mark::Interval => {
                let ([a, b], [(ra, _), (rb, _)]) = (&data[..], &s.points[..]) else {
                    continue;
                };
                let (a, b) = (*a, *b);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![a, b],
                        c.stroke_width(2),
                    )))
                    .map_err(pe)?;
                // Caps only at true ends: an end cut at the plot's edge stays open.
                for (pt, raw) in [(a, *ra), (b, *rb)] {
                    if pt.0 != fx(raw) {
                        continue;
                    }
                    chart
                        .draw_series(std::iter::once(
                            EmptyElement::at(pt)
                                + PathElement::new(vec![(0, -5), (0, 5)], c.stroke_width(2)),
                        ))
                        .map_err(pe)?;
                }
            }
        }
    }
    draw_legend(&legend, &p.series)
}

fn draw_legend(area: &Area, series: &[Series]) -> Result<()> {
    let mut y = 60;
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for s in series.iter().filter(|s| !s.label.is_empty()) {
        if seen.iter().any(|(l, c)| *l == s.label && *c == s.color) {
            continue;
        }
        seen.push((&s.label, s.color));
        let c = series_color(s.color);
        // Points and a line of the same label and colour share one entry.
        let both = series
            .iter()
            .any(|o| o.label == s.label && o.color == s.color && o.mark == Mark::Points)
            && s.mark != Mark::Points;
        if both {
            area.draw(&Circle::new((17, y), 4, c.filled()))
                .map_err(pe)?;
        }
        match s.mark {
            Mark::Line => area
                .draw(&PathElement::new(vec![(4, y), (30, y)], c.stroke_width(2)))
                .map_err(pe)?,
            Mark::Dashed => area
                .draw(&PathElement::new(vec![(4, y), (12, y)], c.stroke_width(2)))
                .and_then(|_| {
                    area.draw(&PathElement::new(vec![(18, y), (26, y)], c.stroke_width(2)))
                })
                .map_err(pe)?,
            Mark::Points => area
                .draw(&Circle::new((17, y), 4, c.filled()))
                .map_err(pe)?,
            Mark::Hollow => area
                .draw(&Circle::new((17, y), 6, c.stroke_width(2)))
                .map_err(pe)?,
            Mark::Cross => area
                .draw(&Cross::new((17, y), 7, c.stroke_width(3)))
                .map_err(pe)?,
            Mark::Band => area
                .draw(&Rectangle::new([(4, y - 6), (30, y + 6)], band_fill(c)))
                .map_err(pe)?,
            Mark::Interval => {
                area.draw(&PathElement::new(vec![(4, y), (30, y)], c.stroke_width(2)))
                    .map_err(pe)?;
                for x in [4, 30] {
                    area.draw(&PathElement::new(
                        vec![(x, y - 5), (x, y + 5)],
                        c.stroke_width(2),
                    ))
                    .map_err(pe)?;
                }
            }
        }
        area.draw_text(
            &s.label,
            &text(13.0).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            )),
            (38, y),
        )
        .map_err(pe)?;
        y += 22;
    }
    Ok(())
}

/// The light fill of a band: the series' colour at low opacity, no outline.
fn band_fill(c: RGBColor) -> ShapeStyle {
    c.mix(0.2).filled()
}
