//! Figure 9: our sweet spots against the published ones. For every measured LLM with a published
//! fit, m*(n) of our flops-mem fit (with its 95 % interval as a bar) against m*(n) of the
//! published TensorRT-LLM fit, at each input length of the published grid; points on the diagonal
//! agree. It shows whether our engine shifts the most efficient output length, and where.

use super::assemble::{reference_for, skip, write, Figure, Subject};
use super::lines::{panels_svg, Mark, Panel, Series};
use super::uncertain::Uncertain;
use crate::analytic::model_by_name;
use crate::dataset::synthetic::GRID;
use crate::fit::file::FitFile;
use anyhow::Result;
use std::path::Path;

/// Figure 9 over every measured subject with a published fit, or why it is skipped.
pub fn fig9(subjects: &[Subject], fits: &[FitFile], out: &Path) -> Result<Figure> {
    let title = "Our sweet spots against the published ones".to_string();
    let mut p = Panel {
        title: "m* at n = 64 … 4096: ours (95 % interval) against TensorRT-LLM's".into(),
        x_label: "our m* (output tokens)".into(),
        y_label: "published m* (output tokens)".into(),
        ..Panel::default()
    };
    let mut llms = 0;
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for s in subjects.iter().filter(|s| !s.obs.is_empty()) {
        let (Some(ours), Some(r)) = (s.fits.get("flops-mem"), reference_for(&s.llm, fits)) else {
            continue;
        };
        let (Ok(model), Ok(rmodel)) = (model_by_name(&ours.model), model_by_name(&r.model)) else {
            continue;
        };
        let unc = Uncertain::of(ours);
        let (c, rc) = (ours.values(), r.values());
        let mut pts = Vec::new();
        for n in GRID {
            let (Some(x), Some(y)) = (
                model.closed_form_sweet_spot(&c, n),
                rmodel.closed_form_sweet_spot(&rc, n),
            ) else {
                continue;
            };
            pts.push((x, y));
            (lo, hi) = (lo.min(x.min(y)), hi.max(x.max(y)));
            if let Some(i) = unc.as_ref().and_then(|u| u.sweet_spot(n)) {
                p.series.push(Series {
                    label: String::new(),
                    color: llms,
                    mark: Mark::Interval,
                    points: vec![(i.lo, y), (i.hi, y)],
                });
            }
        }
        if pts.is_empty() {
            continue;
        }
        p.series.push(Series {
            label: s.label.clone(),
            color: llms,
            mark: Mark::Points,
            points: pts,
        });
        llms += 1;
    }
    if llms == 0 {
        return Ok(skip(
            9,
            title,
            "no measured LLM with a flops-mem fit has a published fit with a sweet spot".into(),
        ));
    }
    p.series.push(Series {
        label: "equal".into(),
        color: 7,
        mark: Mark::Dashed,
        points: vec![(0.9 * lo, 0.9 * lo), (1.1 * hi, 1.1 * hi)],
    });
    write(
        out,
        9,
        title.clone(),
        "fig9-sweet-spots-vs-published.svg".into(),
        panels_svg(&title, &[p]),
        llms,
    )
}
