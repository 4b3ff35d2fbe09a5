//! From a dataset and fit files to the report's figures. Each LLM gets one `Subject`: its
//! measured points (if any) and its six fits (read from --fits when a file matches the group and
//! dataset, fitted here otherwise). With no data, the subjects are the published reference fits
//! and the surfaces are their predictions. A figure that cannot be drawn is skipped with the
//! reason, never a panic. A matching fit file without covariance (written before intervals
//! existed) is used as it is: its figures go without intervals. Figure 2 is drawn in `curves`,
//! figure 6 in `bycolumn`, figure 8 in `design`.

use super::canvas::save;
use super::heatmap::{heatmap_svg, Heatmap, Surface};
use super::lines::{panels_svg, Mark, Panel, Series};
use super::style::ColorMap;
use super::{bars_svg, Bars};
use crate::analytic::{all_models, model_by_name};
use crate::dataset::{synthetic::GRID, Dataset, Obs};
use crate::fit::file::FitFile;
use crate::fit::{fit_model_named, FitOptions};
use crate::sweetspot;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// One LLM (or group) of the report.
pub struct Subject {
    pub label: String,
    pub slug: String,
    pub llm: String,
    pub obs: Vec<Obs>,
    /// Hold-out rows (measured, never fitted), drawn apart.
    pub holdouts: Vec<Obs>,
    /// Fits by model name.
    pub fits: BTreeMap<String, FitFile>,
    /// Why a model has no fit.
    pub fit_errors: BTreeMap<String, String>,
    /// Models fitted here because no fit file matched.
    pub fitted_here: Vec<String>,
}

/// A written figure or a skipped one.
pub struct Figure {
    pub number: u8,
    pub title: String,
    /// Path relative to the output folder; `None` = skipped.
    pub file: Option<String>,
    pub note: String,
    /// Series (or cells for heatmaps) drawn, for tests and captions.
    pub series: usize,
}

impl Subject {
    /// Every row measured, fitted rows then hold-outs.
    fn measured(&self) -> Vec<Obs> {
        self.obs.iter().chain(&self.holdouts).cloned().collect()
    }
}

