//! The cells that tell a fit how batched a fitted row's run was: `max_batch_size` and
//! `max_num_tokens` (limits the concurrency is simulated under), `kv_capacity_tokens` (the KV
//! cache the run had) and `mean_concurrency` (sequences in flight, measured). Each may be absent
//! or empty (unknown: the measure default or a prediction takes its place), but a cell that is
//! there must mean something: a cell that is no count, or a concurrency below one sequence or
//! above the row's requests, would be fitted as a batch the run never had.

use super::schema::{place, KV_CAPACITY_TOKENS, MEAN_CONCURRENCY, REQUESTS};
use anyhow::{bail, Result};
use polars::prelude::*;
use std::path::Path;

/// Columns of whole counts (at least 1) where present.
const COUNTS: [&str; 3] = ["max_batch_size", "max_num_tokens", KV_CAPACITY_TOKENS];

/// A column's cells as text (absent column: None).
fn cells(df: &DataFrame, name: &str) -> Result<Option<Vec<Option<String>>>> {
    let Ok(c) = df.column(name) else {
        return Ok(None);
    };
    let c = c.cast(&DataType::String)?;
    Ok(Some(
        c.str()?
            .iter()
            .map(|v| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from))
            .collect(),
    ))
}

/// The cells of these columns checked (see the module doc) on each row of `rows` (the fitted
/// ones); the error names the file, row, column and value.
pub fn check(df: &DataFrame, path: &Path, rows: &[usize]) -> Result<()> {
    let requests: Vec<Option<f64>> = df.column(REQUESTS)?.f64()?.iter().collect();
    for name in COUNTS {
        let Some(col) = cells(df, name)? else {
            continue;
        };
        for &row in rows {
            let Some(v) = &col[row] else { continue };
            let ok = v
                .parse::<f64>()
                .is_ok_and(|x| x.is_finite() && x >= 1.0 && x.fract() == 0.0);
            if !ok {
                bail!(
                    "{}, column '{name}': '{v}' is not a count (a whole number, at least 1; \
                     leave the cell empty where it is unknown)",
                    place(path, row)
                );
            }
        }
    }
    if let Some(col) = cells(df, MEAN_CONCURRENCY)? {
        for &row in rows {
            let Some(v) = &col[row] else { continue };
            let r = requests[row].unwrap_or(f64::INFINITY);
            let ok = v
                .parse::<f64>()
                .is_ok_and(|x| x.is_finite() && x >= 1.0 && x <= r * (1.0 + 1e-9));
            if !ok {
                bail!(
                    "{}, column '{MEAN_CONCURRENCY}': '{v}' is not a mean number of sequences in \
                     flight for {r} requests (a number from 1 to {r}; leave the cell empty where \
                     it is unknown)",
                    place(path, row)
                );
            }
        }
    }
    Ok(())
}
