//! One measurement row: the measurement columns of the README ("Data formats") plus the extras `measure` needs, and its
//! conversions to and from CSV lines and polars frames.
//!
//! The CSV side is hand-written so that a row is one `write` of one complete line (see `writer.rs`
//! for why that matters under kill -9); polars is used for Parquet and for reading foreign files.

use anyhow::{bail, Context, Result};
use polars::prelude::{Column, DataFrame, DataType};

/// CSV text rules shared with the plan files and `merge` (`csv_text.rs`).
pub use super::csv_text::{csv_records, quote, split_csv, Records};
/// Column order of every file `measure` writes: the measurement schema's (`dataset::schema`),
/// the one list both the writer and the readers use.
pub use crate::dataset::schema::COLUMNS;
use crate::dataset::schema::{spec, ColumnType, Status};

/// One (grid point, repeat). Per-run quantities (`energy_j`, `duration_s`, `generated_tokens`) are
/// for ONE run of the R requests; when a short point was repeated inside its window, `window_runs`
/// says how often and `window_s` / `window_energy_j` hold the whole window.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Row {
    pub llm: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests: u64,
    pub energy_j: Option<f64>,
    pub gpu: String,
    pub driver: String,
    pub engine: String,
    pub dtype: String,
    pub max_batch_size: u64,
    pub max_num_tokens: u64,
    pub duration_s: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub idle_power_w: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub mem_clock_mhz: Option<f64>,
    pub max_temp_c: Option<f64>,
    pub generated_tokens: Option<u64>,
    pub repeat: u64,
    pub started_at: String,
    pub status: Status,
    pub gpu_index: Option<u64>,
    pub power_limit_w: Option<f64>,
    pub window_s: Option<f64>,
    pub window_runs: Option<u64>,
    pub window_energy_j: Option<f64>,
    pub samples: Option<u64>,
    pub prefill_energy_j: Option<f64>,
    pub decode_energy_j: Option<f64>,
    /// Why the point was measured: `design` (a design point, fitted), `holdout` (measured to check
    /// a design, never fitted) or empty (a plain grid point, fitted).
    pub role: String,
    /// Mean sequences in flight per iteration of one run (R · m / iterations of the engine's
    /// schedule): what a decode step's shared costs are divided by. None when unknown (files
    /// written before the column existed, skipped points).
    pub mean_concurrency: Option<f64>,
    /// Tokens the KV cache held for the run, which bounds the concurrency at long contexts.
    pub kv_capacity_tokens: Option<u64>,
    /// NVML's UUID of the card that measured the row: cards of one model (same name, driver and
    /// engine) can differ by several percent in energy. Empty when unknown (older files).
    pub gpu_uuid: String,
}

/// Identity of a measurement: what `--resume` skips and `merge` deduplicates on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub llm: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests: u64,
    pub max_batch_size: u64,
    pub max_num_tokens: u64,
    pub dtype: String,
    pub repeat: u64,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "llm={} input_tokens={} output_tokens={} requests={} max_batch_size={} max_num_tokens={} dtype={} repeat={}",
            self.llm, self.input_tokens, self.output_tokens, self.requests, self.max_batch_size, self.max_num_tokens, self.dtype, self.repeat
        )
    }
}

enum Cell {
    S(String),
    I(Option<u64>),
    F(Option<f64>),
}

