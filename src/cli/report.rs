//! `energy-fit report`: SVG figures and report.md from measurements and fit files.

use crate::dataset::Dataset;
use crate::fit::file::FitFile;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Measurement files (CSV or Parquet). Default: every such file in data/ (none: reference fits
    /// alone), and for figure 10 (efficiency by requests) also those in data/requests/.
    pub data: Vec<PathBuf>,
    /// Folder of fit files (searched with its sub-folders, e.g. fits/reference). Default: fits/
    /// (none there: no fits). A named folder must exist.
    #[arg(long)]
    pub fits: Option<PathBuf>,
    /// Output folder for the SVG figures and report.md.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

/// Every `*.json` fit file under `dir` (recursive, sorted). A file that is not a valid fit file
/// (e.g. left half-written by another program) is named in a warning and skipped, so one bad file
/// does not stop the report; a folder that cannot be listed is an error.
pub fn read_fits(dir: &Path) -> Result<Vec<FitFile>> {
    if !dir.is_dir() {
        anyhow::bail!("'{}' is not a folder", dir.display());
    }
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("cannot list '{}'", d.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if p.is_dir() {
                stack.push(p);
            } else if !hidden
                && p.extension().is_some_and(|x| x == "json")
                && !crate::zeroshot::file::is_calibration_file(&p)
            {
                // Calibration files (fits/calibration/) hold zero-shot constants, not fits.
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut fits = Vec::new();
    for p in &paths {
        match FitFile::read(p) {
            Ok(f) => fits.push(f),
            Err(e) => eprintln!("warning: skipping {}: {e:#}", p.display()),
        }
    }
    Ok(fits)
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
    let fits = match &args.fits {
        Some(dir) => read_fits(dir).with_context(|| format!("--fits {}", dir.display()))?,
        None if Path::new("fits").is_dir() => read_fits(Path::new("fits"))?,
        None => Vec::new(),
    };
    // The default data's measurements at other numbers of requests (data/requests/) feed figure
    // 10 beside the grids of the same LLMs; the tables stay at the grids' requests.
    let requests = match (&ds, args.data.is_empty()) {
        (Some(_), true) => {
            let extra = Dataset::files_in(Path::new("data/requests")).unwrap_or_default();
            if extra.is_empty() {
                None
            } else {
                let all: Vec<PathBuf> = paths.iter().chain(&extra).cloned().collect();
                Some(Dataset::load(&all)?)
            }
        }
        _ => None,
    };
    let r = crate::report::build_with_requests(ds.as_ref(), requests.as_ref(), &fits, &args.out)?;
    for f in &r.figures {
        match &f.file {
            Some(p) => println!("figure {}: {}/{p}", f.number, args.out.display()),
            None => println!("figure {} skipped ({}): {}", f.number, f.title, f.note),
        }
    }
    println!("wrote {}", args.out.join("report.md").display());
    Ok(())
}
