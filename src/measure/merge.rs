//! `merge`: combine shard files into one, refusing conflicting duplicates.
//!
//! Two rows of the same point (same llm, lengths, requests, batch limits, dtype, repeat):
//! identical → kept once; one `ok` and one skipped → the `ok` row wins (a skipped row holds no
//! measurement); two different `ok` rows → error naming the point and both files.

use super::rows::{Key, Row};
use super::writer::{out_format, read_rows, write_csv_atomic, write_parquet_atomic, Format};
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Merge `inputs` into `out`; returns (rows written, duplicates dropped).
pub fn merge_files(inputs: &[PathBuf], out: &Path, force: bool) -> Result<(usize, usize)> {
    if inputs.is_empty() {
        bail!("merge: no input files");
    }
    let format = out_format(out)?;
    if inputs.iter().any(|i| i == out) {
        bail!(
            "--out: {} is also an input; write the merge to a new file",
            out.display()
        );
    }
    if out.exists() && !force {
        bail!(
            "--out: {} already exists; pass --force to overwrite it",
            out.display()
        );
    }
    let mut rows: Vec<(Row, usize)> = Vec::new();
    let mut at: HashMap<Key, usize> = HashMap::new();
    let mut dropped = 0;
    for (fi, path) in inputs.iter().enumerate() {
        for r in read_rows(path)? {
            let k = r.key();
            match at.get(&k) {
                None => {
                    at.insert(k, rows.len());
                    rows.push((r, fi));
                }
                Some(&j) => {
                    dropped += 1;
                    let (old, ofi) = &rows[j];
                    let (old_ok, new_ok) = (old.status == "ok", r.status == "ok");
                    if old == &r || !new_ok {
                        continue;
                    }
                    if !old_ok {
                        rows[j] = (r, fi);
                        continue;
                    }
                    bail!(
                        "merge: conflicting rows for point {k}: {} (energy_j {:?}, started_at {}) and {} (energy_j {:?}, started_at {})",
                        inputs[*ofi].display(),
                        old.energy_j,
                        old.started_at,
                        path.display(),
                        r.energy_j,
                        r.started_at
                    );
                }
            }
        }
    }
    let rows: Vec<Row> = rows.into_iter().map(|(r, _)| r).collect();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match format {
        Format::Csv => write_csv_atomic(out, &rows)?,
        Format::Parquet => write_parquet_atomic(out, &rows)?,
    }
    Ok((rows.len(), dropped))
}
