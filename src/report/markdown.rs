//! report.md: dataset summary, MAPE tables, coefficient table with stars, predicted (with 95 %
//! intervals) vs measured sweet spots, where the fit is least sure, then the figures (or why each
//! was skipped).

use super::assemble::{Figure, Subject};
use super::design;
use crate::analytic::all_models;
use crate::dataset::Dataset;
use crate::fit::table::{mape_table, sci, Table};
use polars::prelude::DataType;
use std::fmt::Write as _;

/// Distinct values of a text-like column, comma-joined ("-" when absent).
fn distinct(ds: &Dataset, col: &str) -> String {
    let Ok(c) = ds.df.column(col).and_then(|c| c.cast(&DataType::String)) else {
        return "-".into();
    };
    let Ok(s) = c.str() else { return "-".into() };
    let mut v: Vec<String> = s
        .iter()
        .flatten()
        .map(|x| match x.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => x.to_string(),
        })
        .collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

pub fn summary(ds: Option<&Dataset>, subjects: &[Subject], reference_only: bool) -> String {
    let mut s = String::from("## Dataset\n\n");
    match ds {
        None => {
            let _ = writeln!(s, "No measurements in the data folder: this report shows the **published TensorRT-LLM reference fits alone** ({} LLMs, H100, Pizzini Cavagna et al. 2026). Surfaces are the flops-mem predictions on the published 64…4096 grid, not measurements.\n", subjects.len());
        }
        Some(ds) => {
            let files: Vec<String> = ds
                .sources
                .iter()
                .map(|x| format!("`{}`", x.path.display()))
                .collect();
            let points: usize = subjects.iter().map(|s| s.obs.len()).sum();
            let mut t = Table::new(&["property", "value"]);
            for (k, v) in [
                ("files", files.join(", ")),
                ("sha256", format!("`{}`", &ds.sha256()[..16])),
                ("rows (fitted)", format!("{} ({points})", ds.df.height())),
                (
                    "LLMs",
                    subjects
                        .iter()
                        .map(|s| s.label.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ("GPU", distinct(ds, "gpu")),
                ("driver", distinct(ds, "driver")),
                ("engine", distinct(ds, "engine")),
                ("dtype", distinct(ds, "dtype")),
                ("requests", distinct(ds, "requests")),
                ("date", date_range(ds)),
            ] {
                t.push(vec![k.to_string(), v]);
            }
            s.push_str(&t.markdown());
            let here: Vec<String> = subjects
                .iter()
                .filter(|x| !x.fitted_here.is_empty())
                .map(|x| format!("{} ({})", x.label, x.fitted_here.join(", ")))
                .collect();
            if !here.is_empty() {
                let _ = writeln!(s, "\nNo matching fit file for: {} — fitted here with loss rel, 5-fold CV, seed 42.", here.join("; "));
            }
        }
    }
    if reference_only {
        s.push('\n');
    }
    s
}

fn date_range(ds: &Dataset) -> String {
    let d = distinct(ds, "started_at");
    let v: Vec<&str> = d.split(", ").collect();
    if v.len() > 1 {
        format!("{} … {}", v[0], v[v.len() - 1])
    } else {
        d
    }
}

pub fn tables(subjects: &[Subject], reference_only: bool) -> String {
    let names: Vec<&str> = all_models().iter().map(|m| m.name()).collect();
    let mut s = String::new();
    let rows = |get: &dyn Fn(&Subject, &str) -> Option<f64>| -> Vec<(String, Vec<Option<f64>>)> {
        subjects
            .iter()
            .map(|x| (x.label.clone(), names.iter().map(|m| get(x, m)).collect()))
            .collect()
    };
    if reference_only {
        let r = rows(&|x, m| {
            x.fits
                .get("flops-mem")?
                .published
                .as_ref()?
                .mape_pct_by_model
                .get(m)
                .copied()
        });
        let _ = writeln!(
            s,
            "## In-sample MAPE (%), published\n\n{}",
            mape_table(&names, &r).markdown()
        );
    } else {
        let r = rows(&|x, m| x.fits.get(m)?.metrics.mape_pct);
        let loss: Vec<String> = subjects
            .iter()
            .flat_map(|x| x.fits.values().map(|f| f.loss.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = writeln!(
            s,
            "## In-sample MAPE (%)\n\nLoss: {}.\n\n{}",
            loss.join(", "),
            mape_table(&names, &r).markdown()
        );
        let cv = rows(&|x, m| x.fits.get(m)?.metrics.cv_mape_pct);
        if cv.iter().any(|r| r.1.iter().any(Option::is_some)) {
            let _ = writeln!(
                s,
                "## Cross-validated MAPE (%)\n\n{}",
                mape_table(&names, &cv).markdown()
            );
        }
        let held = rows(&|x, m| x.fits.get(m)?.metrics.holdout_mape_pct);
        if held.iter().any(|r| r.1.iter().any(Option::is_some)) {
            let _ = writeln!(
                s,
                "## Hold-out MAPE (%)\n\nOver the rows measured to check a design (`role` = `holdout`), which no fit saw; blank where an LLM has none.\n\n{}",
                mape_table(&names, &held).markdown()
            );
        }
        let errs: Vec<String> = subjects
            .iter()
            .flat_map(|x| {
                x.fit_errors
                    .iter()
                    .map(move |(m, e)| format!("- {} {m}: {e}", x.label))
            })
            .collect();
        if !errs.is_empty() {
            let _ = writeln!(s, "Fits that could not be made:\n\n{}\n", errs.join("\n"));
        }
    }
    s.push_str(&beside_published(subjects));
    // Coefficients of flops-mem.
    let mut t = Table::new(&["LLM", "α", "β", "γ", "δ", "ε", "ζ"]);
    for x in subjects {
        let Some(f) = x.fits.get("flops-mem") else {
            continue;
        };
        let mut r = vec![x.label.clone()];
        r.extend(f.coefficients.iter().map(|c| {
            format!(
                "{} {}",
                sci(c.value),
                md_stars(c.stars.as_deref().unwrap_or(""))
            )
            .trim_end()
            .to_string()
        }));
        t.push(r);
    }
    let _ = writeln!(s, "## flops-mem coefficients\n\nE = α·m + β·n² + γ·n·m + δ·n + ε·m² + ζ (J per request). Stars: \\*\\*\\* p<0.001, \\*\\* p<0.01, \\* p<0.05, n.s. p≥0.05.{}\n\n{}", if reference_only { " Published fits carry no standard errors, so no stars." } else { "" }, t.markdown());
    // Sweet spots.
    let mut t = Table::new(&[
        "LLM",
        "input n",
        "measured m*",
        "predicted m* (flops-mem) [95 % interval]",
        "measured tokens/J",
    ]);
    let mut any_ci = false;
    for x in subjects {
        let Some(f) = x.fits.get("flops-mem") else {
            continue;
        };
        for sp in &f.sweet_spots {
            let fmt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
            let predicted = match (sp.predicted_output_tokens, sp.predicted_output_tokens_ci95) {
                (None, _) => "none (ε ≤ 0)".to_string(),
                (Some(m), Some([lo, hi])) => {
                    any_ci = true;
                    format!("{m:.0} [{lo:.0}, {hi:.0}]")
                }
                (Some(m), None) => format!("{m:.0}"),
            };
            t.push(vec![
                x.label.clone(),
                format!("{}", sp.input_tokens),
                fmt(sp.measured_output_tokens, 0),
                predicted,
                fmt(sp.measured_tokens_per_j, 2),
            ]);
        }
    }
    let _ = writeln!(s, "## Sweet spots: predicted vs measured\n\nm* = √((β·n² + δ·n + ζ)/ε); measured m* is the grid's best output length{}.{}\n\n{}", if reference_only { " as published" } else { "" }, if any_ci { " The 95 % interval of m* is the delta method's on log m*, from the fit's covariance (so it is asymmetric); fits without a covariance show m* alone." } else { "" }, t.markdown());
    s
}

/// Where the flops-mem fit is least sure (figure 8), one line per LLM; empty when no figure 8
/// was drawn.
/// Our flops-mem fits beside the published ones (empty without measured subjects or without the
/// shipped published fits).
fn beside_published(subjects: &[Subject]) -> String {
    use crate::fit::published::{compare, read_references, table, Ours, REFERENCE_DIR};
    let ours: Vec<Ours> = subjects
        .iter()
        .filter(|x| !x.obs.is_empty())
        .filter_map(|x| {
            Some(Ours {
                llm: &x.llm,
                fit: x.fits.get("flops-mem")?,
                measured: x.obs.iter().chain(&x.holdouts).cloned().collect(),
            })
        })
        .collect();
    let Ok(refs) = read_references(std::path::Path::new(REFERENCE_DIR)) else {
        return String::new();
    };
    if ours.is_empty() || refs.is_empty() {
        return String::new();
    }
    format!(
        "## Beside the published fits\n\nflops-mem on our engine against the published TensorRT-LLM fits on an H100 (`{REFERENCE_DIR}`), over all 13 LLMs of the study: MAPE (%) in-sample, cross-validated and on hold-out rows, the published MAPE, the sweet spot at the published input length (ours with its 95 % interval; published: estimated / measured best), and our measured tokens/J over the published surface's at every point we measured (min and median).\n\n{}\n",
        table(&compare(&ours, &refs)).markdown()
    )
}

pub fn design(subjects: &[Subject], figs: &[Figure]) -> String {
    let drawn: Vec<&str> = figs
        .iter()
        .filter(|f| f.number == 8)
        .filter_map(|f| f.file.as_deref())
        .collect();
    if drawn.is_empty() {
        return String::new();
    }
    let mut s = String::from("## Where the fit is least sure\n\n");
    let _ = writeln!(
        s,
        "Figure 8 colours every point of the 64…4096 grid (and any other length measured) by the \
         half-width of the 95 % interval of the energy per token e that flops-mem predicts there, \
         relative to e (delta method, from the fit's covariance); dots are the measured points. \
         The widest unmeasured point is the first candidate for a new measurement.\n"
    );
    for x in subjects {
        let Some(sum) = design::grid(x).ok().and_then(|g| g.summary()) else {
            continue;
        };
        let (lo, med, hi) = sum.measured;
        let file = drawn
            .iter()
            .find(|f| **f == format!("fig8-design-{}.svg", x.slug))
            .map_or(String::new(), |f| format!(" ([figure 8]({f}))"));
        let rest = match sum.widest_unmeasured {
            Some((n, m, v)) => format!(
                "; widest of the {} unmeasured points: n = {n}, m = {m} (± {} %)",
                sum.unmeasured,
                pct(v)
            ),
            None => "; every grid point is measured".into(),
        };
        let _ = writeln!(
            s,
            "- {}: ± {}–{} % (median ± {} %) on the measured points{rest}{file}.",
            x.label,
            pct(lo),
            pct(hi),
            pct(med)
        );
    }
    s.push('\n');
    s
}

/// A percentage's number: two decimals below 10, none above (e.g. "0.84", "13").
fn pct(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

pub fn figures(figs: &[Figure]) -> String {
    let mut s = String::from("## Figures\n\n");
    for f in figs {
        match &f.file {
            Some(file) => {
                let _ = writeln!(
                    s,
                    "**Figure {}. {}**{}\n\n![{}]({file})\n",
                    f.number,
                    f.title,
                    if f.note.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", f.note)
                    },
                    f.title
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "**Figure {}. {}** — skipped: {}\n",
                    f.number, f.title, f.note
                );
            }
        }
    }
    s
}

/// Stars escaped so Markdown shows them rather than reading emphasis.
fn md_stars(s: &str) -> String {
    s.replace('*', "\\*")
}
