//! Figure 6: where the data hold several values of a run setting (`requests`, `max_batch_size`,
//! …), the efficiency curves of each value side by side, one line per input length.

use super::assemble::{skip, Figure};
use super::canvas::save;
use super::lines::{panels_svg, Mark, Panel, Series};
use crate::dataset::Dataset;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// Columns compared when they vary within an LLM.
pub const COLUMNS: [&str; 6] = [
    "requests",
    "max_batch_size",
    "max_num_tokens",
    "dtype",
    "gpu",
    "engine",
];

/// One figure per (LLM, column) with more than one value; at most four values are drawn.
pub fn fig6(ds: &Dataset, out: &Path) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    for col in COLUMNS.iter().filter(|c| ds.df.column(c).is_ok()) {
        // Split by this column alone: the figure compares its values side by side.
        let groups = ds.groups_spanning(&[col.to_string()], &crate::dataset::settings::SPLIT)?;
        let mut by_llm: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for g in groups {
            by_llm.entry(g.llm().to_string()).or_default().push(g);
        }
        for (llm, gs) in by_llm.into_iter().filter(|(_, g)| g.len() > 1) {
            let title = format!("{llm}: efficiency by {col}");
            let panels: Vec<Panel> = gs
                .iter()
                .take(4)
                .map(|g| {
                    let means = g.point_means();
                    let mut ns: Vec<f64> = means.iter().map(|p| p.0).collect();
                    ns.dedup();
                    let outputs: Vec<f64> = means.iter().map(|p| p.1).collect();
                    let series = ns
                        .iter()
                        .enumerate()
                        .map(|(i, &n)| Series {
                            label: format!("n = {n}"),
                            color: i,
                            mark: Mark::Line,
                            points: means
                                .iter()
                                .filter(|p| p.0 == n)
                                .map(|p| (p.1, 1.0 / p.2))
                                .collect(),
                        })
                        .collect();
                    Panel {
                        title: format!("{col} = {}", clean(&g.key[1].1)),
                        x_label: "output length m (tokens)".into(),
                        y_label: "energy efficiency (tokens/J)".into(),
                        x_log2_ticks: Some(outputs),
                        hline: None,
                        y_range: None,
                        series,
                    }
                })
                .collect();
            let top = panels
                .iter()
                .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)))
                .fold(0.0, f64::max);
            let panels: Vec<Panel> = panels
                .into_iter()
                .map(|p| Panel {
                    y_range: Some((0.0, top)),
                    ..p
                })
                .collect();
            let series = panels.iter().map(|p| p.drawn()).sum();
            let slug: String = llm
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let file = format!("fig6-by-{col}-{slug}.svg");
            match panels_svg(&title, &panels) {
                Ok(svg) => {
                    save(&svg, &out.join(&file))?;
                    let note = if gs.len() > 4 {
                        format!("{} values, first four drawn", gs.len())
                    } else {
                        String::new()
                    };
                    figs.push(Figure {
                        number: 6,
                        title,
                        file: Some(file),
                        note,
                        series,
                    });
                }
                Err(e) => figs.push(skip(6, title, format!("{e:#}"))),
            }
        }
    }
    if figs.is_empty() {
        figs.push(skip(
            6,
            "Efficiency by run setting".into(),
            format!(
                "no LLM has more than one value of any of {}",
                COLUMNS.join(", ")
            ),
        ));
    }
    Ok(figs)
}

/// `256.0` → `256`; other values unchanged.
fn clean(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        _ => v.to_string(),
    }
}
