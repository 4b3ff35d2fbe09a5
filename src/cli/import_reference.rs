//! `energy-fit import-reference` (hidden): turn the published coefficient table into fit files.

use crate::fit::reference::reference_fits;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ImportReferenceArgs {
    /// The published table (sweetspot-table5.csv).
    pub csv: PathBuf,
    /// Output folder; the CSV is copied beside the fit files.
    #[arg(long, default_value = "fits/reference")]
    pub out: PathBuf,
}

pub fn run(args: ImportReferenceArgs) -> Result<()> {
    let fits = reference_fits(&args.csv)?;
    for f in &fits {
        f.write(&args.out.join(format!("{}.flops-mem.json", f.llm)))?;
    }
    let copy = args.out.join("sweetspot-table5.csv");
    if args.csv.canonicalize().ok() != copy.canonicalize().ok() {
        std::fs::copy(&args.csv, &copy)
            .with_context(|| format!("cannot copy to '{}'", copy.display()))?;
    }
    println!(
        "wrote {} reference fit files to {}/",
        fits.len(),
        args.out.display()
    );
    Ok(())
}
