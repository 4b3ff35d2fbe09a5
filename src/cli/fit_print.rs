//! What `energy-fit fit` prints: the MAPE tables, the coefficients, the published comparison and
//! the sweet spots of every fitted group.

use super::fit::{FitArgs, Fitted};
use crate::analytic::EnergyModel;
use crate::dataset::{Dataset, Group};
use crate::fit::published;
use crate::fit::table::{mape_table, sci, Table};

use crate::fit::{intervals, Loss};
use std::path::Path;

/// Our flops-mem fits beside the published ones, when flops-mem was fitted, every group is one
/// LLM, and the published fits are where they ship.
pub(super) fn comparison(
    fitted: &[Fitted],
    groups: &[Group],
) -> Option<Vec<published::Comparison>> {
    if groups.iter().any(|g| g.key.len() > 1) {
        return None;
    }
    let ours: Vec<published::Ours> = fitted
        .iter()
        .filter(|f| f.fit.model == "flops-mem")
        .map(|f| {
            let g = &groups[f.group];
            published::Ours {
                llm: g.llm(),
                fit: &f.file,
                measured: g.obs.iter().chain(&g.holdouts).cloned().collect(),
            }
        })
        .collect();
    if ours.is_empty() {
        return None;
    }
    let refs = published::read_references(std::path::Path::new(published::REFERENCE_DIR)).ok()?;
    Some(published::compare(&ours, &refs))
}

/// One row per hold-out row of every group, one signed error per model: which points a design's
/// fit misses, and on which side.
fn holdout_table(names: &[&str], groups: &[Group], fitted: &[Fitted]) -> Table {
    let mut header = vec!["LLM", "n", "m"];
    header.extend(names);
    let mut t = Table::new(&header);
    for (gi, g) in groups.iter().enumerate() {
        for (k, o) in g.holdouts.iter().enumerate() {
            let mut row = vec![
                g.label(),
                format!("{}", o.input_tokens),
                format!("{}", o.output_tokens),
            ];
            row.extend((0..names.len()).map(|mi| {
                fitted
                    .iter()
                    .find(|f| f.group == gi && f.model == mi)
                    .and_then(|f| f.file.metrics.holdout_errors.get(k))
                    .map_or("-".into(), |e| format!("{:+.2}", e.error_pct))
            }));
            t.push(row);
        }
    }
    t
}

pub(super) fn print_tables(
    args: &FitArgs,
    out: Option<&Path>,
    ds: &Dataset,
    groups: &[Group],
    models: &[Box<dyn EnergyModel>],
    fitted: &[Fitted],
) {
    let files: Vec<String> = ds
        .sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let used: usize = groups.iter().map(|g| g.obs.len()).sum();
    println!(
        "dataset: {} rows ({used} fitted) from {}  sha256 {}",
        ds.df.height(),
        files.join(", "),
        &ds.sha256()[..16]
    );
    let loss = match args.loss {
        Loss::Rel => "rel — residual (e_pred − e)/e",
        Loss::Abs => "abs — residual e_pred − e (J/token), as published",
    };
    println!(
        "loss: {loss}; cross-validation: {}",
        if args.cv > 0 {
            format!("{}-fold, seed {}", args.cv, args.seed)
        } else {
            "off".into()
        }
    );
    println!("{}", interval_note(args.loss));
    let names: Vec<&str> = models.iter().map(|m| m.name()).collect();
    let cell = |gi: usize, mi: usize, get: &dyn Fn(&Fitted) -> Option<f64>| {
        fitted
            .iter()
            .find(|f| f.group == gi && f.model == mi)
            .and_then(get)
    };
    let table = |get: &dyn Fn(&Fitted) -> Option<f64>| {
        let rows: Vec<(String, Vec<Option<f64>>)> = groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                (
                    g.label(),
                    (0..models.len()).map(|mi| cell(gi, mi, get)).collect(),
                )
            })
            .collect();
        mape_table(&names, &rows).render()
    };
    println!("\nIn-sample MAPE (%)\n{}", table(&|f| Some(f.fit.mape_pct)));
    if args.both_losses {
        let alt = if args.loss == Loss::Rel { "abs" } else { "rel" };
        println!(
            "In-sample MAPE (%) when fitted with loss {alt}\n{}",
            table(&|f| f.file.metrics.mape_pct_by_loss.get(alt).copied())
        );
    }
    if args.cv > 0 {
        println!(
            "Cross-validated MAPE (%, {}-fold)\n{}",
            args.cv,
            table(&|f| f.fit.cv_mape_pct)
        );
    }
    if let Some(col) = &args.cv_by {
        println!(
            "Leave-one-{col}-value-out MAPE (%, fit on the other {col} values)\n{}",
            table(&|f| f.file.metrics.cv_by_mape_pct)
        );
        for f in fitted {
            if let Some(by) = &f.file.metrics.cv_by_mape_pct_by_value {
                let parts: Vec<String> = by
                    .iter()
                    .map(|(k, m)| format!("{col} {k}: {m:.2}"))
                    .collect();
                println!(
                    "  {} {} per left-out value (%): {}",
                    groups[f.group].label(),
                    f.file.model,
                    parts.join(", ")
                );
            }
        }
        println!();
    }
    if fitted
        .iter()
        .any(|f| f.fit.extrapolation_mape_pct.is_some())
    {
        println!(
            "Extrapolation MAPE (%, fit on n, m ≤ 1024, tested on the rest)\n{}",
            table(&|f| f.fit.extrapolation_mape_pct)
        );
    }
    if groups.iter().any(|g| !g.holdouts.is_empty()) {
        println!(
            "Hold-out MAPE (%, rows with role holdout, never fitted)\n{}",
            table(&|f| f.file.metrics.holdout_mape_pct)
        );
        println!(
            "Hold-out errors (%, (predicted − measured) / measured: negative where the fit predicts low)\n{}",
            holdout_table(&names, groups, fitted).render()
        );
    }
    if let Some(rows) = comparison(fitted, groups) {
        println!(
            "flops-mem beside the published fits (TensorRT-LLM on an H100, {}): MAPE (%), the sweet spot at the published input length, and our measured tokens/J over the published surface's\n{}",
            published::REFERENCE_DIR,
            published::table(&rows).render()
        );
    }
    // Coefficients of the FLOP models (all models when only baselines were fitted).
    let shown: Vec<usize> = match (0..models.len())
        .filter(|&i| names[i].starts_with("flops"))
        .collect::<Vec<_>>()
    {
        v if v.is_empty() => (0..models.len()).collect(),
        v => v,
    };
    for (gi, g) in groups.iter().enumerate() {
        for &mi in &shown {
            let Some(f) = fitted.iter().find(|f| f.group == gi && f.model == mi) else {
                continue;
            };
            println!(
                "{} — {} ({}; {} points, R² {:.5}, RMSE {} J/token)",
                g.label(),
                names[mi],
                models[mi].formula(),
                f.fit.points,
                f.fit.r2,
                sci(f.fit.rmse_j)
            );
            let mut t = Table::new(&[
                "coefficient",
                "value",
                "95 % interval",
                "std error",
                "t",
                "p",
                "",
            ]);
            let ci = intervals::coefficients(&f.fit.values(), &f.fit.covariance, f.fit.dof);
            for (c, i) in f.fit.coefficients.iter().zip(ci) {
                t.push(vec![
                    c.name.clone(),
                    sci(c.value),
                    format!("[{}, {}]", sci(i.lo), sci(i.hi)),
                    sci(c.std_error),
                    format!("{:.2}", c.t_value),
                    format!("{:.3e}", c.p_value),
                    c.stars.clone(),
                ]);
            }
            println!("{}", t.render());
        }
        print_sweet_spots(g, gi, &shown, &names, fitted);
    }
    for f in fitted
        .iter()
        .filter(|f| f.fit.cv_note.is_some() && args.cv > 0)
    {
        eprintln!(
            "note: no CV MAPE for {} {}: {}",
            groups[f.group].label(),
            names[f.model],
            f.fit.cv_note.as_deref().unwrap_or("")
        );
    }
    for f in fitted.iter() {
        for w in &f.file.warnings {
            println!(
                "warning: {} {}: {w}",
                groups[f.group].label(),
                names[f.model]
            );
        }
    }
    let written = fitted.iter().filter(|f| f.path.is_some()).count();
    match out {
        Some(out) if written > 0 => println!("wrote {written} fit files to {}/", out.display()),
        None if !args.no_write => {
            println!("fit files not written (named DATA files): pass --out DIR to keep them")
        }
        _ => {}
    }
}

