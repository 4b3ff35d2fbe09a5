//! The crash-safe measurement writer: durable appends, torn tails, Parquet via journal + rename,
//! resume, merge. Rows here are synthetic (made-up energies), not measurements.

use energy_fit::dataset::schema::Status;
use energy_fit::measure::merge::merge_files;
use energy_fit::measure::writer::{done_keys, journal_path};
use energy_fit::measure::{read_rows, Row, Writer, COLUMNS};
use std::io::Write;

fn row(n: u64, m: u64, e: Option<f64>, status: &str) -> Row {
    Row {
        llm: "llama-3.2-1b".into(),
        input_tokens: n,
        output_tokens: m,
        requests: 1000,
        energy_j: e,
        gpu: "synthetic GPU".into(),
        driver: "0".into(),
        engine: "synthetic".into(),
        dtype: "bf16".into(),
        max_batch_size: 1024,
        max_num_tokens: 8192,
        duration_s: e.map(|e| e / 400.0),
        generated_tokens: e.map(|_| 1000 * m),
        repeat: 0,
        started_at: "2026-01-01T00:00:00Z".into(),
        status: Status::parse(status).unwrap(),
        window_runs: e.map(|_| 3),
        ..Row::default()
    }
}

/// The writer has no column list of its own: the header of a CSV file it writes, and the columns
/// and types of a Parquet file, are the measurement schema's.
#[test]
fn writer_header_is_the_schema() {
    use energy_fit::dataset::schema::{ColumnType, MEASUREMENT};
    use polars::prelude::SerReader;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("m.csv");
    let mut w = Writer::open(&csv, false).unwrap();
    w.append(row(64, 64, Some(1.0), "ok")).unwrap();
    drop(w);
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let schema: Vec<&str> = MEASUREMENT.iter().map(|c| c.name).collect();
    assert_eq!(header, schema);
    assert_eq!(&COLUMNS[..], &schema[..]);
    assert_eq!(
        &schema[..5],
        [
            "llm",
            "input_tokens",
            "output_tokens",
            "requests",
            "energy_j"
        ]
    );

    let pq = dir.path().join("m.parquet");
    let mut w = Writer::open(&pq, false).unwrap();
    w.append(row(64, 64, Some(1.0), "ok")).unwrap();
    drop(w);
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&pq).unwrap())
        .finish()
        .unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, schema);
    for (c, spec) in df.columns().iter().zip(&MEASUREMENT) {
        let want = match spec.ty {
            ColumnType::Text => polars::prelude::DataType::String,
            ColumnType::Integer => polars::prelude::DataType::UInt64,
            ColumnType::Number => polars::prelude::DataType::Float64,
        };
        assert_eq!(c.dtype(), &want, "column {}", spec.name);
    }
}

#[test]
fn csv_appends_survive_reopen_and_resume_knows_the_points() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.csv");
    let mut w = Writer::open(&p, false).unwrap();
    w.append(row(64, 64, Some(1234.5), "ok")).unwrap();
    w.append(row(
        64,
        128,
        None,
        "skipped: reason, with comma and \"quotes\"",
    ))
    .unwrap();
    drop(w);
    // Without --resume an existing file is refused, naming the flag.
    let e = Writer::open(&p, false).err().unwrap().to_string();
    assert!(e.contains("--resume"), "{e}");
    let w = Writer::open(&p, true).unwrap();
    assert_eq!(w.rows().len(), 2);
    assert_eq!(w.rows()[0], row(64, 64, Some(1234.5), "ok"));
    assert_eq!(
        w.rows()[1].status.to_string(),
        "skipped: reason, with comma and \"quotes\""
    );
    assert!(done_keys(w.rows(), false).contains(&row(64, 128, None, "").key()));
    // polars reads the file too (the dataset module reads it that way).
    let df = polars::prelude::CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(p.clone()))
        .unwrap();
    use polars::prelude::SerReader;
    let df = df.finish().unwrap();
    assert_eq!(df.height(), 2);
    assert_eq!(df.width(), COLUMNS.len());
}