impl Row {
    pub fn key(&self) -> Key {
        Key {
            llm: self.llm.clone(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            requests: self.requests,
            max_batch_size: self.max_batch_size,
            max_num_tokens: self.max_num_tokens,
            dtype: self.dtype.clone(),
            repeat: self.repeat,
        }
    }

    fn cells(&self) -> Vec<Cell> {
        use Cell::*;
        vec![
            S(self.llm.clone()),
            I(Some(self.input_tokens)),
            I(Some(self.output_tokens)),
            I(Some(self.requests)),
            F(self.energy_j),
            S(self.gpu.clone()),
            S(self.driver.clone()),
            S(self.engine.clone()),
            S(self.dtype.clone()),
            I(Some(self.max_batch_size)),
            I(Some(self.max_num_tokens)),
            F(self.duration_s),
            F(self.avg_power_w),
            F(self.idle_power_w),
            F(self.sm_clock_mhz),
            F(self.mem_clock_mhz),
            F(self.max_temp_c),
            I(self.generated_tokens),
            I(Some(self.repeat)),
            S(self.started_at.clone()),
            S(self.status.to_string()),
            I(self.gpu_index),
            F(self.power_limit_w),
            F(self.window_s),
            I(self.window_runs),
            F(self.window_energy_j),
            I(self.samples),
            F(self.prefill_energy_j),
            F(self.decode_energy_j),
            S(self.role.clone()),
            F(self.mean_concurrency),
            I(self.kv_capacity_tokens),
            S(self.gpu_uuid.clone()),
        ]
    }

    /// Build from named text fields (`None` or "" = missing). `at` names the place for errors.
    pub fn from_fields(get: &dyn Fn(&str) -> Option<String>, at: &str) -> Result<Row> {
        let s = |c: &str| get(c).unwrap_or_default();
        let req_i = |c: &str| -> Result<u64> {
            let v = get(c)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{at}: column {c} is missing"))?;
            v.trim()
                .parse::<u64>()
                .with_context(|| format!("{at}: column {c}: {v:?} is not a non-negative integer"))
        };
        let opt_i = |c: &str| -> Result<Option<u64>> {
            match get(c).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => {
                    // Parquet round trips through polars may render integers as floats ("12.0").
                    let f: f64 = v
                        .trim()
                        .parse()
                        .with_context(|| format!("{at}: column {c}: {v:?} is not a number"))?;
                    if f < 0.0 || f.fract() != 0.0 {
                        bail!("{at}: column {c}: {v:?} is not a non-negative integer");
                    }
                    Ok(Some(f as u64))
                }
            }
        };
        let opt_f = |c: &str| -> Result<Option<f64>> {
            match get(c).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => Ok(Some(v.trim().parse::<f64>().with_context(|| {
                    format!("{at}: column {c}: {v:?} is not a number")
                })?)),
            }
        };
        let llm = s("llm");
        if llm.is_empty() {
            bail!("{at}: column llm is missing or empty");
        }
        Ok(Row {
            llm,
            input_tokens: req_i("input_tokens")?,
            output_tokens: req_i("output_tokens")?,
            requests: req_i("requests")?,
            energy_j: opt_f("energy_j")?,
            gpu: s("gpu"),
            driver: s("driver"),
            engine: s("engine"),
            dtype: s("dtype"),
            max_batch_size: opt_i("max_batch_size")?.unwrap_or(0),
            max_num_tokens: opt_i("max_num_tokens")?.unwrap_or(0),
            duration_s: opt_f("duration_s")?,
            avg_power_w: opt_f("avg_power_w")?,
            idle_power_w: opt_f("idle_power_w")?,
            sm_clock_mhz: opt_f("sm_clock_mhz")?,
            mem_clock_mhz: opt_f("mem_clock_mhz")?,
            max_temp_c: opt_f("max_temp_c")?,
            generated_tokens: opt_i("generated_tokens")?,
            repeat: opt_i("repeat")?.unwrap_or(0),
            started_at: s("started_at"),
            status: Status::parse(&s("status"))
                .map_err(|e| anyhow::anyhow!("{at}: column status: {e}"))?,
            gpu_index: opt_i("gpu_index")?,
            power_limit_w: opt_f("power_limit_w")?,
            window_s: opt_f("window_s")?,
            window_runs: opt_i("window_runs")?,
            window_energy_j: opt_f("window_energy_j")?,
            samples: opt_i("samples")?,
            prefill_energy_j: opt_f("prefill_energy_j")?,
            decode_energy_j: opt_f("decode_energy_j")?,
            role: s("role"),
            mean_concurrency: opt_f("mean_concurrency")?,
            kv_capacity_tokens: opt_i("kv_capacity_tokens")?,
            gpu_uuid: s("gpu_uuid"),
        })
    }

    /// One complete CSV line, newline included.
    pub fn csv_line(&self) -> String {
        self.csv_line_of(COLUMNS.len())
    }

    /// The line under a header of the first `width` of [`COLUMNS`]: a file written by an
    /// earlier `measure`, before the later columns existed.
    pub fn csv_line_of(&self, width: usize) -> String {
        let fields: Vec<String> = self
            .cells()
            .into_iter()
            .take(width)
            .map(|c| match c {
                Cell::S(s) => quote(&s),
                Cell::I(v) => v.map(|v| v.to_string()).unwrap_or_default(),
                Cell::F(v) => v
                    .filter(|v| v.is_finite())
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            })
            .collect();
        let mut l = fields.join(",");
        l.push('\n');
        l
    }
}

/// The header line.
pub fn csv_header() -> String {
    let mut h = COLUMNS.join(",");
    h.push('\n');
    h
}

/// Parse CSV text written by `csv_header` / `csv_line` (or any CSV with those column names).
pub fn parse_csv(text: &str, file: &str) -> Result<Vec<Row>> {
    let (names, records) = csv_records(text, file)?;
    records
        .iter()
        .map(|(line, vals)| {
            let get = |c: &str| names.iter().position(|n| n == c).map(|j| vals[j].clone());
            Row::from_fields(&get, &format!("{file}: line {line}"))
        })
        .collect()
}

/// The polars type a measurement column is written with in Parquet (None: not one of `COLUMNS`).
pub fn column_dtype(name: &str) -> Option<DataType> {
    spec(name).map(|c| match c.ty {
        ColumnType::Text => DataType::String,
        ColumnType::Integer => DataType::UInt64,
        ColumnType::Number => DataType::Float64,
    })
}

