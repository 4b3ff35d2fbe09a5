//! Measurement datasets: read one or many CSV/Parquet files, validate them against the
//! measurement schema, derive energy per token and tokens per joule, and split them into fit groups.
//!
//! Unknown columns are kept. Rows whose `status` is not `ok` (skipped points) stay in the table
//! but are not fitted.

mod batch_cells;
mod columns;
mod io;
pub mod schema;
pub mod settings;
mod status;
pub use settings::RunSettings;
pub mod synthetic;

pub use io::{concat_aligned, read_table, write_table, Format};

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use schema::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One measured row reduced to what the energy models see.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Obs {
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// e = energy_j / requests / output_tokens (J per output token).
    pub energy_per_token_j: f64,
    /// Mean sequences in flight during the row's run, where known (the `mean_concurrency`
    /// column, or predicted from the row's run settings by a model that needs it).
    pub concurrency: Option<f64>,
}

/// One input file: where it is, its SHA-256, how many rows it gave.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub sha256: String,
    pub rows: usize,
}

/// All rows of all files plus derived columns.
pub struct Dataset {
    pub df: DataFrame,
    pub sources: Vec<Source>,
}

/// The rows of one (llm, --by values…) combination, fitted on their own.
#[derive(Clone, Debug)]
pub struct Group {
    /// ("llm", name) first, then one pair per `--by` column.
    pub key: Vec<(String, String)>,
    /// The rows fitted.
    pub obs: Vec<Obs>,
    /// Rows measured to check a fit (`role` = `holdout`), never fitted.
    pub holdouts: Vec<Obs>,
    /// Row index in the dataset's table of each of `obs`, then of each of `holdouts` (for
    /// reading a row's other columns, e.g. its run settings).
    pub rows: Vec<usize>,
}

/// Spread of repeated rows of the same grid point.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RepeatSpread {
    pub grid_points: usize,
    pub points_with_repeats: usize,
    /// Largest coefficient of variation of energy per token over a point's repeats (%).
    pub max_cv_pct: Option<f64>,
    pub mean_cv_pct: Option<f64>,
}

impl Dataset {
    /// Read and validate every file; the error names the file, row, column and value.
    pub fn load(paths: &[PathBuf]) -> Result<Dataset> {
        if paths.is_empty() {
            bail!("no data files given");
        }
        let mut frames = Vec::new();
        let mut sources = Vec::new();
        for path in paths {
            let mut df = read_table(path)?;
            normalise(&mut df, path)?;
            validate_rows(&df, path)?;
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
            sources.push(Source {
                path: path.clone(),
                sha256: hex(&Sha256::digest(&bytes)),
                rows: df.height(),
            });
            frames.push(df);
        }
        let mut df = concat_aligned(frames)?;
        add_derived(&mut df)?;
        Ok(Dataset { df, sources })
    }

