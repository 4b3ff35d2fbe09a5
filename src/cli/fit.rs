//! `energy-fit fit`: fit energy models to measurements, print the error table, coefficients and
//! sweet spots, and write one JSON fit file per (group, model).

use crate::analytic::{models_from_arg, EnergyModel};
use crate::dataset::{Dataset, Group};
use crate::fit::file::{file_name, FitFile};
use crate::fit::{
    batch, cv_by_mape, fit_model_named, intervals, stats, FitOptions, FitResult, Loss,
    Underdetermined,
};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Measurement files (CSV or Parquet). Default: every such file in data/.
    pub data: Vec<PathBuf>,
    /// Energy model: b1, b2, b3, b4, flops, flops-mem, a comma-separated list, or all (those
    /// six); flops-mem-batch (flops-mem plus a term divided by the concurrency) by name.
    #[arg(long, default_value = "all")]
    pub model: String,
    /// GPU memory the concurrency of flops-mem-batch is computed for (KV capacity as the dry run
    /// sizes it), when the data do not say.
    #[arg(long, value_name = "GIB", default_value_t = 80.0, value_parser = super::values::gpu_mem_gib)]
    pub gpu_mem_gib: f64,
    /// Residual minimised: rel = (e_pred − e)/e (targets MAPE), abs = e_pred − e (as published).
    #[arg(long, value_enum, default_value_t = Loss::Rel)]
    pub loss: Loss,
    /// Also fit with the other loss and report the in-sample MAPE of both.
    #[arg(long)]
    pub both_losses: bool,
    /// Folds of the cross-validated MAPE (0 skips it).
    #[arg(long, default_value_t = 5)]
    pub cv: usize,
    /// Seed of the cross-validation shuffle.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Leave-one-value-out MAPE over this run setting: fit on the rows of the other values,
    /// predict the left-out one's (requests or max_batch_size; needs two values or more).
    #[arg(long, value_name = "SETTING", value_parser = ["requests", "max_batch_size"])]
    pub cv_by: Option<String>,
    /// Fit each value of this column on its own (repeatable): engine, driver, …; the run settings
    /// requests, max_batch_size, max_num_tokens, dtype and gpu are fitted apart wherever they
    /// take several values for one LLM (flops-mem-batch spans requests and max_batch_size).
    #[arg(long = "by", value_name = "COLUMN")]
    pub by: Vec<String>,
    /// Folder for the JSON fit files. Default: fits/ for the default data in data/; for named DATA
    /// files none: their fits are printed and written only where --out says.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not write fit files.
    #[arg(long)]
    pub no_write: bool,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Few-shot: fit flops-mem with each LLM's zero-shot prediction from this calibration file as
    /// the prior, so fewer points than coefficients suffice (printed, not written).
    #[arg(long, value_name = "CALIBRATION")]
    pub prior: Option<PathBuf>,
    /// With --prior: fit only these grid points (NxM,…); the other measured points score the fit.
    #[arg(long, requires = "prior")]
    pub points: Option<String>,
    /// With --prior: fit only K points, the ones a few-shot measurement of the LLM would take,
    /// chosen from its zero-shot prior before looking at the data (Bayesian D-optimal among the
    /// measured grid points); the other measured points score the fit.
    #[arg(long, value_name = "K", requires = "prior", conflicts_with = "points", value_parser = clap::value_parser!(u64).range(1..=49))]
    pub design_points: Option<u64>,
}

pub(super) struct Fitted {
    pub(super) group: usize,
    pub(super) model: usize,
    pub(super) fit: FitResult,
    pub(super) file: FitFile,
    pub(super) path: Option<PathBuf>,
}

