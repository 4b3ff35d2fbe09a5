//! `merge`: combine shard files into one, refusing conflicting duplicates.
//!
//! Two rows of the same point (same llm, lengths, requests, batch limits, dtype, repeat):
//! identical → kept once; one `ok` and one skipped → the `ok` row wins (a skipped row holds no
//! measurement); two different `ok` rows → error naming the point and both files.
//!
//! Rows are compared as measurement rows but written as they were read: every column of every
//! input is kept (their union, empty where a file lacks one) and every cell keeps its text, so a
//! merge never drops a column or rewrites a value (`NaN` stays `NaN`).

use super::rows::{column_dtype, csv_records, frame_text, quote, Key, Row};
use super::writer::{out_format, Format};
use anyhow::{bail, Context, Result};
use polars::prelude::{Column, DataFrame, DataType, ParquetReader, ParquetWriter, SerReader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One input as read: its columns (with the Parquet type, where it has one), its records as
/// text and the measurement row of each record.
struct Input {
    names: Vec<String>,
    types: Vec<Option<DataType>>,
    cells: Vec<Vec<Option<String>>>,
    rows: Vec<Row>,
}

fn read_input(path: &Path) -> Result<Input> {
    let name = path.display().to_string();
    if path.is_dir() {
        bail!("{name}: is a folder, not a measurement file");
    }
    let (names, types, cells, places) = match Format::of(path)
        .with_context(|| format!("reading {name}"))?
    {
        Format::Csv => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
            let (names, recs) = csv_records(&text, &name)?;
            let types = vec![None; names.len()];
            let places: Vec<String> = recs
                .iter()
                .map(|(l, _)| format!("{name}: line {l}"))
                .collect();
            let cells: Vec<Vec<Option<String>>> = recs
                .into_iter()
                .map(|(_, v)| {
                    v.into_iter()
                        .map(|c| (!c.is_empty()).then_some(c))
                        .collect()
                })
                .collect();
            (names, types, cells, places)
        }
        Format::Parquet => {
            let f = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
            let df = ParquetReader::new(f)
                .finish()
                .with_context(|| format!("reading Parquet {name}"))?;
            let types: Vec<Option<DataType>> = df
                .columns()
                .iter()
                .map(|c| Some(c.dtype().clone()))
                .collect();
            let (names, cols) = frame_text(&df, &name)?;
            let cells = (0..df.height())
                .map(|i| cols.iter().map(|c| c[i].clone()).collect())
                .collect();
            let places: Vec<String> = (1..=df.height())
                .map(|i| format!("{name}: row {i}"))
                .collect();
            (names, types, cells, places)
        }
    };
    let rows = cells
        .iter()
        .zip(&places)
        .map(|(rec, at): (&Vec<Option<String>>, &String)| {
            let get = |c: &str| {
                names
                    .iter()
                    .position(|n| n == c)
                    .and_then(|j| rec[j].clone())
            };
            Row::from_fields(&get, at)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Input {
        names,
        types,
        cells,
        rows,
    })
}

/// Record `i` of `t` as a measurement row of the columns `other` has too: a column one file
/// lacks (written before it existed) is unknown there, not different.
fn shared_row(t: &Input, i: usize, other: &Input) -> Result<Row> {
    let get = |c: &str| {
        if !other.names.iter().any(|n| n == c) {
            return None;
        }
        let j = t.names.iter().position(|n| n == c)?;
        t.cells[i][j].clone()
    };
    Row::from_fields(&get, "")
}

/// The columns both inputs have whose cells differ between record `a` of `ta` and `b` of `tb`,
/// with both values (the first four).
fn differing(ta: &Input, a: usize, tb: &Input, b: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (ja, name) in ta.names.iter().enumerate() {
        let Some(jb) = tb.names.iter().position(|n| n == name) else {
            continue;
        };
        let (x, y) = (&ta.cells[a][ja], &tb.cells[b][jb]);
        let same = x == y
            || matches!((x, y), (Some(x), Some(y))
                if x.parse::<f64>().ok().is_some_and(|x| y.parse::<f64>() == Ok(x)));
        if !same {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(empty)".into());
            out.push(format!("{name} ({} vs {})", show(x), show(y)));
        }
    }
    out.truncate(4);
    out
}

/// Merge `inputs` into `out`; returns (rows written, duplicates dropped).
pub fn merge_files(inputs: &[PathBuf], out: &Path, force: bool) -> Result<(usize, usize)> {
    if inputs.is_empty() {
        bail!("merge: no input files");
    }
    let format = out_format(out)?;
    if let Some(i) = inputs.iter().find(|i| crate::fsutil::same_file(i, out)) {
        bail!(
            "--out: {} is the input {}; write the merge to a new file",
            out.display(),
            i.display()
        );
    }
    if out.exists() && !force {
        bail!(
            "--out: {} already exists; pass --force to overwrite it",
            out.display()
        );
    }
    let tables: Vec<Input> = inputs
        .iter()
        .map(|p| read_input(p))
        .collect::<Result<_>>()?;
    // (file, record) of each kept row, in first-seen order.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut at: HashMap<Key, usize> = HashMap::new();
    let mut dropped = 0;
    for (fi, t) in tables.iter().enumerate() {
        for (ri, r) in t.rows.iter().enumerate() {
            let k = r.key();
            let Some(&j) = at.get(&k) else {
                at.insert(k, kept.len());
                kept.push((fi, ri));
                continue;
            };
            dropped += 1;
            let (ofi, ori) = kept[j];
            let old = &tables[ofi].rows[ori];
            if old == r || !r.status.is_ok() {
                continue;
            }
            if !old.status.is_ok() {
                kept[j] = (fi, ri);
                continue;
            }
            let (to, tn) = (&tables[ofi], t);
            if shared_row(to, ori, tn)? == shared_row(tn, ri, to)? {
                // One measurement, copied by versions that wrote different columns: keep the
                // copy that knows more.
                if tn.names.len() > to.names.len() {
                    kept[j] = (fi, ri);
                }
                continue;
            }
            bail!(
                "merge: conflicting rows for point {k}: {} and {} differ in {}",
                inputs[ofi].display(),
                inputs[fi].display(),
                differing(to, ori, tn, ri).join(", ")
            );
        }
    }
    // The union of columns in first-seen order, with a Parquet type where an input had one.
    let mut names: Vec<String> = Vec::new();
    let mut types: Vec<Option<DataType>> = Vec::new();
    for t in &tables {
        for (n, ty) in t.names.iter().zip(&t.types) {
            match names.iter().position(|x| x == n) {
                Some(j) => {
                    if types[j].is_none() {
                        types[j] = ty.clone();
                    }
                }
                None => {
                    names.push(n.clone());
                    types.push(ty.clone());
                }
            }
        }
    }
    let cell = |fi: usize, ri: usize, name: &str| -> Option<String> {
        let t = &tables[fi];
        let j = t.names.iter().position(|n| n == name)?;
        t.cells[ri][j].clone()
    };
    let bytes = match format {
        Format::Csv => {
            let mut text = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(",");
            text.push('\n');
            for &(fi, ri) in &kept {
                let line: Vec<String> = names
                    .iter()
                    .map(|n| quote(&cell(fi, ri, n).unwrap_or_default()))
                    .collect();
                text.push_str(&line.join(","));
                text.push('\n');
            }
            text.into_bytes()
        }
        Format::Parquet => {
            let mut cols = Vec::new();
            for (n, ty) in names.iter().zip(&types) {
                let text: Vec<Option<String>> =
                    kept.iter().map(|&(fi, ri)| cell(fi, ri, n)).collect();
                let c = Column::new(n.as_str().into(), text);
                // Typed where the column's type is known and every cell converts; text otherwise,
                // so no value is ever lost to a failed conversion.
                let c = match ty.clone().or_else(|| column_dtype(n)) {
                    Some(t) if t != DataType::String => c.strict_cast(&t).unwrap_or(c),
                    _ => c,
                };
                cols.push(c);
            }
            let mut df = DataFrame::new(kept.len(), cols)?;
            let mut buf = Vec::new();
            ParquetWriter::new(&mut buf)
                .finish(&mut df)
                .with_context(|| format!("encoding {}", out.display()))?;
            buf
        }
    };
    crate::fsutil::write_atomic(out, &bytes)?;
    Ok((kept.len(), dropped))
}
