//! `energy-fit calibrate`: fit the zero-shot constants across LLMs (measured data or the published
//! surfaces), write a calibration file, and optionally score the model leave-one-LLM-out beside
//! the two naive baselines.

use crate::dataset::Dataset;
use crate::fit::file::FitFile;
use crate::fit::table::{sci, Table};
use crate::llm::resolve_llm;
use crate::zeroshot::calibrate::{calibrate, prepare, LlmPoints, Prepared, MIN_LLMS};
use crate::zeroshot::file::CalibrationFile;
use crate::zeroshot::loo::{leave_one_out, Loo, LooTable};
use crate::zeroshot::model::TERMS;
use crate::zeroshot::{Setting, GRID};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// Measurement files (CSV or Parquet). Default: every such file in data/.
    pub data: Vec<PathBuf>,
    /// Calibrate on the published flops-mem surfaces (fits/reference/), each evaluated on the
    /// 7 × 7 grid, instead of measurements.
    #[arg(long, conflicts_with = "data")]
    pub reference: bool,
    /// Folder of the published reference fits, for --reference.
    #[arg(long, default_value = "fits/reference")]
    pub reference_dir: PathBuf,
    /// Leave this LLM out of the calibration (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// For each LLM, calibrate on the others and score its prediction (and the two baselines).
    #[arg(long)]
    pub leave_one_out: bool,
    /// Calibration file to write. Default: fits/calibration/h100-reference.json with
    /// --reference, fits/calibration/measured.json otherwise.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// What was loaded: per-LLM points, GPU, engine and a description of the source.
struct Loaded {
    data: Vec<LlmPoints>,
    gpu: String,
    engine: String,
    source: String,
    /// The run setting every measured row shares (the published one for the reference surfaces).
    setting: Setting,
}

fn load_reference(dir: &Path) -> Result<Loaded> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("--reference-dir {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".flops-mem.json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "--reference-dir {}: no *.flops-mem.json reference fits",
            dir.display()
        );
    }
    let (mut data, mut gpus, mut engines) = (Vec::new(), Vec::new(), Vec::new());
    for p in &paths {
        let f = FitFile::read(p)?;
        let cfg = resolve_llm(&f.llm).with_context(|| format!("{}: field 'llm'", p.display()))?;
        let c = f.values();
        let points = GRID
            .iter()
            .flat_map(|&n| GRID.iter().map(move |&m| (n, m)))
            .map(|(n, m)| {
                let b = crate::zeroshot::model::flops_mem_basis(n as f64, m as f64);
                (n, m, b.iter().zip(&c).map(|(x, k)| x * k).sum())
            })
            .collect();
        if let Some(pb) = &f.published {
            gpus.push(pb.gpu.clone());
            engines.push(pb.engine.clone());
        }
        data.push(LlmPoints { cfg, points });
    }
    Ok(Loaded {
        data,
        gpu: joined(gpus),
        engine: joined(engines),
        source: format!(
            "published flops-mem surfaces in {} on the 7 x 7 grid",
            dir.display()
        ),
        setting: Setting::default(),
    })
}

fn load_measured(paths: &[PathBuf]) -> Result<Loaded> {
    let ds = Dataset::load(paths)?;
    // The GPU and engine are recorded where the file has them; a file of other tools may not.
    let by: Vec<String> = ["gpu", "engine"]
        .into_iter()
        .filter(|c| ds.df.column(c).is_ok())
        .map(String::from)
        .collect();
    let groups = ds.groups(&by)?;
    let setting = shared_setting(&ds, &groups)?;
    let (mut by_llm, mut gpus, mut engines) = (BTreeMap::new(), Vec::new(), Vec::new());
    for g in &groups {
        let pts: &mut Vec<(usize, usize, f64)> = by_llm.entry(g.llm().to_string()).or_default();
        pts.extend(g.obs.iter().map(|o| {
            (
                o.input_tokens as usize,
                o.output_tokens as usize,
                o.energy_per_token_j,
            )
        }));
        for (k, v) in &g.key {
            match k.as_str() {
                "gpu" => gpus.push(v.clone()),
                "engine" => engines.push(v.clone()),
                _ => {}
            }
        }
    }
    let data = by_llm
        .into_iter()
        .map(|(llm, points)| {
            let cfg = resolve_llm(&llm)
                .with_context(|| format!("column 'llm': no shape known for LLM '{llm}'"))?;
            Ok(LlmPoints { cfg, points })
        })
        .collect::<Result<Vec<_>>>()?;
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Ok(Loaded {
        data,
        gpu: joined(gpus),
        engine: joined(engines),
        source: format!("measurements: {}", files.join(", ")),
        setting,
    })
}