pub fn run(args: FitArgs) -> Result<()> {
    if args.cv == 1 {
        bail!("--cv 1: cross-validation needs at least 2 folds (or 0 to skip it)");
    }
    let models = models_from_arg(&args.model)?;
    let paths = if args.data.is_empty() {
        default_data()?
    } else {
        args.data.clone()
    };
    if let Some(prior) = &args.prior {
        return super::fit_prior::run(
            &paths,
            prior,
            args.points.as_deref(),
            args.design_points.map(|k| k as usize),
            args.json,
        );
    }
    let out = out_dir(args.out.as_deref(), &args.data);
    let ds = Dataset::load(&paths)?;
    let (groups, fits_of) = fit_groups(&ds, &args.by, &models)?;
    let opts = FitOptions {
        loss: args.loss,
        cv_folds: (args.cv > 0).then_some(args.cv),
        seed: args.seed,
    };
    let other = FitOptions {
        loss: if args.loss == Loss::Rel {
            Loss::Abs
        } else {
            Loss::Rel
        },
        cv_folds: None,
        seed: args.seed,
    };

    let mut fitted = Vec::new();
    let mut cv_by_errors = Vec::new();
    let mut too_few = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for (mi, model) in models.iter().enumerate() {
            if !fits_of[gi](model.name()) {
                continue;
            }
            let what = format!("{} ({} rows)", g.label(), g.obs.len());
            let ctx = (model.name() == BATCH_MODEL)
                .then(|| batch::context(&ds, g, args.gpu_mem_gib))
                .transpose()?;
            if let Some(c) = &ctx {
                let shape = c.llm.strip_prefix("synthetic-").unwrap_or(&c.llm);
                if crate::llm::resolve_llm(shape).is_err() {
                    bail!(
                        "{what}: flops-mem-batch needs the LLM's shape for its concurrency, but \
                         column 'llm' names '{}', neither a catalog LLM (energy-fit llms) nor a \
                         config.json path; fit it with the models of n and m alone",
                        c.llm
                    );
                }
            }
            let bound = ctx
                .as_ref()
                .map(|c| c.model())
                .transpose()
                .with_context(|| format!("--gpu-mem-gib {}", args.gpu_mem_gib))?;
            let model: &dyn EnergyModel = match &bound {
                Some(b) => b,
                None => model.as_ref(),
            };
            let mut filled;
            let g = match &ctx {
                Some(c) => {
                    filled = g.clone();
                    batch::fill_concurrency(&ds, &mut filled, c)?;
                    one_concurrency_refused(&filled, &what)?;
                    &filled
                }
                None => g,
            };
            // A group the data cannot determine for one model (a design's few points at one
            // requests value, which flops-mem-batch fits with the others) is left out of that
            // model's table and named, rather than failing the whole run.
            let fit = match fit_model_named(model, &g.obs, &opts, &what) {
                Ok(f) => f,
                Err(e) if groups.len() > 1 && e.downcast_ref::<Underdetermined>().is_some() => {
                    too_few.push(format!("{e:#}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut file = FitFile::from_fit(&fit, model, g, &ds, opts.cv_folds);
            file.batch = ctx;
            if let Some(col) = &args.cv_by {
                let labels = batch::counts_of(&ds, g, col)?;
                match cv_by_mape(model, &g.obs, &labels, opts.loss, col, &what) {
                    Ok(v) => {
                        file.metrics.cv_by = Some(col.clone());
                        file.metrics.cv_by_mape_pct = Some(v.mape_pct);
                        file.metrics.cv_by_mape_pct_by_value = Some(v.by_value);
                    }
                    Err(e) => cv_by_errors.push(format!("{e:#}")),
                }
            }
            if args.both_losses {
                let alt = fit_model_named(model, &g.obs, &other, &what)?;
                file.metrics
                    .mape_pct_by_loss
                    .insert(fit.loss.name().into(), fit.mape_pct);
                file.metrics
                    .mape_pct_by_loss
                    .insert(alt.loss.name().into(), alt.mape_pct);
            }
            let path = out
                .as_ref()
                .filter(|_| !args.no_write)
                .map(|o| o.join(file_name(g, model.name())));
            fitted.push(Fitted {
                group: gi,
                model: mi,
                fit,
                file,
                path,
            });
        }
    }
    if fitted.is_empty() {
        if let Some(e) = too_few.first() {
            bail!("{e}");
        }
    }
    for e in &too_few {
        eprintln!("note: not fitted: {e}");
    }
    if let Some(col) = &args.cv_by {
        if fitted
            .iter()
            .all(|f| f.file.metrics.cv_by_mape_pct.is_none())
        {
            bail!(
                "--cv-by {col}: no fit could leave a {col} value out: {}",
                cv_by_errors
                    .first()
                    .map_or("no group fitted", |e| e.as_str())
            );
        }
    }
    write_all(&fitted, &paths)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_doc(&fitted, &groups))?
        );
    } else {
        super::fit_print::print_tables(&args, out.as_deref(), &ds, &groups, &models, &fitted);
    }
    Ok(())
}

const BATCH_MODEL: &str = "flops-mem-batch";

/// Which models a group is fitted with.
type Fits = Box<dyn Fn(&str) -> bool>;

/// The groups of the run, sorted by key, and which models each is fitted with: the models of n
/// and m alone on groups split by every run setting that varies; flops-mem-batch on groups that
/// span the settings it models (`fit::batch::SPANS`). Where the two splits agree (one value of
/// each spanned setting) one group serves both.
fn fit_groups(
    ds: &Dataset,
    by: &[String],
    models: &[Box<dyn EnergyModel>],
) -> Result<(Vec<Group>, Vec<Fits>)> {
    let mut out: Vec<(Group, bool, bool)> = Vec::new();
    if models.iter().any(|m| m.name() != BATCH_MODEL) {
        out.extend(ds.groups(by)?.into_iter().map(|g| (g, true, false)));
    }
    if models.iter().any(|m| m.name() == BATCH_MODEL) {
        for g in ds.groups_spanning(by, &batch::SPANS)? {
            match out.iter_mut().find(|(h, _, _)| h.key == g.key) {
                Some(h) => h.2 = true,
                None => out.push((g, false, true)),
            }
        }
    }
    out.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let fits = out
        .iter()
        .map(|&(_, plain, spans)| -> Fits {
            Box::new(move |name: &str| if name == BATCH_MODEL { spans } else { plain })
        })
        .collect();
    Ok((out.into_iter().map(|(g, _, _)| g).collect(), fits))
}

