//! report.md's zero-shot section: leave-one-LLM-out on the measured data and on the published
//! surfaces, the very tables `energy-fit calibrate --leave-one-out` and `calibrate --reference
//! --leave-one-out` print (same loaders, same scoring, same table, from `crate::zeroshot`). What
//! cannot be scored (too few LLMs, an LLM of unknown shape, rows of several run settings) is one
//! line saying why, so the rest of the report is still written.

use crate::dataset::Dataset;
use crate::fit::published::REFERENCE_DIR;
use crate::zeroshot::calibrate::prepare;
use crate::zeroshot::loo::{leave_one_out, table, too_few, Loo};
use crate::zeroshot::source::Loaded;
use crate::zeroshot::GRID;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

pub const TITLE: &str = "## Zero-shot: predicting an LLM from its config";

/// A leave-one-out and what it was run on.
struct Scored {
    llms: usize,
    gpu: String,
    engine: String,
    loo: Loo,
}

/// Leave-one-out as `calibrate --leave-one-out` runs it on `loaded`, or why it cannot run.
fn scored(loaded: Result<Loaded>) -> Result<Scored, String> {
    let l = loaded.map_err(|e| format!("{e:#}"))?;
    let prepared = prepare(&l.data, &l.setting).map_err(|e| format!("{e:#}"))?;
    if let Some(why) = too_few(&prepared) {
        return Err(format!("leave-one-out {why}"));
    }
    let loo = leave_one_out(&prepared, &l.setting).map_err(|e| format!("{e:#}"))?;
    Ok(Scored {
        llms: prepared.len(),
        gpu: l.gpu,
        engine: l.engine,
        loo,
    })
}

/// The section, both tables or the line that replaces each.
pub fn section(ds: Option<&Dataset>) -> String {
    let mut s = format!("{TITLE}\n\n");
    let _ = writeln!(
        s,
        "The zero-shot model predicts an LLM's energy per output token from its config alone, \
         with a few constants of the GPU and engine calibrated on other LLMs \
         ([docs/zero-shot.md](../docs/zero-shot.md)). Leave-one-LLM-out: each LLM is predicted \
         from a calibration on the others and scored over its points (MAPE and largest error, %), \
         with the error (%) of its predicted sweet spot m* at n = {} against its own flops-mem \
         fit (none: the prediction has no m*), beside two naive baselines scored alike: energy \
         proportional to the parameter count, and the LLM nearest in parameters scaled by FLOPs \
         per token.\n",
        GRID[0]
    );
    s.push_str("### Measured LLMs\n\n");
    match ds {
        None => s.push_str("Not computed: no measurements.\n\n"),
        Some(ds) => {
            let files: Vec<String> = ds
                .sources
                .iter()
                .map(|x| x.path.display().to_string())
                .collect();
            match scored(Loaded::measured(ds)) {
                Ok(r) => {
                    let _ = writeln!(
                        s,
                        "The report's {} measured LLMs, each predicted from a calibration on \
                         the other {}; `energy-fit calibrate --leave-one-out {}` prints this \
                         table.\n\n{}",
                        r.llms,
                        r.llms - 1,
                        files.join(" "),
                        table(&r.loo, &GRID[..1]).markdown()
                    );
                }
                Err(why) => {
                    let _ = writeln!(s, "Not computed on the measured data: {why}.\n");
                }
            }
        }
    }
    s.push_str("### Published surfaces\n\n");
    let dir = Path::new(REFERENCE_DIR);
    match scored(Loaded::reference(dir).map_err(|e| e.context(format!("`{REFERENCE_DIR}`")))) {
        Ok(r) => {
            let _ = writeln!(
                s,
                "The {} published flops-mem surfaces of `{REFERENCE_DIR}/` ({}, {}) on the \
                 7 × 7 grid, each predicted from a calibration on the other {}; `energy-fit \
                 calibrate --reference --leave-one-out` prints this table.\n\n{}",
                r.llms,
                r.gpu,
                r.engine,
                r.llms - 1,
                table(&r.loo, &GRID[..1]).markdown()
            );
        }
        Err(why) => {
            let _ = writeln!(s, "Not computed on the published surfaces: {why}.\n");
        }
    }
    s
}