fn print_sweet_spots(g: &Group, gi: usize, shown: &[usize], names: &[&str], fitted: &[Fitted]) {
    let mut header = vec![
        "input_tokens".to_string(),
        "measured m*".into(),
        "tokens/J".into(),
    ];
    header.extend(shown.iter().map(|&mi| format!("{} m* [95 %]", names[mi])));
    let mut t = Table::new(&header);
    let best = crate::sweetspot::measured_best(&g.measured());
    for &(n, m, eta) in &best {
        let mut r = vec![format!("{n}"), format!("{m}"), format!("{eta:.2}")];
        for &mi in shown {
            let s = fitted
                .iter()
                .find(|f| f.group == gi && f.model == mi)
                .and_then(|f| f.file.sweet_spots.iter().find(|s| s.input_tokens == n));
            r.push(
                match s.map(|s| (s.predicted_output_tokens, s.predicted_output_tokens_ci95)) {
                    Some((Some(p), Some([lo, hi]))) => format!("{p:.0} [{lo:.0}, {hi:.0}]"),
                    Some((Some(p), None)) => format!("{p:.0}"),
                    _ => "none".into(),
                },
            );
        }
        t.push(r);
    }
    // The fit file's spread keeps rows of other run settings apart (they are no repeats).
    let spread = fitted
        .iter()
        .find(|f| f.group == gi)
        .and_then(|f| f.file.repeats.clone())
        .unwrap_or_else(|| g.repeat_spread());
    let ratio = crate::sweetspot::best_to_worst_ratio(&g.measured())
        .map_or("-".into(), |r| format!("{r:.2}×"));
    println!(
        "{} — sweet spots (best-to-worst efficiency over the grid: {ratio})\n{}",
        g.label(),
        t.render()
    );
    if let Some(cv) = spread.max_cv_pct {
        println!("repeats: {} of {} grid points measured more than once; coefficient of variation mean {:.2} %, max {:.2} %\n", spread.points_with_repeats, spread.grid_points, spread.mean_cv_pct.unwrap_or(0.0), cv);
    }
}

/// The line saying how the printed intervals are computed.
pub fn interval_note(loss: Loss) -> String {
    let why = match loss {
        Loss::Rel => "classical covariance σ²(JᵀJ)⁻¹ of the relative residuals",
        Loss::Abs => {
            "HC3 heteroscedasticity-consistent covariance of the absolute residuals (their \
             spread grows with e)"
        }
    };
    format!(
        "intervals: 95 %, delta method with Student's t at N − k degrees of freedom (m* on log \
         scale) from the {why}"
    )
}