/// The run setting of every group: the constants take the concurrency of one setting (the
/// calibration file states it), so rows measured under several, within an LLM or between
/// LLMs, are refused naming the column and the values rather than pooled.
fn shared_setting(ds: &Dataset, groups: &[crate::dataset::Group]) -> Result<Setting> {
    let mut seen: Vec<(String, crate::dataset::RunSettings)> = Vec::new();
    for g in groups {
        seen.push((g.label(), ds.run_settings(g)?));
    }
    let Some((_, first)) = seen.first().cloned() else {
        bail!("no fitted rows to calibrate on");
    };
    for (label, s) in &seen {
        let values = [
            (
                "requests",
                first.requests.to_string(),
                s.requests.to_string(),
            ),
            (
                "max_batch_size",
                first.max_batch_size.to_string(),
                s.max_batch_size.to_string(),
            ),
            (
                "max_num_tokens",
                first.max_num_tokens.to_string(),
                s.max_num_tokens.to_string(),
            ),
            ("dtype", first.dtype.clone(), s.dtype.clone()),
        ];
        if let Some((col, a, b)) = values.iter().find(|v| v.1 != v.2) {
            bail!(
                "calibration takes rows of one run setting, but column '{col}' is {a} for {} and \
                 {b} for {label}; calibrate on the rows of one setting",
                seen[0].0
            );
        }
    }
    let dtype_bytes = crate::measure::plan::dtype_bytes(&first.dtype)
        .with_context(|| format!("column 'dtype': unknown dtype {:?}", first.dtype))?;
    Ok(Setting {
        requests: first.requests as usize,
        max_batch_size: first.max_batch_size as usize,
        max_num_tokens: first.max_num_tokens as usize,
        dtype_bytes,
        ..Setting::default()
    })
}

/// Distinct values, sorted, joined with "; ".
fn joined(mut v: Vec<String>) -> String {
    v.sort();
    v.dedup();
    if v.is_empty() {
        "unknown".into()
    } else {
        v.join("; ")
    }
}