/// Rows to a typed polars frame in `COLUMNS` order.
pub fn to_frame(rows: &[Row]) -> Result<DataFrame> {
    let cells: Vec<Vec<Cell>> = rows.iter().map(|r| r.cells()).collect();
    let mut cols = Vec::new();
    for (j, name) in COLUMNS.iter().enumerate() {
        let ty = spec(name).expect("COLUMNS are the schema's").ty;
        let col = match ty {
            ColumnType::Text => Column::new(
                (*name).into(),
                cells
                    .iter()
                    .map(|c| match &c[j] {
                        Cell::S(s) => s.clone(),
                        _ => unreachable!(),
                    })
                    .collect::<Vec<_>>(),
            ),
            ColumnType::Integer => Column::new(
                (*name).into(),
                cells
                    .iter()
                    .map(|c| match &c[j] {
                        Cell::I(v) => *v,
                        _ => unreachable!(),
                    })
                    .collect::<Vec<_>>(),
            ),
            ColumnType::Number => Column::new(
                (*name).into(),
                cells
                    .iter()
                    .map(|c| match &c[j] {
                        Cell::F(v) => v.filter(|x| x.is_finite()),
                        _ => unreachable!(),
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        cols.push(col);
    }
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// Column names and, per column, its cells as text (null stays None).
pub type TextColumns = (Vec<String>, Vec<Vec<Option<String>>>);

/// Every column of a frame as text (null stays None), with the column names.
pub fn frame_text(df: &DataFrame, file: &str) -> Result<TextColumns> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut text: Vec<Vec<Option<String>>> = Vec::new();
    for n in &names {
        let c = df
            .column(n)?
            .cast(&DataType::String)
            .with_context(|| format!("{file}: column {n} cannot be read as text"))?;
        let ca = c.str()?;
        text.push(
            (0..ca.len())
                .map(|i| ca.get(i).map(|s| s.to_string()))
                .collect(),
        );
    }
    Ok((names, text))
}

/// Rows from any polars frame that has at least the key columns; unknown columns are returned by
/// name so the caller can say they were dropped.
pub fn from_frame(df: &DataFrame, file: &str) -> Result<(Vec<Row>, Vec<String>)> {
    let (names, text) = frame_text(df, file)?;
    let mut rows = Vec::new();
    #[allow(clippy::needless_range_loop)] // i indexes every column of `text`
    for i in 0..df.height() {
        let get = |c: &str| {
            names
                .iter()
                .position(|n| n == c)
                .and_then(|j| text[j][i].clone())
        };
        rows.push(Row::from_fields(&get, &format!("{file}: row {}", i + 1))?);
    }
    let unknown = names
        .into_iter()
        .filter(|n| !COLUMNS.contains(&n.as_str()))
        .collect();
    Ok((rows, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::schema::MEASUREMENT;

    /// A row's cells follow the schema: one per column, each of the column's type, so the header
    /// and the lines written under it cannot disagree.
    #[test]
    fn cells_follow_the_schema() {
        let cells = Row::default().cells();
        assert_eq!(cells.len(), MEASUREMENT.len());
        for (c, s) in cells.iter().zip(&MEASUREMENT) {
            let ty = match c {
                Cell::S(_) => ColumnType::Text,
                Cell::I(_) => ColumnType::Integer,
                Cell::F(_) => ColumnType::Number,
            };
            assert_eq!(ty, s.ty, "column {}", s.name);
        }
    }

    /// Every column is read back under its schema name: a row with every field set survives a
    /// CSV line and a Parquet frame unchanged.
    #[test]
    fn every_field_round_trips_under_its_schema_name() {
        let row = Row {
            llm: "a".into(),
            input_tokens: 1,
            output_tokens: 2,
            requests: 3,
            energy_j: Some(4.5),
            gpu: "g".into(),
            driver: "d".into(),
            engine: "e".into(),
            dtype: "bf16".into(),
            max_batch_size: 5,
            max_num_tokens: 6,
            duration_s: Some(7.5),
            avg_power_w: Some(8.5),
            idle_power_w: Some(9.5),
            sm_clock_mhz: Some(10.5),
            mem_clock_mhz: Some(11.5),
            max_temp_c: Some(12.5),
            generated_tokens: Some(13),
            repeat: 14,
            started_at: "t".into(),
            status: Status::Ok,
            gpu_index: Some(15),
            power_limit_w: Some(16.5),
            window_s: Some(17.5),
            window_runs: Some(18),
            window_energy_j: Some(19.5),
            samples: Some(20),
            prefill_energy_j: Some(21.5),
            decode_energy_j: Some(22.5),
            role: "design".into(),
            mean_concurrency: Some(23.5),
            kv_capacity_tokens: Some(24),
            gpu_uuid: "GPU-u".into(),
        };
        let text = csv_header() + &row.csv_line();
        assert_eq!(parse_csv(&text, "t.csv").unwrap(), vec![row.clone()]);
        let (back, unknown) =
            from_frame(&to_frame(std::slice::from_ref(&row)).unwrap(), "t").unwrap();
        assert_eq!(back, vec![row]);
        assert!(unknown.is_empty());
    }
}
