//! Figures and the Markdown report (`energy-fit report`). Figure code draws from plain
//! data (`Surface`, `Series`) so it does not depend on how the data were measured or fitted;
//! `assemble` turns a dataset and fit files into that data, `markdown` writes report.md (with
//! `zero_shot`'s leave-one-LLM-out tables).

pub mod canvas;
pub mod font;
pub mod heatmap;
pub mod style;

pub use heatmap::{heatmap_svg, Heatmap, Surface};
pub mod bars;
pub mod lines;
pub use bars::{bars_svg, Bars};
pub use lines::{panels_svg, Mark, Panel, Series};
pub mod aggregate;
pub mod assemble;
pub mod bycolumn;
pub mod concurrency;
pub mod curves;
pub mod design;
pub mod markdown;
mod publish;
pub mod sweetspots;
pub mod uncertain;
pub mod zero_shot;

use crate::dataset::Dataset;
use crate::fit::file::FitFile;
use anyhow::Result;
use assemble::Figure;
use std::path::Path;

/// What `build` wrote.
pub struct Report {
    pub figures: Vec<Figure>,
    pub markdown: String,
}

/// Write every figure and report.md into `out`, all or none: everything is drawn into a staging
/// folder beside `out` first and swapped into place only once all of it is on disk
/// (`publish.rs`), so a failure or a full disk leaves the previous report whole. `ds` = None
/// reports on the reference fits alone.
pub fn build(ds: Option<&Dataset>, fits: &[FitFile], out: &Path) -> Result<Report> {
    build_with_requests(ds, None, fits, out)
}

/// As [`build`], with figure 10 (the requests axis) drawn from `requests` where given: the rows of
/// `ds` together with measurements at other numbers of requests, which stay out of the tables and
/// the other figures (the shipped report's tables are at the study's 1000 requests).
pub fn build_with_requests(
    ds: Option<&Dataset>,
    requests: Option<&Dataset>,
    fits: &[FitFile],
    out: &Path,
) -> Result<Report> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create '{}': {e}", out.display()))?;
    let stage = publish::stage_dir(out);
    let _ = std::fs::remove_dir_all(&stage);
    let result = build_in(ds, requests, fits, &stage).and_then(|r| {
        publish::publish(&stage, out)?;
        Ok(r)
    });
    // After a swap the previous report is here; after a failure, the partial new one.
    let _ = std::fs::remove_dir_all(&stage);
    result
}

fn build_in(
    ds: Option<&Dataset>,
    requests: Option<&Dataset>,
    fits: &[FitFile],
    out: &Path,
) -> Result<Report> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create '{}': {e}", out.display()))?;
    let reference_only = ds.is_none();
    let subjects = match ds {
        Some(ds) => assemble::subjects_from_data(ds, fits)?,
        None => assemble::subjects_from_reference(fits),
    };
    let mut figs = Vec::new();
    if subjects.is_empty() {
        figs.push(assemble::skip(
            1,
            "All figures".into(),
            "no data and no fits".into(),
        ));
    }
    for s in &subjects {
        figs.push(assemble::fig1(s, out)?);
    }
    for s in &subjects {
        figs.push(curves::fig2(s, out)?);
    }
    figs.push(aggregate::fig3(&subjects, out)?);
    if !subjects.is_empty() {
        figs.push(assemble::fig4(&subjects, reference_only, out)?);
    }
    match ds {
        Some(ds) => {
            figs.push(assemble::fig5(&subjects, out)?);
            figs.extend(bycolumn::fig6(ds, out)?);
            let mut any7 = false;
            for s in &subjects {
                if let Some(f) = assemble::fig7(s, fits, out)? {
                    any7 = true;
                    figs.push(f);
                }
            }
            if !any7 {
                figs.push(assemble::skip(
                    7,
                    "Measured against the published surface".into(),
                    "no measured LLM has a published reference fit among the --fits files".into(),
                ));
            }
            for s in &subjects {
                figs.push(design::fig8(s, out)?);
            }
            figs.push(sweetspots::fig9(&subjects, fits, out)?);
            // The KV capacity of an 80 GiB GPU where rows do not say theirs (as `fit`'s default).
            figs.extend(concurrency::fig10(requests.unwrap_or(ds), 80.0, out)?);
        }
        None => {
            figs.push(assemble::skip(
                5,
                "Residuals of flops-mem".into(),
                "no measurements: residuals need data".into(),
            ));
            figs.push(assemble::skip(
                6,
                "Efficiency by run setting".into(),
                "no measurements".into(),
            ));
            figs.push(assemble::skip(
                7,
                "Measured against the published surface".into(),
                "no measurements to compare".into(),
            ));
            figs.push(assemble::skip(
                8,
                "Where the fit is least sure".into(),
                "published fits carry no covariance and there are no measured points".into(),
            ));
            figs.push(assemble::skip(
                9,
                "Our sweet spots against the published ones".into(),
                "no measurements".into(),
            ));
            figs.push(assemble::skip(
                10,
                "Efficiency by requests and the sweet spot against concurrency".into(),
                "no measurements".into(),
            ));
        }
    }
    let mut md = String::from("# energy-fit report\n\n");
    md.push_str(&markdown::summary(ds, &subjects, reference_only));
    md.push('\n');
    md.push_str(&markdown::tables(&subjects, reference_only));
    md.push_str(&markdown::design(&subjects, &figs));
    md.push_str(&zero_shot::section(ds));
    md.push_str(&markdown::figures(&figs));
    let path = out.join("report.md");
    crate::fsutil::write_atomic(&path, md.as_bytes())?;
    Ok(Report {
        figures: figs,
        markdown: md,
    })
}
