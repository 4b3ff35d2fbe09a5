//! Crash-safe measurement file: every finished point is on disk before the next one starts, and a
//! kill -9 at any moment leaves a readable file that `--resume` continues.
//!
//! CSV (`--out x.csv`): the file itself is the journal. Each row is one complete line handed to
//! the kernel in a single `write` on an `O_APPEND` file, then `fsync`ed; a killed process leaves
//! either the whole line or none. Should a torn tail ever appear (power loss, full disk), opening
//! with `--resume` cuts it back to the last complete line before appending.
//!
//! Parquet (`--out x.parquet`): Parquet cannot be appended (its footer is written last), so rows
//! go first to the CSV journal `x.parquet.journal.csv` as above, then the whole Parquet file is
//! rewritten to a hidden temporary beside it (`fsutil::write_atomic`), fsynced and renamed over
//! `x.parquet`. rename is atomic, so
//! `x.parquet` is always the previous or the new complete file; the journal is the truth on
//! resume (it is at most one point ahead of the Parquet file). The rewrite is O(rows), negligible
//! next to a point that takes seconds.
//!
//! Columns are only ever added at the end of the schema, so a CSV file written by an earlier
//! `measure` has a prefix of today's columns; `--resume` appends to it in its own columns (its
//! lines stay as they are, byte for byte) and says which columns its new rows go without.

use super::rows::{csv_header, from_frame, parse_csv, to_frame, Key, Row, COLUMNS};
use crate::dataset::schema::REQUIRED;
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{ParquetReader, ParquetWriter, SerReader};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::dataset::Format;

/// The format of `--out`, by its extension; the error names the flag.
pub fn out_format(path: &Path) -> Result<Format> {
    Format::of(path).map_err(|e| anyhow!("--out: {e}"))
}

/// The journal beside a Parquet file.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".journal.csv");
    PathBuf::from(s)
}

/// The file rows are appended to: a CSV file itself, a Parquet file's journal.
fn journal_for(path: &Path, format: Format) -> PathBuf {
    match format {
        Format::Csv => path.to_path_buf(),
        Format::Parquet => journal_path(path),
    }
}

/// Appends rows, one durable write each.
pub struct Writer {
    path: PathBuf,
    format: Format,
    journal: File,
    rows: Vec<Row>,
    /// The journal's columns: the first `width` of [`COLUMNS`] (fewer than all of them in a CSV
    /// file written by an earlier `measure`).
    width: usize,
}

