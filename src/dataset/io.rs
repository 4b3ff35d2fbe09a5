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
    if path.is_dir() {
        bail!(
            "{}: is a folder, not a data file (name the .csv or .parquet files in it)",
            path.display()
        );
    }
    let format = Format::of(path)?;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot open data file '{}'", path.display()))?;
    if meta.len() == 0 {
        bail!("{}: file is empty", path.display());
    }
    let df = match format {
        Format::Csv => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read data file '{}'", path.display()))?;
            let text = checked_csv(&bytes, path)?;
            let read = |infer: Option<usize>| {
                CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(infer)
                    .into_reader_with_file_handle(std::io::Cursor::new(text.as_bytes()))
                    .finish()
            };
            match read(None) {
                Err(e) => match read(Some(0)) {
                    Ok(cells) => return Err(unreadable_cell(&cells, &e.to_string(), path)),
                    Err(_) => Err(e),
                },
                ok => ok,
            }
        }
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

/// polars infers a column's type from all its cells and then fails on a cell that type cannot
/// hold (e.g. a whole number beyond 64 bits) naming only the column and value: find that cell in
/// the file read as text (`cells`) and say its row.
fn unreadable_cell(cells: &DataFrame, msg: &str, path: &Path) -> anyhow::Error {
    let between = |a: &str, b: &str| {
        let from = msg.find(a)? + a.len();
        Some(msg[from..].split(b).next()?.to_string())
    };
    let (Some(value), Some(column)) = (between("parse `", "`"), between("column '", "'")) else {
        return anyhow::anyhow!("{}: cannot read as Csv: {msg}", path.display());
    };
    let row = cells
        .column(&column)
        .ok()
        .and_then(|c| c.str().ok().cloned())
        .and_then(|c| {
            c.iter()
                .position(|v| v.is_some_and(|v| v.trim() == value.trim()))
        });
    let at = match row {
        Some(r) => super::schema::place(path, r),
        None => path.display().to_string(),
    };
    anyhow::anyhow!(
        "{at}, column '{column}': cannot read '{value}' (not a number the column's type holds; \
         whole numbers must fit in 64 bits)"
    )
}

/// The CSV text of a data file with its trailing blank lines cut (they are not rows), after
/// checking that every record has as many fields as the header: polars would fill a short row
/// with nulls or refuse a long one without saying where. Quoted fields may span lines.
fn checked_csv(bytes: &[u8], path: &Path) -> Result<String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{}: line {line}: not UTF-8 text", path.display())
    })?;
    let text = text.trim_end_matches(|c: char| c.is_whitespace());
    let mut header = None;
    let (mut fields, mut quoted, mut start) = (1usize, false, 1usize);
    let mut line = 1usize;
    let mut prev = '\0';
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if at_field_start => quoted = true,
            ',' if !quoted => fields += 1,
            '\n' => {
                line += 1;
                if !quoted {
                    check_fields(&mut header, fields, start, prev, path)?;
                    fields = 1;
                    start = line;
                }
            }
            _ => {}
        }
        at_field_start = !quoted && (c == ',' || c == '\n');
        if c != '\r' {
            prev = c;
        }
    }
    if quoted {
        bail!(
            "{}: line {start}: a quoted field is never closed",
            path.display()
        );
    }
    check_fields(&mut header, fields, start, prev, path)?;
    Ok(format!("{text}\n"))
}

/// One record ended on line `start` with `fields` fields; the first record is the header.
/// A blank line in the middle (`prev` = newline) is left to the row checks, which name it.
fn check_fields(
    header: &mut Option<usize>,
    fields: usize,
    start: usize,
    prev: char,
    path: &Path,
) -> Result<()> {
    match *header {
        None => *header = Some(fields),
        Some(h) if fields != h && !(fields == 1 && prev == '\n') => bail!(
            "{}: line {start}: {fields} fields, the header has {h}",
            path.display()
        ),
        Some(_) => {}
    }
    Ok(())
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