    /// The data files of a folder (`*.csv`, `*.parquet`), sorted; used when no file is named.
    pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
        let rd = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list data folder '{}'", dir.display()))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && Format::of(p).is_ok())
            .collect();
        files.sort();
        Ok(files)
    }

    /// The repeat spread of `g`, rows of other `requests` or `max_batch_size` values apart (a
    /// group that flops-mem-batch spans holds several; other groups one each).
    pub fn repeat_spread(&self, g: &Group) -> Result<RepeatSpread> {
        let cols = [
            self.optional_f64(REQUESTS)?,
            self.optional_f64("max_batch_size")?,
        ];
        let apart: Vec<Vec<u64>> = g.rows[..g.obs.len()]
            .iter()
            .map(|&i| {
                cols.iter()
                    .map(|c| c.as_ref().and_then(|c| c[i]).map_or(0, |x| x.to_bits()))
                    .collect()
            })
            .collect();
        Ok(g.repeat_spread_apart(&apart))
    }

    /// SHA-256 over all sources (their digests in order) — one fingerprint for the dataset.
    pub fn sha256(&self) -> String {
        if self.sources.len() == 1 {
            return self.sources[0].sha256.clone();
        }
        let mut h = Sha256::new();
        for s in &self.sources {
            h.update(s.sha256.as_bytes());
        }
        hex(&h.finalize())
    }

    /// A column's cells as text (numbers as polars prints them), None where empty.
    pub(crate) fn text_column(&self, name: &str) -> Result<Vec<Option<String>>> {
        let c = self.df.column(name)?;
        // Counts read as floats (requests, max_batch_size, …) print as the integers they are, so
        // a group is named `requests=1000`, as the run settings name it, not `1000.0`.
        let counts = c.dtype().is_float();
        let c = c.cast(&DataType::String)?;
        Ok(c.str()?
            .iter()
            .map(|v| {
                v.map(|v| {
                    if counts {
                        settings::tidy(v.to_string())
                    } else {
                        v.to_string()
                    }
                })
            })
            .collect())
    }

    /// Split the fitted (status ok) rows by LLM, by each `by` column, and by each run setting
    /// (`settings::SPLIT`) that takes several values for that LLM: a fit of one setting's
    /// rows never mixes in another's.
    pub fn groups(&self, by: &[String]) -> Result<Vec<Group>> {
        self.groups_spanning(by, &[])
    }

    /// [`Self::groups`], except that the run settings in `span` are never split on: for a model
    /// that spans them (flops-mem-batch spans `requests` and `max_batch_size`).
    pub fn groups_spanning(&self, by: &[String], span: &[&str]) -> Result<Vec<Group>> {
        self.require_by(by)?;
        let text = |name: &str| self.text_column(name);
        let num = |name: &str| -> Result<Vec<Option<f64>>> {
            Ok(self.df.column(name)?.f64()?.iter().collect())
        };
        let llm = text(LLM)?;
        // Hold-out rows check a fit; they are never part of one.
        let role = if self.df.column(ROLE).is_ok() {
            Some(text(ROLE)?)
        } else {
            None
        };
        let status = if self.df.column(STATUS).is_ok() {
            Some(text(STATUS)?)
        } else {
            None
        };
        let (n, m, e) = (
            num(INPUT_TOKENS)?,
            num(OUTPUT_TOKENS)?,
            num(ENERGY_PER_TOKEN_J)?,
        );
        let by_vals: Vec<Vec<Option<String>>> =
            by.iter().map(|c| text(c)).collect::<Result<_>>()?;
        let ok: Vec<usize> = (0..self.df.height())
            .filter(|&i| is_fitted(status.as_ref().and_then(|s| s[i].as_deref())))
            .collect();
        let split = settings::split_columns(self, &ok, &llm, by, span)?;
        let conc = self.optional_f64(MEAN_CONCURRENCY)?;
        type Rows = (Vec<Obs>, Vec<usize>);
        let mut groups: BTreeMap<Vec<(String, String)>, Rows> = BTreeMap::new();
        let mut holdouts: BTreeMap<Vec<(String, String)>, Rows> = BTreeMap::new();
        for &i in &ok {
            let name = llm[i].clone().unwrap_or_default();
            let mut key = vec![(LLM.to_string(), name.clone())];
            for (c, v) in by.iter().zip(&by_vals) {
                key.push((c.clone(), v[i].clone().unwrap_or_else(|| "null".into())));
            }
            for (c, v) in split.get(&name).into_iter().flatten() {
                key.push((c.clone(), v[i].clone()));
            }
            let obs = Obs {
                input_tokens: n[i].unwrap(),
                output_tokens: m[i].unwrap(),
                energy_per_token_j: e[i].unwrap(),
                concurrency: conc.as_ref().and_then(|c| c[i]).filter(|c| *c >= 1.0),
            };
            let to = if role.as_ref().and_then(|r| r[i].as_deref()) == Some(HOLDOUT) {
                &mut holdouts
            } else {
                &mut groups
            };
            let entry = to.entry(key).or_default();
            entry.0.push(obs);
            entry.1.push(i);
        }
        Ok(groups
            .into_iter()
            .map(|(key, (obs, mut rows))| {
                let (holdouts, held) = holdouts.remove(&key).unwrap_or_default();
                rows.extend(held);
                Group {
                    key,
                    obs,
                    holdouts,
                    rows,
                }
            })
            .collect())
    }

    /// An error naming the first of the `--by` columns that no file has, and the files.
    pub(crate) fn require_by(&self, by: &[String]) -> Result<()> {
        if let Some(col) = by.iter().find(|c| self.df.column(c).is_err()) {
            let files: Vec<String> = self
                .sources
                .iter()
                .map(|s| s.path.display().to_string())
                .collect();
            bail!("--by {col}: no column '{col}' in {}", files.join(", "));
        }
        Ok(())
    }

    /// A numeric column that a file may lack (None), e.g. `mean_concurrency`; cells that are
    /// not numbers read as None.
    pub(crate) fn optional_f64(&self, name: &str) -> Result<Option<Vec<Option<f64>>>> {
        let Ok(c) = self.df.column(name) else {
            return Ok(None);
        };
        let c = c.cast(&DataType::String)?;
        Ok(Some(
            c.str()?
                .iter()
                .map(|v| v.and_then(|v| v.trim().parse::<f64>().ok()))
                .collect(),
        ))
    }
}

