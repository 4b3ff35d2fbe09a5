//! The measurement schema (README, "Data formats"): column names, which are required, and per-row validation
//! that names the file, row, column and value of the first bad cell.

use anyhow::{bail, Result};
use polars::prelude::*;
use std::path::Path;

pub const LLM: &str = "llm";
pub const INPUT_TOKENS: &str = "input_tokens";
pub const OUTPUT_TOKENS: &str = "output_tokens";
pub const REQUESTS: &str = "requests";
pub const ENERGY_J: &str = "energy_j";
pub const STATUS: &str = "status";
/// Why a row was measured: `design`, `holdout` (never fitted) or empty.
pub const ROLE: &str = "role";
pub const HOLDOUT: &str = "holdout";
pub const ENERGY_PER_REQUEST_J: &str = "energy_per_request_j";
pub const ENERGY_PER_TOKEN_J: &str = "energy_per_token_j";
pub const TOKENS_PER_J: &str = "tokens_per_j";
/// Mean sequences in flight per iteration of the run (empty or absent: unknown).
pub const MEAN_CONCURRENCY: &str = "mean_concurrency";
/// Tokens the run's KV cache held (empty or absent: unknown).
pub const KV_CAPACITY_TOKENS: &str = "kv_capacity_tokens";

pub use super::columns::{spec, ColumnSpec, ColumnType, COLUMNS, MEASUREMENT};
pub use super::status::Status;

/// Columns every measurement file must have (those of [`MEASUREMENT`] marked required).
pub const REQUIRED: [&str; 5] = required_names(&MEASUREMENT);
/// Required columns that hold numbers (all must be > 0 on rows that are used).
pub const NUMERIC: [&str; 4] = [INPUT_TOKENS, OUTPUT_TOKENS, REQUESTS, ENERGY_J];

/// The required names of `specs`, in order; fails to compile when there are not exactly M.
const fn required_names<const N: usize, const M: usize>(
    specs: &[ColumnSpec; N],
) -> [&'static str; M] {
    let mut out = [""; M];
    let (mut i, mut j) = (0, 0);
    while i < N {
        if specs[i].required {
            out[j] = specs[i].name;
            j += 1;
        }
        i += 1;
    }
    assert!(
        j == M,
        "REQUIRED's length differs from the required columns"
    );
    out
}

/// Human position of a data row: row r (1-based) is line r+1 of a CSV with its header.
pub fn place(path: &Path, row: usize) -> String {
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        format!("{}, row {} (line {})", path.display(), row + 1, row + 2)
    } else {
        format!("{}, row {}", path.display(), row + 1)
    }
}

/// Check required columns exist and turn the numeric ones into Float64, naming the first cell
/// that is not a number.
pub fn normalise(df: &mut DataFrame, path: &Path) -> Result<()> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for col in REQUIRED {
        if !names.iter().any(|n| n == col) {
            bail!(
                "{}: missing required column '{col}' (found: {})",
                path.display(),
                names.join(", ")
            );
        }
    }
    for col in NUMERIC {
        let c = df.column(col)?.clone();
        let f = match c.dtype() {
            DataType::String => {
                let s = c.str()?;
                for (row, v) in s.iter().enumerate() {
                    if let Some(v) = v {
                        if !v.trim().is_empty() && v.trim().parse::<f64>().is_err() {
                            bail!(
                                "{}, column '{col}': '{v}' is not a number",
                                place(path, row)
                            );
                        }
                    }
                }
                c.cast(&DataType::Float64)?
            }
            dt if dt.is_primitive_numeric() || dt.is_null() => c.cast(&DataType::Float64)?,
            dt => bail!(
                "{}: column '{col}' has type {dt}, expected numbers",
                path.display()
            ),
        };
        df.with_column(f)?;
    }
    let llm = df.column(LLM)?.cast(&DataType::String)?;
    df.with_column(llm)?;
    if let Ok(st) = df.column(STATUS) {
        let st = st.cast(&DataType::String)?;
        df.with_column(st)?;
    }
    Ok(())
}

/// The status of data row `row` of `path` (an absent column or empty cell is `ok`); a value that
/// is no status is an error naming the file, row, column and value.
pub fn row_status(path: &Path, row: usize, cell: Option<&str>) -> Result<Status> {
    Status::parse(cell.unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("{}, column '{STATUS}': {e}", place(path, row)))
}

/// Whether a cell of a validated table (see [`row_status`]) marks a fitted row.
pub fn is_fitted(cell: Option<&str>) -> bool {
    Status::parse(cell.unwrap_or("")).is_ok_and(|s| s.is_ok())
}

/// Validate the values of one used row: no missing value, no NaN, all strictly positive,
/// token counts whole numbers.
pub fn check_row(
    path: &Path,
    row: usize,
    llm: Option<&str>,
    values: &[(&str, Option<f64>)],
) -> Result<()> {
    match llm {
        Some(s) if !s.trim().is_empty() => {}
        _ => bail!("{}, column '{LLM}': missing LLM name", place(path, row)),
    }
    for &(col, v) in values {
        let at = || format!("{}, column '{col}'", place(path, row));
        let Some(v) = v else {
            bail!("{}: missing value", at())
        };
        if v.is_nan() {
            bail!("{}: value is NaN", at());
        }
        if !v.is_finite() || v <= 0.0 {
            bail!("{}: must be positive and finite, got {v}", at());
        }
        if col != ENERGY_J && v.fract() != 0.0 {
            bail!("{}: must be a whole number, got {v}", at());
        }
    }
    Ok(())
}
