//! Reading and writing measurement tables through polars, CSV or Parquet by file extension.

use anyhow::{bail, Context as _, Result};
use polars::prelude::{
    Column, CsvReadOptions, CsvWriter, DataFrame, DataType, ParquetReader, ParquetWriter,
    SerReader, SerWriter,
};
use std::fs::File;
use std::path::Path;

/// File formats recognised by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
        {
            Some(e) if e == "csv" => Ok(Format::Csv),
            Some(e) if e == "parquet" || e == "pq" => Ok(Format::Parquet),
            _ => bail!(
                "{}: unknown data file type (expected .csv or .parquet)",
                path.display()
            ),
        }
    }
}

/// Read one table as it is on disk (no validation).
pub fn read_table(path: &Path) -> Result<DataFrame> {
    let format = Format::of(path)?;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot open data file '{}'", path.display()))?;
    if meta.len() == 0 {
        bail!("{}: file is empty", path.display());
    }
    let df = match format {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish()),
        Format::Parquet => {
            let f = File::open(path)
                .with_context(|| format!("cannot open data file '{}'", path.display()))?;
            ParquetReader::new(f).finish()
        }
    }
    .with_context(|| format!("{}: cannot read as {format:?}", path.display()))?;
    if df.height() == 0 {
        bail!("{}: file has no data rows", path.display());
    }
    Ok(df)
}

/// Write a table, format by extension; the parent folder is created.
pub fn write_table(df: &mut DataFrame, path: &Path) -> Result<()> {
    let format = Format::of(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
    }
    let mut f = File::create(path).with_context(|| format!("cannot write '{}'", path.display()))?;
    match format {
        Format::Csv => CsvWriter::new(&mut f).finish(df),
        Format::Parquet => ParquetWriter::new(&mut f).finish(df).map(|_| ()),
    }
    .with_context(|| format!("cannot write '{}'", path.display()))
}

/// Stack frames whose column sets differ: missing columns become nulls, columns whose types
/// disagree between files become text. Columns keep first-seen order.
pub fn concat_aligned(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let mut order: Vec<(String, DataType)> = Vec::new();
    for df in &frames {
        for c in df.columns() {
            match order.iter_mut().find(|(n, _)| n == c.name().as_str()) {
                Some((_, dt)) if dt != c.dtype() => *dt = DataType::String,
                Some(_) => {}
                None => order.push((c.name().to_string(), c.dtype().clone())),
            }
        }
    }
    let mut out: Option<DataFrame> = None;
    for df in frames {
        let h = df.height();
        let mut cols = Vec::with_capacity(order.len());
        for (name, dt) in &order {
            cols.push(match df.column(name) {
                Ok(c) => c.cast(dt)?,
                Err(_) => Column::full_null(name.as_str().into(), h, dt),
            });
        }
        let aligned = DataFrame::new(h, cols)?;
        match out.as_mut() {
            None => out = Some(aligned),
            Some(acc) => {
                acc.vstack_mut_owned(aligned)?;
            }
        }
    }
    let mut df = out.context("no data files given")?;
    df.rechunk_mut();
    Ok(df)
}
