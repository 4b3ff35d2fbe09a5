//! `energy-fit calibrate`: fit the zero-shot constants across LLMs (measured data or the published
//! surfaces), write a calibration file, and optionally score the model leave-one-LLM-out beside
//! the two naive baselines.

use crate::dataset::Dataset;
use crate::fit::table::{sci, Table};
use crate::zeroshot::calibrate::{calibrate, prepare, Prepared, MIN_LLMS};
use crate::zeroshot::file::CalibrationFile;
use crate::zeroshot::loo::{
    in_sample, in_sample_table, leave_one_out, table, too_few, Loo, LooTable,
};
use crate::zeroshot::model::TERMS;
use crate::zeroshot::source::Loaded;
use crate::zeroshot::GRID;
use anyhow::{bail, Context, Result};
use serde_json::json;
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

pub fn run(args: CalibrateArgs) -> Result<()> {
    let mut loaded = if args.reference {
        let dir = &args.reference_dir;
        Loaded::reference(dir).with_context(|| format!("--reference-dir {}", dir.display()))?
    } else {
        let paths = if args.data.is_empty() {
            Dataset::files_in(Path::new("data")).context("reading data/")?
        } else {
            args.data.clone()
        };
        Loaded::measured(&Dataset::load(&paths)?)?
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
    let own = in_sample(&prepared, &setting, &constants)?;
    let loo = if args.leave_one_out {
        if let Some(why) = too_few(&prepared) {
            bail!("--leave-one-out {why}");
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
        let mut doc = json!({ "calibration": file, "calibration_file": out, "in_sample": own });
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
    println!("\nin sample (each LLM predicted by the calibration that includes it):");
    print!("{}", in_sample_table(&own, &GRID).render());
    summary("in sample", &own);
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
    print!("{}", table(l, &GRID).render());
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