/// Subjects from measured data: fits from `fits` where they match, fitted here otherwise.
pub fn subjects_from_data(ds: &Dataset, fits: &[FitFile]) -> Result<Vec<Subject>> {
    let sha = ds.sha256();
    let mut out = Vec::new();
    for g in ds.groups(&[])? {
        let key: BTreeMap<String, String> = g.key.iter().cloned().collect();
        let mut s = Subject {
            label: g.label(),
            slug: g.file_stem(),
            llm: g.llm().to_string(),
            obs: g.obs.clone(),
            holdouts: g.holdouts.clone(),
            fits: BTreeMap::new(),
            fit_errors: BTreeMap::new(),
            fitted_here: vec![],
        };
        for model in all_models() {
            let name = model.name();
            let found = fits.iter().find(|f| {
                f.published.is_none()
                    && f.model == name
                    && f.group == key
                    && f.dataset.as_ref().is_none_or(|d| d.sha256 == sha)
            });
            if let Some(f) = found {
                s.fits.insert(name.into(), f.clone());
                continue;
            }
            let what = format!("{} ({} rows)", g.label(), g.obs.len());
            match fit_model_named(model.as_ref(), &g.obs, &FitOptions::default(), &what) {
                Ok(fit) => {
                    s.fits.insert(
                        name.into(),
                        FitFile::from_fit(&fit, model.as_ref(), &g, ds, Some(5)),
                    );
                    s.fitted_here.push(name.into());
                }
                Err(e) => {
                    s.fit_errors.insert(name.into(), format!("{e:#}"));
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Subjects from the published reference fits alone (no measurements).
pub fn subjects_from_reference(fits: &[FitFile]) -> Vec<Subject> {
    fits.iter()
        .filter(|f| f.published.is_some() && f.model == "flops-mem")
        .map(|f| Subject {
            label: format!("{} (published)", f.llm),
            slug: format!("reference-{}", f.llm),
            llm: f.llm.clone(),
            obs: vec![],
            holdouts: vec![],
            fits: BTreeMap::from([(f.model.clone(), f.clone())]),
            fit_errors: BTreeMap::new(),
            fitted_here: vec![],
        })
        .collect()
}

/// The reference fit for an LLM; a `synthetic-` prefix is ignored so labelled synthetic tests can
/// exercise the comparison.
pub fn reference_for<'a>(llm: &str, fits: &'a [FitFile]) -> Option<&'a FitFile> {
    let name = llm.strip_prefix("synthetic-").unwrap_or(llm);
    fits.iter().find(|f| {
        f.published.is_some() && f.model == "flops-mem" && f.llm.eq_ignore_ascii_case(name)
    })
}

pub(crate) fn predict(f: &FitFile, n: f64, m: f64) -> Option<f64> {
    let model = model_by_name(&f.model).ok()?;
    Some(model.energy_per_token(&f.values(), n, m)).filter(|e| e.is_finite() && *e > 0.0)
}

/// Tokens/J surface: measured means of the fitted rows, or the flops-mem prediction on the
/// published grid.
pub fn efficiency_surface(s: &Subject) -> Option<Surface> {
    if !s.obs.is_empty() {
        return Some(Surface::from_points(&tokens_per_j(s, &s.obs)));
    }
    fitted_surface(s)
}

/// Every measured point's mean tokens/J, hold-outs included, and where the hold-outs are: what
/// the heatmaps of measurements show (hold-outs ringed), so that no measured point is left out of
/// a figure of what was measured. `None` without measurements.
pub fn measured_surface(s: &Subject) -> Option<(Surface, Vec<(f64, f64)>)> {
    if s.obs.is_empty() {
        return None;
    }
    let all = s.measured();
    let rings = tokens_per_j(s, &s.holdouts)
        .into_iter()
        .map(|(n, m, _)| (n, m))
        .collect();
    Some((Surface::from_points(&tokens_per_j(s, &all)), rings))
}

/// (n, m, mean tokens/J) of `obs`, one per point.
fn tokens_per_j(s: &Subject, obs: &[Obs]) -> Vec<(f64, f64, f64)> {
    let g = crate::dataset::Group {
        key: vec![("llm".into(), s.llm.clone())],
        obs: obs.to_vec(),
        holdouts: Vec::new(),
        rows: Vec::new(),
    };
    g.point_means()
        .into_iter()
        .map(|(n, m, e)| (n, m, 1.0 / e))
        .collect()
}

/// Tokens/J of the subject's flops-mem fit on the published grid.
pub fn fitted_surface(s: &Subject) -> Option<Surface> {
    let f = s.fits.get("flops-mem")?;
    Some(Surface::from_fn(&GRID, &GRID, |n, m| {
        predict(f, n, m).map_or(f64::NAN, |e| 1.0 / e)
    }))
}

pub(crate) fn log_space(lo: f64, hi: f64, k: usize) -> Vec<f64> {
    (0..k)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (k - 1) as f64).exp())
        .collect()
}

pub(crate) fn write(
    out: &Path,
    number: u8,
    title: String,
    file: String,
    svg: Result<String>,
    series: usize,
) -> Result<Figure> {
    match svg {
        Ok(svg) => {
            save(&svg, &out.join(&file))?;
            Ok(Figure {
                number,
                title,
                file: Some(file),
                note: String::new(),
                series,
            })
        }
        Err(e) => Ok(skip(number, title, format!("{e:#}"))),
    }
}

pub fn skip(number: u8, title: String, why: String) -> Figure {
    Figure {
        number,
        title,
        file: None,
        note: why,
        series: 0,
    }
}

/// Figure 1: tokens/J heatmap per subject with the measured (or predicted-best) cell marked.
pub fn fig1(s: &Subject, out: &Path) -> Result<Figure> {
    let title = format!("Energy efficiency of {}", s.label);
    let (surface, rings) = match measured_surface(s) {
        Some(m) => m,
        None => match fitted_surface(s) {
            Some(f) => (f, vec![]),
            None => return Ok(skip(1, title, "no data and no flops-mem fit".into())),
        },
    };
    let (marked, marked_label) = if s.obs.is_empty() {
        let best = surface.inputs.iter().enumerate().filter_map(|(i, &n)| {
            let j = (0..surface.outputs.len())
                .filter(|&j| surface.values[i][j].is_some())
                .max_by(|&a, &b| {
                    surface.values[i][a]
                        .unwrap_or(0.0)
                        .total_cmp(&surface.values[i][b].unwrap_or(0.0))
                })?;
            Some((n, surface.outputs[j]))
        });
        (
            best.collect(),
            "highest predicted tokens/J of each input length (published fit)".to_string(),
        )
    } else {
        (
            sweetspot::measured_best(&s.measured())
                .into_iter()
                .map(|(n, m, _)| (n, m))
                .collect(),
            "measured sweet spot of each input length".to_string(),
        )
    };
    let h = Heatmap {
        title: title.clone(),
        value_label: "energy efficiency (tokens/J)".into(),
        surface: &surface,
        marked,
        marked_label,
        cmap: ColorMap::Viridis,
        range: None,
        dots: vec![],
        rings,
        dots_label: String::new(),
        log: false,
    };
    write(
        out,
        1,
        title,
        format!("fig1-efficiency-{}.svg", s.slug),
        heatmap_svg(&h),
        surface.cells(),
    )
}

/// Figure 4: MAPE by model and LLM, in-sample and cross-validated.
pub fn fig4(subjects: &[Subject], reference_only: bool, out: &Path) -> Result<Figure> {
    let title = "MAPE by model and LLM".to_string();
    let names: Vec<&str> = all_models().iter().map(|m| m.name()).collect();
    let cats: Vec<String> = subjects.iter().map(|s| s.label.clone()).collect();
    let value = |s: &Subject, m: &str, cv: bool| -> Option<f64> {
        if reference_only {
            return s
                .fits
                .get("flops-mem")?
                .published
                .as_ref()?
                .mape_pct_by_model
                .get(m)
                .copied()
                .filter(|_| !cv);
        }
        let f = s.fits.get(m)?;
        if cv {
            f.metrics.cv_mape_pct
        } else {
            f.metrics.mape_pct
        }
    };
    let panel = |cv: bool, t: &str| Bars {
        title: t.into(),
        x_label: "MAPE (%, log scale)".into(),
        categories: cats.clone(),
        members: names.iter().map(|s| s.to_string()).collect(),
        values: subjects
            .iter()
            .map(|s| names.iter().map(|m| value(s, m, cv)).collect())
            .collect(),
    };
    let mut panels = vec![panel(
        false,
        if reference_only {
            "in-sample MAPE, published"
        } else {
            "in-sample MAPE"
        },
    )];
    let cv = panel(true, "5-fold cross-validated MAPE");
    let mut note = String::new();
    if cv.count() > 0 {
        panels.push(cv);
    } else {
        note = "no cross-validated MAPE available (reference fits, or too few points per fold): CV panel left out".into();
    }
    let series = panels.iter().map(|p| p.count()).sum();
    let mut f = write(
        out,
        4,
        title,
        "fig4-mape.svg".into(),
        bars_svg("Model error by LLM", &panels),
        series,
    )?;
    if f.file.is_some() {
        f.note = note;
    }
    Ok(f)
}

/// Figure 5: relative residuals of flops-mem against input and output length.
pub fn fig5(subjects: &[Subject], out: &Path) -> Result<Figure> {
    let title = "Residuals of flops-mem".to_string();
    let mut by_n = Panel {
        title: "against input length".into(),
        x_label: "input length n (tokens)".into(),
        y_label: "residual (e_pred − e)/e (%)".into(),
        hline: Some(0.0),
        ..Panel::default()
    };
    let mut by_m = Panel {
        title: "against output length".into(),
        x_label: "output length m (tokens)".into(),
        y_label: "residual (e_pred − e)/e (%)".into(),
        hline: Some(0.0),
        ..Panel::default()
    };
    let (mut ns, mut ms) = (vec![], vec![]);
    let with_data = subjects.iter().filter(|s| !s.obs.is_empty()).count();
    for (i, s) in subjects.iter().filter(|s| !s.obs.is_empty()).enumerate() {
        let Some(f) = s.fits.get("flops-mem") else {
            continue;
        };
        // Dodge each LLM sideways (in log2 units) so points of one grid length do not hide each other.
        let dodge =
            2f64.powf((i as f64 - (with_data as f64 - 1.0) / 2.0) * 0.5 / with_data.max(1) as f64);
        let r: Vec<(f64, f64, f64)> = s
            .obs
            .iter()
            .filter_map(|o| {
                predict(f, o.input_tokens, o.output_tokens).map(|p| {
                    (
                        o.input_tokens,
                        o.output_tokens,
                        100.0 * (p - o.energy_per_token_j) / o.energy_per_token_j,
                    )
                })
            })
            .collect();
        ns.extend(r.iter().map(|x| x.0));
        ms.extend(r.iter().map(|x| x.1));
        by_n.series.push(Series {
            label: s.label.clone(),
            color: i,
            mark: Mark::Points,
            points: r.iter().map(|x| (x.0 * dodge, x.2)).collect(),
        });
        by_m.series.push(Series {
            label: s.label.clone(),
            color: i,
            mark: Mark::Points,
            points: r.iter().map(|x| (x.1 * dodge, x.2)).collect(),
        });
    }
    if by_n.series.is_empty() {
        return Ok(skip(
            5,
            title,
            "no measured data with a flops-mem fit".into(),
        ));
    }
    by_n.x_log2_ticks = Some(ns);
    by_m.x_log2_ticks = Some(ms);
    let series = by_n.drawn() + by_m.drawn();
    write(
        out,
        5,
        title,
        "fig5-residuals.svg".into(),
        panels_svg("Relative residuals of the flops-mem fit", &[by_n, by_m]),
        series,
    )
}

/// Figure 7: measured tokens/J over the reference (published flops-mem) prediction.
pub fn fig7(s: &Subject, fits: &[FitFile], out: &Path) -> Result<Option<Figure>> {
    let Some(r) = reference_for(&s.llm, fits) else {
        return Ok(None);
    };
    let title = format!("{} against the published TensorRT-LLM surface", s.label);
    let Some((meas, rings)) = measured_surface(s) else {
        return Ok(None);
    };
    let pts: Vec<(f64, f64, f64)> = meas
        .inputs
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| {
            let meas = &meas;
            meas.outputs
                .iter()
                .enumerate()
                .filter_map(move |(j, &m)| Some((n, m, meas.values[i][j]? * predict(r, n, m)?)))
        })
        .collect();
    let surface = Surface::from_points(&pts);
    let h = Heatmap {
        title: format!("{}: measured / published tokens/J", s.label),
        value_label: "ratio (ours / TensorRT-LLM, H100)".into(),
        surface: &surface,
        marked: vec![],
        marked_label: String::new(),
        cmap: ColorMap::Cividis,
        range: Some(parity_range(&surface)),
        dots: vec![],
        rings,
        dots_label: String::new(),
        log: false,
    };
    write(
        out,
        7,
        title,
        format!("fig7-vs-reference-{}.svg", s.slug),
        heatmap_svg(&h),
        surface.cells(),
    )
    .map(Some)
}

/// Colour range of a ratio map that always contains 1 (parity), so the colour says above or below.
fn parity_range(s: &Surface) -> (f64, f64) {
    let lo = s.present().fold(f64::MAX, f64::min).min(1.0);
    let hi = s.present().fold(f64::MIN, f64::max).max(1.0);
    (lo, hi)
}