impl Writer {
    /// Open `path` for a sweep. Without `resume` an existing file is an error (never overwrite a
    /// measurement); with it, the rows already there are loaded (`done_keys` of them: the points
    /// `--resume` skips).
    pub fn open(path: &Path, resume: bool) -> Result<Writer> {
        let format = out_format(path)?;
        let jpath = journal_for(path, format);
        let exists = path.exists() || jpath.exists();
        if exists && !resume {
            bail!(
                "--out: {} already exists; pass --resume to continue it, or choose another file",
                path.display()
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--out: creating directory {}", dir.display()))?;
        }
        let (rows, mut width) = if jpath.exists() {
            repair_tail(&jpath)?;
            read_journal(&jpath)?
        } else if path.exists() {
            // A Parquet file without journal (e.g. made by `merge`): seed the journal from it.
            let rows = read_rows(path)?;
            write_new_journal(&jpath, &rows)?;
            (rows, COLUMNS.len())
        } else {
            (Vec::new(), COLUMNS.len())
        };
        if !jpath.exists() || std::fs::metadata(&jpath)?.len() == 0 {
            write_new_journal(&jpath, &[])?;
        }
        if width < COLUMNS.len() {
            match format {
                // A Parquet file's journal is its own, and the Parquet file is rewritten from the
                // rows on every append anyway: bring the journal to today's columns.
                Format::Parquet => {
                    write_csv_atomic(&jpath, &rows)?;
                    width = COLUMNS.len();
                }
                Format::Csv => eprintln!(
                    "note: {} has the columns of an earlier measure, without {}; rows appended to \
                     it keep its columns (to record those, measure into a new file and merge the two)",
                    path.display(),
                    COLUMNS[width..].join(", ")
                ),
            }
        }
        let journal = OpenOptions::new()
            .append(true)
            .open(&jpath)
            .with_context(|| format!("opening {} for append", jpath.display()))?;
        let w = Writer {
            path: path.to_path_buf(),
            format,
            journal,
            rows,
            width,
        };
        if format == Format::Parquet {
            w.rewrite_parquet()?;
        }
        Ok(w)
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Append one row durably (see the file comment).
    pub fn append(&mut self, row: Row) -> Result<()> {
        let line = row.csv_line_of(self.width);
        self.journal
            .write_all(line.as_bytes())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        self.journal
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        self.rows.push(row);
        if self.format == Format::Parquet {
            self.rewrite_parquet()?;
        }
        Ok(())
    }

    fn rewrite_parquet(&self) -> Result<()> {
        write_parquet_atomic(&self.path, &self.rows)
    }
}

/// Write `rows` to `path` through a hidden temporary file and an atomic rename.
pub fn write_parquet_atomic(path: &Path, rows: &[Row]) -> Result<()> {
    let mut df = to_frame(rows)?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .finish(&mut df)
        .with_context(|| format!("encoding {}", path.display()))?;
    crate::fsutil::write_atomic(path, &buf)
}

/// Write `rows` as CSV (header + lines), atomically.
pub fn write_csv_atomic(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = csv_header();
    for r in rows {
        text.push_str(&r.csv_line());
    }
    crate::fsutil::write_atomic(path, text.as_bytes())
}

fn write_new_journal(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = csv_header();
    for r in rows {
        text.push_str(&r.csv_line());
    }
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

/// Cut a torn last line (no trailing newline) so appends start on a fresh line.
fn repair_tail(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    eprintln!(
        "warning: {}: dropping an incomplete last line ({} bytes) left by an interrupted write",
        path.display(),
        bytes.len() - keep
    );
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(keep as u64)?;
    f.sync_all()?;
    Ok(())
}

/// The points of `rows` that `--resume` skips: all of them, or with `ok_only` (`--retry-skipped`)
/// those with an `ok` row.
pub fn done_keys(rows: &[Row], ok_only: bool) -> HashSet<Key> {
    rows.iter()
        .filter(|r| !ok_only || r.status.is_ok())
        .map(Row::key)
        .collect()
}

/// The warning line of a resume onto other cards: when `rows` (those already in `file`) hold `ok`
/// rows measured on cards whose UUIDs are known and `cards` (those this run measures on) holds
/// one that is none of them. Rows without a UUID (older files) give none.
pub fn card_warning(rows: &[Row], cards: &[String], file: &Path) -> Option<String> {
    let mut before: Vec<&str> = rows
        .iter()
        .filter(|r| r.status.is_ok() && !r.gpu_uuid.is_empty())
        .map(|r| r.gpu_uuid.as_str())
        .collect();
    before.sort_unstable();
    before.dedup();
    let new: Vec<&str> = cards
        .iter()
        .map(String::as_str)
        .filter(|c| !before.contains(c))
        .collect();
    if before.is_empty() || new.is_empty() {
        return None;
    }
    Some(format!(
        "warning: {}: its rows were measured on {} and this run measures on {}; rows \
         measured on different cards of one model can differ by several percent in energy \
         (`energy-fit fit --by gpu_uuid` fits them apart)",
        file.display(),
        before.join(", "),
        new.join(", ")
    ))
}

/// The rows `Writer::open(path, true)` would load, read without touching any file (for
/// `--dry-run --resume`): the journal when there is one, else the file, else none; a torn last
/// line is left out, as opening would cut it.
pub fn peek_rows(path: &Path) -> Result<Vec<Row>> {
    let jpath = journal_for(path, out_format(path)?);
    if !jpath.exists() {
        return if path.exists() {
            read_rows(path)
        } else {
            Ok(Vec::new())
        };
    }
    Ok(read_journal(&jpath)?.0)
}

/// The rows of a journal up to its last complete line (all of it once `repair_tail` has run),
/// and how many of [`COLUMNS`] its header holds.
fn read_journal(jpath: &Path) -> Result<(Vec<Row>, usize)> {
    let text =
        std::fs::read_to_string(jpath).with_context(|| format!("reading {}", jpath.display()))?;
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let width = header_width(whole, jpath)?;
    Ok((parse_csv(whole, &jpath.display().to_string())?, width))
}

/// How many of [`COLUMNS`] the header of `text` holds: all of them (none for an empty file), or
/// the first few, at least the required ones, in a file written by an earlier `measure`.
fn header_width(text: &str, path: &Path) -> Result<usize> {
    let header = text.lines().next().unwrap_or("");
    if header.is_empty() {
        return Ok(COLUMNS.len());
    }
    let names: Vec<&str> = header.split(',').collect();
    let n = names.len();
    if n < REQUIRED.len() || n > COLUMNS.len() || names != COLUMNS[..n] {
        bail!(
            "--resume: {} has columns {header:?}, not those of this version of measure or an earlier one; resume into a new file and merge",
            path.display()
        );
    }
    Ok(n)
}

/// Read a measurement file (CSV or Parquet) into rows, warning about columns that are dropped.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let name = path.display().to_string();
    match Format::of(path).with_context(|| format!("reading {name}"))? {
        Format::Csv => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
            parse_csv(&text, &name)
        }
        Format::Parquet => {
            let f = File::open(path).with_context(|| format!("opening {name}"))?;
            let df = ParquetReader::new(f)
                .finish()
                .with_context(|| format!("reading Parquet {name}"))?;
            let (rows, unknown) = from_frame(&df, &name)?;
            if !unknown.is_empty() {
                eprintln!("warning: {name}: columns {unknown:?} are not measure's and are dropped");
            }
            Ok(rows)
        }
    }
}