#[test]
fn a_torn_last_line_is_cut_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.csv");
    let mut w = Writer::open(&p, false).unwrap();
    w.append(row(64, 64, Some(10.0), "ok")).unwrap();
    drop(w);
    // Simulate a write cut short: half a line, no newline.
    let half = &row(64, 128, Some(20.0), "ok").csv_line()[..40];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(half.as_bytes())
        .unwrap();
    let mut w = Writer::open(&p, true).unwrap();
    assert_eq!(w.rows().len(), 1);
    w.append(row(64, 128, Some(20.0), "ok")).unwrap();
    drop(w);
    let rows = read_rows(&p).unwrap();
    assert_eq!(
        rows,
        vec![
            row(64, 64, Some(10.0), "ok"),
            row(64, 128, Some(20.0), "ok")
        ]
    );
}

#[test]
fn parquet_is_complete_after_every_append_and_journal_wins_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.parquet");
    let mut w = Writer::open(&p, false).unwrap();
    for (i, m) in [64u64, 128, 256].iter().enumerate() {
        w.append(row(64, *m, Some(100.0 * (i + 1) as f64), "ok"))
            .unwrap();
        assert_eq!(read_rows(&p).unwrap().len(), i + 1);
    }
    drop(w);
    assert!(journal_path(&p).exists());
    // Killed between journal append and Parquet rename: the journal is one row ahead.
    let extra = row(128, 64, Some(7.0), "ok");
    std::fs::OpenOptions::new()
        .append(true)
        .open(journal_path(&p))
        .unwrap()
        .write_all(extra.csv_line().as_bytes())
        .unwrap();
    std::fs::write(dir.path().join("m.parquet.tmp"), b"half a parquet file").unwrap();
    assert_eq!(
        read_rows(&p).unwrap().len(),
        3,
        "old Parquet still complete"
    );
    let w = Writer::open(&p, true).unwrap();
    assert_eq!(w.rows().len(), 4);
    drop(w);
    let rows = read_rows(&p).unwrap();
    assert_eq!(
        rows.len(),
        4,
        "Parquet rewritten from the journal on resume"
    );
    assert_eq!(rows[3], extra);
    assert_eq!(
        rows[0],
        row(64, 64, Some(100.0), "ok"),
        "Parquet round trip keeps every field"
    );
}

#[test]
fn resume_from_a_parquet_without_journal() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let mut w = Writer::open(&a, false).unwrap();
    w.append(row(64, 64, Some(1.0), "ok")).unwrap();
    drop(w);
    let p = dir.path().join("merged.parquet");
    merge_files(&[a], &p, false).unwrap();
    assert!(!journal_path(&p).exists());
    let w = Writer::open(&p, true).unwrap();
    assert_eq!(w.rows().len(), 1);
}

#[test]
fn merge_dedupes_prefers_ok_and_refuses_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, rows: &[Row]| {
        let p = dir.path().join(name);
        let mut w = Writer::open(&p, false).unwrap();
        for r in rows {
            w.append(r.clone()).unwrap();
        }
        p
    };
    let a = write(
        "a.csv",
        &[
            row(64, 64, Some(1.0), "ok"),
            row(64, 128, None, "skipped: oom"),
        ],
    );
    let b = write(
        "b.parquet",
        &[
            row(64, 64, Some(1.0), "ok"),
            row(64, 128, Some(2.0), "ok"),
            row(128, 64, Some(3.0), "ok"),
        ],
    );
    let out = dir.path().join("out.csv");
    let (n, dup) = merge_files(&[a.clone(), b.clone()], &out, false).unwrap();
    assert_eq!((n, dup), (3, 2));
    let rows = read_rows(&out).unwrap();
    assert_eq!(rows.iter().filter(|r| r.status.is_ok()).count(), 3);
    // Existing --out is refused unless forced; an input as --out always.
    assert!(merge_files(std::slice::from_ref(&a), &out, false)
        .unwrap_err()
        .to_string()
        .contains("--force"));
    assert!(merge_files(std::slice::from_ref(&a), &a, true).is_err());
    // Two different ok rows of one point: refused, naming the point and both files.
    let c = write("c.csv", &[row(64, 64, Some(1.5), "ok")]);
    let e = merge_files(&[a.clone(), c.clone()], &dir.path().join("x.csv"), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input_tokens=64 output_tokens=64")
            && e.contains("a.csv")
            && e.contains("c.csv"),
        "{e}"
    );
    assert!(!dir.path().join("x.csv").exists());
}

#[test]
fn bad_output_extension_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let e = Writer::open(&dir.path().join("m.txt"), false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("--out") && e.contains("m.txt") && e.contains(".csv or .parquet"),
        "{e}"
    );
}