/// Write every fit file of the run, all or none: each is staged to a hidden temporary first and
/// only when all are on disk are they renamed into place, so a full disk or a failure leaves the
/// previous fits whole and never a mix of old and new models.
fn write_all(fitted: &[Fitted], inputs: &[PathBuf]) -> Result<()> {
    let mut staged = crate::fsutil::Staged::new();
    for f in fitted {
        let Some(p) = &f.path else { continue };
        if let Some(i) = inputs.iter().find(|i| crate::fsutil::same_file(i, p)) {
            bail!(
                "fit file {} is the input {}; choose another --out",
                p.display(),
                i.display()
            );
        }
        staged
            .stage(p, f.file.to_json()?.as_bytes())
            .context("no fit file was written (the previous ones are unchanged)")?;
    }
    staged
        .commit()
        .context("writing the fit files (the previous ones are unchanged)")
}

/// Where fit files go: `--out` when given; else fits/ for the default data (every file in data/)
/// and nowhere for named DATA files. A file fitted at hand thus leaves no folder behind wherever
/// the command happens to run, and never touches the shipped fits; its tables are printed.
pub fn out_dir(out: Option<&Path>, data: &[PathBuf]) -> Option<PathBuf> {
    match out {
        Some(o) => Some(o.to_path_buf()),
        None if data.is_empty() => Some(PathBuf::from("fits")),
        None => None,
    }
}

/// Every measurement file in data/, or a clear error when there is none.
pub fn default_data() -> Result<Vec<PathBuf>> {
    let dir = PathBuf::from("data");
    let files = Dataset::files_in(&dir)
        .context("no DATA given and the default folder data/ cannot be read")?;
    if files.is_empty() {
        bail!("no DATA given and data/ holds no .csv or .parquet file: pass measurement files or run `energy-fit measure`");
    }
    Ok(files)
}

fn json_doc(fitted: &[Fitted], groups: &[Group]) -> Value {
    let fits: Vec<Value> = fitted
        .iter()
        .map(|f| {
            let map = |get: &dyn Fn(&crate::fit::Coefficient) -> Value| -> Map<String, Value> {
                f.fit
                    .coefficients
                    .iter()
                    .map(|c| (c.name.clone(), get(c)))
                    .collect()
            };
            let ci95: Map<String, Value> = f
                .file
                .coefficients
                .iter()
                .map(|c| (c.name.clone(), json!(c.ci95)))
                .collect();
            json!({
                "llm": groups[f.group].llm(),
                "group": f.file.group,
                "model": f.fit.model,
                "loss": f.fit.loss.name(),
                "points": f.fit.points,
                "mape_pct": f.fit.mape_pct,
                "cv_mape_pct": f.fit.cv_mape_pct,
                "extrapolation_mape_pct": f.fit.extrapolation_mape_pct,
                "cv_by": f.file.metrics.cv_by,
                "cv_by_mape_pct": f.file.metrics.cv_by_mape_pct,
                "cv_by_mape_pct_by_value": f.file.metrics.cv_by_mape_pct_by_value,
                "holdout_mape_pct": f.file.metrics.holdout_mape_pct,
                "holdout_points": groups[f.group].holdouts.len(),
                "holdout_errors": f.file.metrics.holdout_errors,
                "rmse_j": f.fit.rmse_j,
                "r2": f.file.metrics.r2,
                "aic": f.fit.aic,
                "bic": f.fit.bic,
                "mape_pct_by_loss": f.file.metrics.mape_pct_by_loss,
                "coefficients": map(&|c| json!(c.value)),
                "std_errors": map(&|c| json!(c.std_error)),
                "t_values": map(&|c| json!(c.t_value)),
                "p_values": map(&|c| json!(c.p_value)),
                "stars": map(&|c| json!(c.stars)),
                "ci95": ci95,
                "covariance": f.file.uncertainty.as_ref().map(|u| &u.covariance),
                "covariance_method": stats::covariance_method(f.fit.loss),
                "interval_method": intervals::METHOD,
                "dof": f.fit.dof,
                "sweet_spots": f.file.sweet_spots,
                "warnings": f.file.warnings,
                "file": f.path.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    json!({ "fits": fits, "published_comparison": super::fit_print::comparison(fitted, groups) })
}

/// flops-mem-batch's η·m/c is α·m over rows that all run at one concurrency c (one requests
/// value below the batch limits, or `--by requests`): say so, rather than that the design is
/// singular for want of more lengths.
fn one_concurrency_refused(g: &Group, what: &str) -> Result<()> {
    let cs: Vec<f64> = g.obs.iter().filter_map(|o| o.concurrency).collect();
    let (lo, hi) = cs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &c| {
        (lo.min(c), hi.max(c))
    });
    if cs.len() == g.obs.len() && !cs.is_empty() && hi - lo <= 1e-9 * hi {
        bail!(
            "{what}: every row runs at concurrency {lo}, so flops-mem-batch's eta (the step cost \
             shared by the sequences in flight) cannot be told from alpha; fit rows of several \
             requests values together (without --by requests), or a model of n and m alone"
        );
    }
    Ok(())
}