pub fn run(args: CalibrateArgs) -> Result<()> {
    let mut loaded = if args.reference {
        load_reference(&args.reference_dir)?
    } else {
        let paths = if args.data.is_empty() {
            Dataset::files_in(Path::new("data")).context("reading data/")?
        } else {
            args.data.clone()
        };
        load_measured(&paths)?
    };
    for x in &args.exclude {
        let before = loaded.data.len();
        loaded.data.retain(|d| !d.cfg.name.eq_ignore_ascii_case(x));
        if loaded.data.len() == before {
            bail!("--exclude {x}: no such LLM in the calibration data");
        }
    }
    let setting = loaded.setting;
    let prepared = prepare(&loaded.data, &setting)?;
    let names: Vec<&str> = prepared.iter().map(|d| d.cfg.name.as_str()).collect();
    if prepared.len() < MIN_LLMS {
        bail!(
            "calibration needs at least {MIN_LLMS} distinct LLMs; the data has {} ({})",
            prepared.len(),
            names.join(", ")
        );
    }
    let constants = calibrate(&prepared)?;
    let loo = if args.leave_one_out {
        if prepared.len() < MIN_LLMS + 1 {
            bail!(
                "--leave-one-out needs at least {} LLMs (each left out in turn, {MIN_LLMS} to calibrate on); the data has {} ({})",
                MIN_LLMS + 1,
                prepared.len(),
                names.join(", ")
            );
        }
        Some(leave_one_out(&prepared, &setting)?)
    } else {
        None
    };
    let file = CalibrationFile::new(
        &constants,
        &loaded.gpu,
        &loaded.engine,
        &loaded.source,
        setting,
        &GRID,
        loo.as_ref(),
    );
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(if args.reference {
            "fits/calibration/h100-reference.json"
        } else {
            "fits/calibration/measured.json"
        })
    });
    file.write(&out)?;
    if args.json {
        let mut doc = json!({ "calibration": file, "calibration_file": out });
        if let Some(l) = &loo {
            doc["llms"] = serde_json::to_value(&l.zero_shot.llms)?;
            doc["mean_mape_pct"] = json!(l.zero_shot.mean_mape_pct);
            doc["baselines"] = json!({
                "params_proportional": l.params_proportional,
                "nearest_llm": l.nearest_llm,
            });
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print_constants(&file, &prepared);
    if let Some(l) = &loo {
        print_loo(l);
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn print_constants(f: &CalibrationFile, data: &[Prepared]) {
    println!(
        "calibration on {} LLMs, {} points ({}); GPU {}, engine {}",
        data.len(),
        f.points,
        f.source,
        f.gpu,
        f.engine
    );
    let mut t = Table::new(&["constant", "value", "std error", "unit", "count"]);
    for (c, term) in f.constants.iter().zip(TERMS.iter()) {
        t.push(vec![
            c.name.clone(),
            sci(c.value),
            sci(c.std_error),
            c.unit.clone(),
            term.what.into(),
        ]);
    }
    print!("{}", t.render());
    println!("MAPE over the calibration points: {:.2} %", f.mape_pct);
}

fn print_loo(l: &Loo) {
    println!("\nleave-one-LLM-out (calibrate on the others, predict from the config):");
    let mut head = vec!["LLM".to_string(), "MAPE %".into(), "max %".into()];
    head.extend(GRID.iter().map(|n| format!("m* err n={n}")));
    head.extend([
        "params-prop. MAPE %".to_string(),
        "nearest-LLM MAPE %".into(),
    ]);
    let mut t = Table::new(&head);
    for (i, r) in l.zero_shot.llms.iter().enumerate() {
        let mut row = vec![
            r.llm.clone(),
            format!("{:.2}", r.mape_pct),
            format!("{:.2}", r.max_error_pct),
        ];
        row.extend(r.sweet_spot_error_pct.0.iter().map(|(_, e)| match e {
            Some(e) => format!("{e:+.1}"),
            None => "none".into(),
        }));
        row.push(format!("{:.2}", l.params_proportional.llms[i].mape_pct));
        row.push(format!("{:.2}", l.nearest_llm.llms[i].mape_pct));
        t.push(row);
    }
    let mut mean = vec![
        "mean".to_string(),
        format!("{:.2}", l.zero_shot.mean_mape_pct),
        String::new(),
    ];
    mean.extend(GRID.iter().map(|_| String::new()));
    mean.push(format!("{:.2}", l.params_proportional.mean_mape_pct));
    mean.push(format!("{:.2}", l.nearest_llm.mean_mape_pct));
    t.push(mean);
    print!("{}", t.render());
    summary("zero-shot", &l.zero_shot);
    summary("params-proportional", &l.params_proportional);
    summary("nearest-LLM", &l.nearest_llm);
}

fn summary(name: &str, t: &LooTable) {
    let star = match t.worst_sweet_spot_pct(GRID[0]) {
        Some(w) => format!("worst m* error at n = {}: {w:.1} %", GRID[0]),
        None => format!("m* undefined for some LLM at n = {}", GRID[0]),
    };
    println!(
        "{name}: mean MAPE {:.2} %, worst LLM {:.2} %, {star}",
        t.mean_mape_pct,
        t.worst_mape_pct()
    );
}
