//! `energy-fit predict`: energy per token, tokens per joule and the sweet spot of one input length
//! from a fit file, from coefficients given on the command line, or zero-shot from an LLM's shape
//! and a calibration file (`crate::zeroshot`).

use crate::analytic::flops_mem_batch::ConcurrencyFn;
use crate::analytic::{model_by_name, EnergyModel};
use crate::fit::file::FitFile;
use crate::fit::intervals::{self, Interval};
use crate::sweetspot;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;

/// Output range searched for a numeric sweet spot when the model has no closed form.
const NUMERIC_RANGE: (f64, f64) = (1.0, 131072.0);

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["fit", "params", "llm"])))]
pub struct PredictArgs {
    /// A JSON fit file written by `fit` (or a shipped reference fit in fits/reference/).
    #[arg(long)]
    pub fit: Option<PathBuf>,
    /// Coefficients by name, e.g. alpha=5e-3,beta=1.1e-7,gamma=6.8e-6,delta=2.6e-3,epsilon=3.9e-6,zeta=0.54
    #[arg(long)]
    pub params: Option<String>,
    /// Predict zero-shot for this LLM (catalog name, config.json or checkpoint directory) from a
    /// calibration, without measuring it.
    #[arg(long)]
    pub llm: Option<String>,
    /// Calibration file for --llm (written by `calibrate`).
    #[arg(long, requires = "llm", default_value = crate::zeroshot::file::DEFAULT_PATH)]
    pub calibration: PathBuf,
    /// Energy model of --params (default: flops-mem if zeta is given, flops if not).
    #[arg(long, requires = "params")]
    pub model: Option<String>,
    /// Input length n (tokens).
    #[arg(long)]
    pub input: u64,
    /// Output length m (tokens); default: the sweet spot.
    #[arg(long)]
    pub output: Option<u64>,
    #[command(flatten)]
    pub batch: super::predict_batch::BatchArgs,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let mut zero_shot: Option<ZeroShot> = None;
    // flops-mem-batch at the batch asked for: c(n, m) and how it was set.
    let mut batch: Option<(ConcurrencyFn, String)> = None;
    let mut bound: Option<super::predict_batch::Bound> = None;
    let (model, coefs, from, unc) = match (&args.fit, &args.params) {
        (Some(path), _) => {
            let f = FitFile::read(path)?;
            for w in &f.warnings {
                eprintln!("warning: {} ({} {}): {w}", path.display(), f.llm, f.model);
            }
            let unc = match (f.covariance(), &f.uncertainty) {
                (Some((cov, dof)), Some(u)) => Ok(Uncertainty {
                    cov,
                    dof,
                    method: u.interval_method.clone(),
                    covariance_method: u.covariance_method.clone(),
                }),
                _ if f.loss == "published" => Err("a published reference fit has no covariance"),
                _ => Err("the fit file has no covariance (written before intervals existed)"),
            };
            let model = match args.batch.bind(&f, path)? {
                Some(b) => {
                    let model: Box<dyn EnergyModel> = Box::new(
                        crate::analytic::flops_mem_batch::FlopsMemBatch::new(b.concurrency.clone()),
                    );
                    batch = Some((b.concurrency.clone(), b.what.clone()));
                    bound = Some(b);
                    model
                }
                None => f.energy_model()?,
            };
            (
                model,
                f.values(),
                format!("{} ({}, {})", path.display(), f.llm, f.model),
                unc,
            )
        }
        (None, Some(p)) => {
            let (model, coefs) = parse_params(p, args.model.as_deref())?;
            let from = format!("--params ({})", model.name());
            (
                model,
                coefs,
                from,
                Err("coefficients from --params have no covariance"),
            )
        }
        (None, None) => match &args.llm {
            Some(llm) => {
                let z = zero_shot_coefs(llm, &args.calibration)?;
                let unc = Ok(Uncertainty {
                    cov: z.cov.clone(),
                    dof: z.dof,
                    method: intervals::METHOD.into(),
                    covariance_method: "the calibration's constants (relative loss), through the flops-mem projection; their spread across LLMs is not included".into(),
                });
                let from = format!(
                    "zero-shot for {} from {} ({}, {})",
                    z.llm,
                    args.calibration.display(),
                    z.gpu,
                    z.engine
                );
                let coefs = z.coefs.clone();
                zero_shot = Some(z);
                (
                    Box::new(crate::analytic::FlopsMem) as Box<dyn EnergyModel>,
                    coefs,
                    from,
                    unc,
                )
            }
            None => bail!("give --fit FILE, --params NAME=VALUE,… or --llm NAME"),
        },
    };
    if args.fit.is_none() {
        if let Some(flag) = args.batch.given() {
            bail!("{flag} needs --fit FILE of a flops-mem-batch fit (the batch it models)");
        }
    }
    if args.input == 0 {
        bail!("--input 0: the input length must be at least 1 token");
    }
    if args.output == Some(0) {
        bail!("--output 0: the output length must be at least 1 token");
    }
    let n = args.input as f64;
    let star = sweetspot::predicted(model.as_ref(), &coefs, n, NUMERIC_RANGE.0, NUMERIC_RANGE.1)
        .output_tokens;
    let m = match (args.output, star) {
        (Some(m), _) => m as f64,
        (None, Some(s)) => s.round().max(1.0),
        (None, None) => bail!(
            "model {} has no sweet spot at n = {n}; give --output M",
            model.name()
        ),
    };
    if let Some(b) = &bound {
        b.check(n, m)?;
    }
    let e = model.energy_per_token(&coefs, n, m);
    let eta = (e > 0.0).then(|| 1.0 / e);
    let u = unc.as_ref().ok();
    let e_ci = u.map(|u| intervals::energy_per_token(model.as_ref(), &coefs, &u.cov, u.dof, n, m));
    let eta_ci = e_ci.and_then(|i| i.reciprocal());
    let star_ci = u.and_then(|u| intervals::sweet_spot(model.as_ref(), &coefs, &u.cov, u.dof, n));
    if args.json {
        let pair = |i: Option<Interval>| i.map(|i| [i.lo, i.hi]);
        let mut doc = json!({
            "input_tokens": args.input,
            "output_tokens": m,
            "energy_per_token_j": e,
            "tokens_per_j": eta,
            "sweet_spot_output_tokens": star,
            "model": model.name(),
            "energy_per_token_j_ci95": pair(e_ci),
            "tokens_per_j_ci95": pair(eta_ci),
            "sweet_spot_output_tokens_ci95": pair(star_ci),
            "interval_method": u.map(|u| &u.method),
            "covariance_method": u.map(|u| &u.covariance_method),
        });
        if let Some((c, what)) = &batch {
            doc["concurrency"] = json!(c(n, m));
            doc["batch"] = json!(what);
        }
        if let Some(z) = &zero_shot {
            doc["source"] = json!("zero-shot");
            doc["llm"] = json!(z.llm);
            doc["gpu"] = json!(z.gpu);
            doc["engine"] = json!(z.engine);
            doc["calibration"] = json!(args.calibration);
            doc["flops_mem_coefficients"] = json!(z.coefs);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("from: {from}");
    println!(
        "input_tokens: {}   output_tokens: {m}{}",
        args.input,
        if args.output.is_none() {
            " (the sweet spot)"
        } else {
            ""
        }
    );
    let within = |i: Option<Interval>, digits: usize, exp: bool| match i {
        Some(i) if exp => format!(
            "   95 % interval [{:.*e}, {:.*e}]",
            digits, i.lo, digits, i.hi
        ),
        Some(i) => format!(
            "   95 % interval [{:.*}, {:.*}]",
            digits, i.lo, digits, i.hi
        ),
        None => String::new(),
    };
    println!(
        "energy per output token: {e:.6e} J{}   energy per request: {:.4} J",
        within(e_ci, 4, true),
        e * m
    );
    if let Some((c, what)) = &batch {
        println!(
            "batch: {what}; mean sequences in flight at this point: {:.1}",
            c(n, m)
        );
    }
    match eta {
        Some(eta) => println!("efficiency: {eta:.2} tokens/J{}", within(eta_ci, 2, false)),
        None => println!("efficiency: undefined (predicted energy is not positive)"),
    }
    match star {
        Some(s) => println!(
            "sweet spot m*: {s:.1} output tokens{}",
            within(star_ci, 1, false)
        ),
        None => println!("sweet spot m*: none (e has no interior minimum in m)"),
    }
    match &unc {
        Ok(u) => println!(
            "intervals: 95 % of the fitted surface (not of one new measurement), {} method \
             (m* on log scale), Student's t at {} degrees of freedom; covariance: {}",
            u.method, u.dof, u.covariance_method
        ),
        Err(why) => println!("intervals: none available ({why})"),
    }
    Ok(())
}

/// A zero-shot prediction of an LLM: flops-mem coefficients and their covariance.
struct ZeroShot {
    llm: String,
    gpu: String,
    engine: String,
    coefs: Vec<f64>,
    cov: nalgebra::DMatrix<f64>,
    dof: f64,
}

fn zero_shot_coefs(llm: &str, calibration: &std::path::Path) -> Result<ZeroShot> {
    use crate::zeroshot::{file::CalibrationFile, model::project};
    let cfg = crate::llm::resolve_llm(llm)?;
    let cal = CalibrationFile::read(calibration).context("--calibration")?;
    let p = project(
        &cfg,
        &cal.setting,
        &cal.grid,
        &cal.values(),
        &cal.covariance(),
    )
    .with_context(|| format!("zero-shot prediction of {}", cfg.name))?;
    Ok(ZeroShot {
        llm: cfg.name,
        gpu: cal.gpu,
        engine: cal.engine,
        coefs: p.coefs,
        cov: p.covariance,
        dof: cal.dof,
    })
}

/// A fit's covariance, as its file carries it.
struct Uncertainty {
    cov: nalgebra::DMatrix<f64>,
    dof: f64,
    method: String,
    covariance_method: String,
}

/// `alpha=1e-3,beta=…` → model and coefficients in the model's order; every error names the piece.
pub fn parse_params(text: &str, model: Option<&str>) -> Result<(Box<dyn EnergyModel>, Vec<f64>)> {
    let mut given: Vec<(String, f64)> = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = piece
            .split_once('=')
            .with_context(|| format!("--params: '{piece}' is not NAME=VALUE"))?;
        let (k, v) = (k.trim(), v.trim());
        let val: f64 = v
            .parse()
            .map_err(|_| anyhow::anyhow!("--params: value of '{k}' is '{v}', not a number"))?;
        if !val.is_finite() {
            bail!("--params: value of '{k}' is '{v}', not a finite number");
        }
        if given.iter().any(|(g, _)| g == k) {
            bail!("--params: '{k}' is given twice");
        }
        given.push((k.to_string(), val));
    }
    if given.is_empty() {
        bail!("--params: no coefficients given (expected NAME=VALUE,…)");
    }
    let name = match model {
        Some(m) => m.to_string(),
        None if given.iter().any(|(k, _)| k == "zeta") => "flops-mem".into(),
        None if given.iter().any(|(k, _)| k == "alpha") => "flops".into(),
        None => bail!(
            "--params: cannot tell the model from names {:?}; add --model",
            given.iter().map(|g| &g.0).collect::<Vec<_>>()
        ),
    };
    let model = model_by_name(&name).context("--model")?;
    for (k, _) in &given {
        if !model.coef_names().contains(&k.as_str()) {
            bail!(
                "--params: model {} has no coefficient '{k}' (it has {})",
                model.name(),
                model.coef_names().join(", ")
            );
        }
    }
    let missing: Vec<&str> = model
        .coef_names()
        .iter()
        .copied()
        .filter(|c| !given.iter().any(|(k, _)| k == c))
        .collect();
    if !missing.is_empty() {
        bail!(
            "--params: missing coefficient(s) {} of model {}",
            missing.join(", "),
            model.name()
        );
    }
    let coefs = model
        .coef_names()
        .iter()
        .map(|c| given.iter().find(|(k, _)| k == c).unwrap().1)
        .collect();
    Ok((model, coefs))
}
