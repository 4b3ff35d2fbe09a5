//! The run settings a group of rows was measured under: what a model that depends on the batch
//! (concurrency) needs beside n and m, and which settings split the data into fit groups.

use super::{Dataset, Group};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Run settings whose values are fitted apart by default: energy per token changes with each
/// (the batch with `requests` and `max_batch_size`, the admission with `max_num_tokens`, the
/// arithmetic with `dtype`, everything with `gpu`), and a model of n and m alone cannot tell
/// their rows apart.
pub const SPLIT: [&str; 5] = [
    "requests",
    "max_batch_size",
    "max_num_tokens",
    "dtype",
    "gpu",
];

/// The value a run setting takes where its column is absent or empty (the `measure` defaults).
pub fn default_of(name: &str) -> &'static str {
    match name {
        "requests" => "1000",
        "max_batch_size" => "1024",
        "max_num_tokens" => "8192",
        "dtype" => "bf16",
        _ => "unknown",
    }
}

/// Batching settings of a measurement (missing columns take the measure defaults).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunSettings {
    pub requests: u64,
    pub max_batch_size: u64,
    pub max_num_tokens: u64,
    pub dtype: String,
}

/// Counts read as floats print as 1000.0; say 1000.
pub(super) fn tidy(v: String) -> String {
    match v.parse::<f64>() {
        Ok(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        _ => v,
    }
}

/// Per LLM, the run settings (of [`SPLIT`], less `by` and `span`) that take several values over
/// its `ok` rows, each with its cells as tidy text (every row of the table).
pub(super) type SplitColumns = BTreeMap<String, Vec<(String, Rc<Vec<String>>)>>;

/// A run setting's cells as tidy text, one per row of the table; an empty cell, or every cell
/// where the column is absent, takes the `measure` default ([`default_of`]).
pub(crate) fn setting_cells(ds: &Dataset, name: &str) -> Result<Vec<String>> {
    let cells = match ds.df.column(name) {
        Ok(_) => ds.text_column(name)?,
        Err(_) => vec![None; ds.df.height()],
    };
    Ok(cells
        .into_iter()
        .map(|v| match v.filter(|v| !v.trim().is_empty()) {
            Some(v) => tidy(v),
            None => default_of(name).to_string(),
        })
        .collect())
}

pub(super) fn split_columns(
    ds: &Dataset,
    ok: &[usize],
    llm: &[Option<String>],
    by: &[String],
    span: &[&str],
) -> Result<SplitColumns> {
    let mut out: SplitColumns = BTreeMap::new();
    for name in SPLIT {
        if by.iter().any(|b| b == name) || span.contains(&name) || ds.df.column(name).is_err() {
            continue;
        }
        let cells: Rc<Vec<String>> = Rc::new(setting_cells(ds, name)?);
        let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for &i in ok {
            let l = llm[i].as_deref().unwrap_or_default();
            values.entry(l).or_default().insert(cells[i].as_str());
        }
        for (l, v) in values {
            if v.len() > 1 {
                out.entry(l.to_string())
                    .or_default()
                    .push((name.to_string(), cells.clone()));
            }
        }
    }
    Ok(out)
}

impl Dataset {
    /// The one set of run settings of `g`'s rows, or an error naming the settings that differ
    /// (a model of one concurrency function cannot span them).
    pub fn run_settings(&self, g: &Group) -> Result<RunSettings> {
        self.run_settings_spanning(g, &[])
    }

    /// [`Self::run_settings`] where the settings in `span` may differ between rows: those take
    /// their largest value (what a prediction from the fit assumes unless told otherwise).
    pub fn run_settings_spanning(&self, g: &Group, span: &[&str]) -> Result<RunSettings> {
        let text = |name: &str| self.text_column(name).ok();
        let distinct = |name: &str| -> BTreeSet<String> {
            let default = default_of(name);
            match text(name) {
                Some(col) => g
                    .rows
                    .iter()
                    .map(|&i| {
                        tidy(
                            col[i]
                                .clone()
                                .filter(|v| !v.trim().is_empty())
                                .unwrap_or_else(|| default.into()),
                        )
                    })
                    .collect(),
                None => BTreeSet::from([default.to_string()]),
            }
        };
        let one = |name: &str| -> Result<String> {
            let v = distinct(name);
            if v.len() != 1 && !span.contains(&name) {
                bail!(
                    "{}: rows with {} values of {name} ({}); fit each apart (--by {name})",
                    g.label(),
                    v.len(),
                    v.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(v.into_iter().next().unwrap_or_default())
        };
        let num = |name: &str| -> Result<u64> {
            let values = distinct(name);
            let mut best = None;
            for v in values {
                let x = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| *x >= 1.0 && x.fract() == 0.0)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: column {name} holds {v:?}, not a count", g.label())
                    })?;
                best = Some(best.map_or(x, |b: f64| b.max(x)));
            }
            if !span.contains(&name) {
                one(name)?;
            }
            Ok(best.unwrap_or(1.0) as u64)
        };
        Ok(RunSettings {
            requests: num("requests")?,
            max_batch_size: num("max_batch_size")?,
            max_num_tokens: num("max_num_tokens")?,
            dtype: one("dtype")?,
        })
    }
}
