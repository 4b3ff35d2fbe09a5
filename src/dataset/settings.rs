//! The run settings a group of rows was measured under: what a model that depends on the batch
//! (concurrency) needs beside n and m.

use super::{Dataset, Group};
use anyhow::{bail, Result};
use std::collections::BTreeSet;

/// Batching settings of a measurement (missing columns take the measure defaults).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunSettings {
    pub requests: u64,
    pub max_batch_size: u64,
    pub max_num_tokens: u64,
    pub dtype: String,
}

impl Dataset {
    /// The one set of run settings of `g`'s rows, or an error naming the settings that differ
    /// (a model of one concurrency function cannot span them).
    pub fn run_settings(&self, g: &Group) -> Result<RunSettings> {
        let text = |name: &str| self.text_column(name).ok();
        let keys: Vec<(String, Vec<Option<String>>)> = g
            .key
            .iter()
            .filter_map(|(k, _)| Some((k.clone(), text(k)?)))
            .collect();
        let rows: Vec<usize> = (0..self.df.height())
            .filter(|&i| {
                keys.iter()
                    .zip(&g.key)
                    .all(|((_, col), (_, v))| col[i].as_deref() == Some(v.as_str()))
            })
            .collect();
        // Counts read as floats print as 1000.0; say 1000.
        let tidy = |v: String| match v.parse::<f64>() {
            Ok(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
            _ => v,
        };
        let distinct = |name: &str, default: &str| -> BTreeSet<String> {
            match text(name) {
                Some(col) => rows
                    .iter()
                    .map(|&i| tidy(col[i].clone().unwrap_or_else(|| default.into())))
                    .collect(),
                None => BTreeSet::from([default.to_string()]),
            }
        };
        let one = |name: &str, default: &str| -> Result<String> {
            let v = distinct(name, default);
            if v.len() != 1 {
                bail!(
                    "{}: rows with {} values of {name} ({}); fit each apart (--by {name})",
                    g.label(),
                    v.len(),
                    v.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(v.into_iter().next().unwrap_or_default())
        };
        let num = |v: String, name: &str| -> Result<u64> {
            v.parse::<f64>()
                .ok()
                .filter(|x| *x >= 1.0 && x.fract() == 0.0)
                .map(|x| x as u64)
                .ok_or_else(|| {
                    anyhow::anyhow!("{}: column {name} holds {v:?}, not a count", g.label())
                })
        };
        Ok(RunSettings {
            requests: num(one("requests", "1000")?, "requests")?,
            max_batch_size: num(one("max_batch_size", "1024")?, "max_batch_size")?,
            max_num_tokens: num(one("max_num_tokens", "8192")?, "max_num_tokens")?,
            dtype: one("dtype", "bf16")?,
        })
    }
}
