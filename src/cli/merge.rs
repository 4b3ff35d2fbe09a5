//! `energy-fit merge FILES.. --out FILE`: combine measurement files (e.g. `--shard` outputs).

use crate::measure::merge::merge_files;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Measurement files (.csv or .parquet) written by `measure`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Merged file (.csv or .parquet).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: MergeArgs) -> Result<()> {
    let (n, dup) = merge_files(&a.files, &a.out, a.force)?;
    eprintln!(
        "merged {} file(s): {n} rows, {dup} duplicate(s) dropped -> {}",
        a.files.len(),
        a.out.display()
    );
    Ok(())
}
