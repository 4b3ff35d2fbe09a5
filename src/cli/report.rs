//! `energy-fit report`: SVG figures and report.md from measurements and fit files.

use crate::dataset::Dataset;
use crate::fit::file::FitFile;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Measurement files (CSV or Parquet). Default: every such file in data/ (none: reference fits alone).
    pub data: Vec<PathBuf>,
    /// Folder of fit files (searched with its sub-folders, e.g. fits/reference).
    #[arg(long, default_value = "fits")]
    pub fits: PathBuf,
    /// Output folder for the SVG figures and report.md.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

/// Every `*.json` fit file under `dir` (recursive, sorted); a missing folder gives none.
pub fn read_fits(dir: &Path) -> Result<Vec<FitFile>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json")
                && !crate::zeroshot::file::is_calibration_file(&p)
            {
                // Calibration files (fits/calibration/) hold zero-shot constants, not fits.
                paths.push(p);
            }
        }
    }
    paths.sort();
    paths.iter().map(|p| FitFile::read(p)).collect()
}

pub fn run(args: ReportArgs) -> Result<()> {
    let paths = if args.data.is_empty() {
        Dataset::files_in(Path::new("data")).unwrap_or_default()
    } else {
        args.data.clone()
    };
    let ds = if paths.is_empty() {
        eprintln!("note: no measurement files (data/ is empty or missing): reporting on the reference fits alone");
        None
    } else {
        Some(Dataset::load(&paths)?)
    };
    let fits = read_fits(&args.fits).with_context(|| format!("--fits {}", args.fits.display()))?;
    let r = crate::report::build(ds.as_ref(), &fits, &args.out)?;
    for f in &r.figures {
        match &f.file {
            Some(p) => println!("figure {}: {}/{p}", f.number, args.out.display()),
            None => println!("figure {} skipped ({}): {}", f.number, f.title, f.note),
        }
    }
    println!("wrote {}", args.out.join("report.md").display());
    Ok(())
}
