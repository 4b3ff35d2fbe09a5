//! Grouped horizontal bars on a log axis (figure 4: MAPE by model and LLM). Horizontal so that
//! LLM names read without rotation; one colour per model, legend beside the plot.

use super::canvas::{pe, render, Area};
use super::style::{series_color, text};
use anyhow::{bail, Result};
use plotters::prelude::*;
use std::ops::{Add, Sub};

/// One panel: `values[g][k]` is the bar of category `categories[g]` and group member `members[k]`.
#[derive(Clone, Debug)]
pub struct Bars {
    pub title: String,
    pub x_label: String,
    pub categories: Vec<String>,
    pub members: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
}

impl Bars {
    pub fn count(&self) -> usize {
        self.values
            .iter()
            .flatten()
            .filter(|v| v.is_some_and(|v| v > 0.0))
            .count()
    }
}

/// Panels of grouped bars side by side, log10 value axis.
pub fn bars_svg(title: &str, panels: &[Bars]) -> Result<String> {
    if panels.iter().all(|p| p.count() == 0) {
        bail!("no positive value to draw");
    }
    let rows = panels.iter().map(|p| p.categories.len()).max().unwrap_or(1);
    let members = panels.iter().map(|p| p.members.len()).max().unwrap_or(1);
    let h = (120 + rows * (members * 9 + 14)).max(420) as u32;
    let w = 560 * panels.len() as u32 + 170;
    render(w, h, |root: &Area| {
        let root = root.titled(title, text(20.0)).map_err(pe)?;
        let (plots, legend) = root.split_horizontally(w - 170);
        for (area, p) in plots.split_evenly((1, panels.len())).iter().zip(panels) {
            panel(area, p)?;
        }
        let mut y = 70;
        for (k, m) in panels[0].members.iter().enumerate() {
            legend
                .draw(&Rectangle::new(
                    [(6, y - 7), (26, y + 7)],
                    series_color(k + 1).filled(),
                ))
                .map_err(pe)?;
            legend
                .draw_text(
                    m,
                    &text(13.0).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    )),
                    (34, y),
                )
                .map_err(pe)?;
            y += 24;
        }
        Ok(())
    })
}

fn panel(area: &Area, p: &Bars) -> Result<()> {
    let vals: Vec<f64> = p
        .values
        .iter()
        .flatten()
        .filter_map(|v| *v)
        .filter(|v| *v > 0.0)
        .collect();
    if vals.is_empty() {
        area.draw_text(&format!("{}: no values", p.title), &text(14.0), (20, 60))
            .map_err(pe)?;
        return Ok(());
    }
    let lo = vals
        .iter()
        .cloned()
        .fold(f64::MAX, f64::min)
        .log10()
        .sub(0.3)
        .floor();
    let hi = vals
        .iter()
        .cloned()
        .fold(f64::MIN, f64::max)
        .log10()
        .add(0.25)
        .max(lo + 1.0);
    let n = p.categories.len();
    let k = p.members.len().max(1);
    let names = p.categories.clone();
    let label_w = names
        .iter()
        .map(|s| super::font::text_width(s, 13.0) as u32)
        .max()
        .unwrap_or(40)
        + 16;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, text(16.0))
        .margin(10)
        .x_label_area_size(48)
        .y_label_area_size(label_w)
        .build_cartesian_2d(lo..hi, -0.5..(n as f64 - 0.5))
        .map_err(pe)?;
    let yfmt = |v: &f64| -> String {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            names[n - 1 - i as usize].clone()
        } else {
            String::new()
        }
    };
    let xfmt = |v: &f64| -> String {
        if (v - v.round()).abs() < 1e-6 {
            format!("{}", 10f64.powf(v.round()))
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(p.x_label.as_str())
        .y_labels(2 * n + 2)
        .x_labels(((hi - lo) * 2.0) as usize + 2)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(text(13.0))
        .axis_desc_style(text(14.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(pe)?;
    let bh = 0.8 / k as f64;
    for (g, row) in p.values.iter().enumerate() {
        let yc = (n - 1 - g) as f64;
        for (j, v) in row.iter().enumerate() {
            let Some(v) = v.filter(|v| *v > 0.0) else {
                continue;
            };
            let y0 = yc + 0.4 - bh * (j as f64 + 1.0);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(lo, y0), (v.log10(), y0 + bh * 0.9)],
                    series_color(j + 1).filled(),
                )))
                .map_err(pe)?;
            let style = text(10.0).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ));
            chart
                .draw_series(std::iter::once(Text::new(
                    super::style::fmt_value(v),
                    (v.log10() + (hi - lo) * 0.008, y0 + bh * 0.45),
                    style,
                )))
                .map_err(pe)?;
        }
    }
    Ok(())
}