impl Group {
    pub fn llm(&self) -> &str {
        &self.key[0].1
    }

    /// `llama-3.2-1b` or `llama-3.2-1b [gpu=H100, dtype=bf16]`.
    pub fn label(&self) -> String {
        if self.key.len() == 1 {
            return self.llm().to_string();
        }
        let extra: Vec<String> = self.key[1..]
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} [{}]", self.llm(), extra.join(", "))
    }

    /// A file-name-safe version of the label: `llama-3.2-1b` or `llama-3.2-1b__gpu-H100`.
    /// Lossy for odd names (`llama/1b` and `llama_1b` both give `llama_1b`); see `file_stem`.
    pub fn slug(&self) -> String {
        let mut s = self.llm().to_string();
        for (k, v) in &self.key[1..] {
            s.push_str(&format!("__{k}-{v}"));
        }
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The stem of this group's fit files, distinct for distinct groups: the slug where the slug
    /// can be read back unambiguously (LLM and values of letters, digits, `.` and `-`; column
    /// names of letters, digits and single inner `_`), else the slug plus `~` and 12 hex digits
    /// of the SHA-256 of the whole key. `~` never occurs in a plain slug, so the two kinds cannot
    /// meet, and `llama/1b` and `llama_1b` get different files.
    pub fn file_stem(&self) -> String {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        };
        let column = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with('_')
                && !s.ends_with('_')
                && !s.contains("__")
        };
        let readable =
            plain(self.llm()) && self.key[1..].iter().all(|(k, v)| column(k) && plain(v));
        let slug = self.slug();
        if readable {
            return slug;
        }
        let mut h = Sha256::new();
        for (k, v) in &self.key {
            // Length-prefixed, so no two keys hash the same bytes.
            h.update(format!("{}:{k}{}:{v}", k.len(), v.len()).as_bytes());
        }
        format!("{slug}~{}", &hex(&h.finalize())[..12])
    }

    /// Every row measured, fitted rows then hold-outs: what the measured sweet spots and the
    /// best-to-worst ratio are taken over (a design's hold-outs are often its only rows at their
    /// input length).
    pub fn measured(&self) -> Vec<Obs> {
        self.obs.iter().chain(&self.holdouts).cloned().collect()
    }

    /// Mean energy per token of each grid point (n, m), sorted by n then m.
    pub fn point_means(&self) -> Vec<(f64, f64, f64)> {
        self.points()
            .into_iter()
            .map(|((n, m), es)| (n as f64, m as f64, es.iter().sum::<f64>() / es.len() as f64))
            .collect()
    }

    /// Coefficient of variation over repeats of each grid point; for a group that spans run
    /// settings (flops-mem-batch's), see [`Dataset::repeat_spread`].
    pub fn repeat_spread(&self) -> RepeatSpread {
        self.repeat_spread_apart(&vec![Vec::new(); self.obs.len()])
    }

    /// [`Self::repeat_spread`] where `apart[i]` (one per fitted row) tells rows of the same
    /// (n, m) apart: rows measured under other run settings are other points, not repeats.
    pub fn repeat_spread_apart(&self, apart: &[Vec<u64>]) -> RepeatSpread {
        let mut points: BTreeMap<(u64, u64, &[u64]), Vec<f64>> = BTreeMap::new();
        for (o, a) in self.obs.iter().zip(apart) {
            points
                .entry((o.input_tokens as u64, o.output_tokens as u64, a.as_slice()))
                .or_default()
                .push(o.energy_per_token_j);
        }
        let cvs: Vec<f64> = points
            .values()
            .filter(|es| es.len() > 1)
            .map(|es| {
                let k = es.len() as f64;
                let mean = es.iter().sum::<f64>() / k;
                let var = es.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (k - 1.0);
                100.0 * var.sqrt() / mean
            })
            .collect();
        RepeatSpread {
            grid_points: points.len(),
            points_with_repeats: cvs.len(),
            max_cv_pct: cvs.iter().cloned().reduce(f64::max),
            mean_cv_pct: (!cvs.is_empty()).then(|| cvs.iter().sum::<f64>() / cvs.len() as f64),
        }
    }

    fn points(&self) -> BTreeMap<(u64, u64), Vec<f64>> {
        let mut map: BTreeMap<(u64, u64), Vec<f64>> = BTreeMap::new();
        for o in &self.obs {
            map.entry((o.input_tokens as u64, o.output_tokens as u64))
                .or_default()
                .push(o.energy_per_token_j);
        }
        map
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check every row that will be fitted; skipped rows (status ≠ ok) may hold empty energies.
fn validate_rows(df: &DataFrame, path: &Path) -> Result<()> {
    let llm = df.column(LLM)?.str()?.clone();
    let status = df
        .column(STATUS)
        .ok()
        .map(|c| c.str().cloned())
        .transpose()?;
    let cols: Vec<Vec<Option<f64>>> = NUMERIC
        .iter()
        .map(|c| Ok(df.column(c)?.f64()?.iter().collect()))
        .collect::<Result<_>>()?;
    let mut used = Vec::new();
    for row in 0..df.height() {
        if !row_status(path, row, status.as_ref().and_then(|s| s.get(row)))?.is_ok() {
            continue;
        }
        used.push(row);
        let vals: Vec<(&str, Option<f64>)> = NUMERIC
            .iter()
            .zip(&cols)
            .map(|(c, v)| (*c, v[row]))
            .collect();
        check_row(path, row, llm.get(row), &vals)?;
    }
    if used.is_empty() {
        bail!("{}: no row has status 'ok'", path.display());
    }
    batch_cells::check(df, path, &used)
}

/// energy_per_request_j = energy_j / requests; energy_per_token_j = that / output_tokens;
/// tokens_per_j = 1 / energy_per_token_j.
fn add_derived(df: &mut DataFrame) -> Result<()> {
    let get = |c: &str| -> Result<Vec<Option<f64>>> { Ok(df.column(c)?.f64()?.iter().collect()) };
    let (e, r, m) = (get(ENERGY_J)?, get(REQUESTS)?, get(OUTPUT_TOKENS)?);
    let per_req: Vec<Option<f64>> = e.iter().zip(&r).map(|(e, r)| Some((*e)? / (*r)?)).collect();
    let per_tok: Vec<Option<f64>> = per_req
        .iter()
        .zip(&m)
        .map(|(e, m)| Some((*e)? / (*m)?))
        .collect();
    let eta: Vec<Option<f64>> = per_tok.iter().map(|e| e.map(|e| 1.0 / e)).collect();
    df.with_column(Column::new(ENERGY_PER_REQUEST_J.into(), per_req))?;
    df.with_column(Column::new(ENERGY_PER_TOKEN_J.into(), per_tok))?;
    df.with_column(Column::new(TOKENS_PER_J.into(), eta))?;
    Ok(())
}
