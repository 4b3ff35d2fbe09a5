//! Sweep planning: the grid axes, their expansion into points, sharding, and the feasibility /
//! duration numbers `--dry-run` prints (and writes with `--plan-csv`).
//!
//! The memory and roofline numbers come from a `CostModel`, so this file does not depend on how an
//! LLM's shape is described (the real one wraps `crate::llm`, tests use a synthetic one).

use super::rows::quote;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;

/// The published grid: 64 … 4096 in powers of two.
pub const PUBLISHED_LENGTHS: [u64; 7] = [64, 128, 256, 512, 1024, 2048, 4096];

/// Largest input or output length of a grid point (tokens): far beyond any LLM's context today,
/// small enough that products of the grid's numbers stay exact in the cost model.
pub const MAX_TOKENS: u64 = 1 << 20;
/// Largest number of requests of one point.
pub const MAX_REQUESTS: u64 = 1 << 20;
/// Largest in-flight batch bound.
pub const MAX_BATCH_SIZE: u64 = 1 << 20;
/// Largest token budget of one engine step.
pub const MAX_NUM_TOKENS: u64 = 1 << 24;
/// Most measurements of one point.
pub const MAX_REPEATS: u64 = 1000;

/// Every axis of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub llms: Vec<String>,
    pub inputs: Vec<u64>,
    pub outputs: Vec<u64>,
    pub requests: Vec<u64>,
    pub max_batch_sizes: Vec<u64>,
    pub max_num_tokens: u64,
    pub dtypes: Vec<String>,
    pub repeats: u64,
}

impl Default for Grid {
    fn default() -> Self {
        Grid {
            llms: vec!["llama-3.2-1b".into()],
            inputs: PUBLISHED_LENGTHS.to_vec(),
            outputs: PUBLISHED_LENGTHS.to_vec(),
            requests: vec![1000],
            max_batch_sizes: vec![1024],
            max_num_tokens: 8192,
            dtypes: vec!["bf16".into()],
            repeats: 1,
        }
    }
}

/// One measurement to take: a grid point and its repeat index (0-based). It has the fields of the
/// key its row will carry, with the LLM as asked (`run::key_of` gives the canonical name).
pub type Point = super::rows::Key;

impl Grid {
    /// Check every axis; errors name the flag and the value.
    pub fn validate(&self) -> Result<()> {
        if self.llms.is_empty() {
            bail!("--llm: no LLM given");
        }
        for (flag, vals, max) in [
            ("--inputs", &self.inputs, MAX_TOKENS),
            ("--outputs", &self.outputs, MAX_TOKENS),
            ("--requests", &self.requests, MAX_REQUESTS),
            ("--max-batch-size", &self.max_batch_sizes, MAX_BATCH_SIZE),
        ] {
            check_list(flag, vals, max)?;
        }
        check_list("--max-num-tokens", &[self.max_num_tokens], MAX_NUM_TOKENS)?;
        check_list("--repeats", &[self.repeats], MAX_REPEATS)?;
        for d in &self.dtypes {
            if dtype_bytes(d).is_none() {
                bail!("--dtype: unknown dtype {d:?} (expected bf16, fp16 or fp32)");
            }
        }
        Ok(())
    }

    /// All points, LLM outermost (one load per LLM), repeats innermost-but-one so a repeat of a
    /// point follows its first run only after the whole grid (repeats are then independent).
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for llm in &self.llms {
            for dtype in &self.dtypes {
                for repeat in 0..self.repeats {
                    for &max_batch_size in &self.max_batch_sizes {
                        for &requests in &self.requests {
                            for &input_tokens in &self.inputs {
                                for &output_tokens in &self.outputs {
                                    out.push(Point {
                                        llm: llm.clone(),
                                        input_tokens,
                                        output_tokens,
                                        requests,
                                        max_batch_size,
                                        max_num_tokens: self.max_num_tokens,
                                        dtype: dtype.clone(),
                                        repeat,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Refuse, before any point runs, what the engine would skip at every point: a dtype it does not
/// run (it runs bf16 and fp16; fp32 is only a roofline estimate) and an `--llm` folder holding a
/// config.json but no `*.safetensors` weights (name the config.json itself to run random weights).
pub fn check_runnable<'a>(points: impl Iterator<Item = &'a Point>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for p in points {
        if !seen.insert((p.llm.as_str(), p.dtype.as_str())) {
            continue;
        }
        crate::engine::DType::parse(&p.dtype).map_err(|_| {
            anyhow::anyhow!("--dtype {}: the engine runs bf16 and fp16 only", p.dtype)
        })?;
        let dir = std::path::Path::new(&p.llm);
        if dir.is_dir() {
            let has_weights = std::fs::read_dir(dir)
                .with_context(|| format!("--llm {}: cannot list the folder", p.llm))?
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"));
            if !has_weights {
                bail!(
                    "--llm {}: the folder has no *.safetensors weights; give {} to measure with random weights",
                    p.llm,
                    dir.join("config.json").display()
                );
            }
        }
    }
    Ok(())
}

/// Bytes per element of a dtype name.
pub fn dtype_bytes(d: &str) -> Option<usize> {
    match d {
        "bf16" | "fp16" => Some(2),
        "fp32" => Some(4),
        _ => None,
    }
}

/// `--shard I/N`: 0 ≤ I < N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (i, n) = s
            .split_once('/')
            .with_context(|| format!("--shard: expected I/N (e.g. 0/4), got {s:?}"))?;
        let index: usize = i
            .trim()
            .parse()
            .with_context(|| format!("--shard: index {i:?} in {s:?} is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .with_context(|| format!("--shard: count {n:?} in {s:?} is not a number"))?;
        if count == 0 || index >= count {
            bail!("--shard: need 0 <= I < N, got {s:?}");
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Every `count`-th point starting at `index`, taken from the full plan so shards are disjoint
    /// and together cover the plan whatever each host has already measured.
    pub fn take(&self, points: Vec<Point>) -> Vec<Point> {
        points
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, p)| p)
            .collect()
    }
}

/// Memory fit and duration estimate of a point on a GPU with `gpu_mem_bytes` of memory.
pub trait CostModel: Send + Sync {
    /// Canonical LLM name for the `llm` column (`--llm` may be a config.json path).
    fn llm_name(&self, spec: &str) -> Result<String>;
    /// `Ok(())` if the point can run, else the reason it cannot (recorded as `skipped: <reason>`).
    fn feasible(&self, p: &Point, gpu_mem_bytes: u64) -> std::result::Result<(), String>;
    /// Roofline estimate of one run's duration in seconds (a lower bound).
    fn estimate_s(&self, p: &Point, gpu_mem_bytes: u64) -> Result<f64>;
}

/// What `--dry-run` says of one point: the canonical LLM name and either (roofline seconds of one
/// run, runs that make its window) or why it does not fit. The table and the CSV are both made of
/// these, so they always carry the same numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRow<'a> {
    pub point: &'a Point,
    pub llm: String,
    pub fit: std::result::Result<(f64, u64), String>,
}

/// One `PlanRow` per point, in order.
pub fn plan_rows<'a>(
    points: &'a [Point],
    cost: &dyn CostModel,
    gpu_mem_bytes: u64,
    min_window_s: f64,
) -> Result<Vec<PlanRow<'a>>> {
    points
        .iter()
        .map(|p| {
            let llm = cost.llm_name(&p.llm)?;
            let fit = match cost.feasible(p, gpu_mem_bytes) {
                Ok(()) => {
                    let e = cost.estimate_s(p, gpu_mem_bytes)?;
                    Ok((e, window_runs_for(e, min_window_s)))
                }
                Err(r) => Err(r),
            };
            Ok(PlanRow { point: p, llm, fit })
        })
        .collect()
}

/// The `--dry-run` table: one line per row, a total, and the points that do not fit.
pub fn dry_run_table(rows: &[PlanRow], min_window_s: f64) -> Result<String> {
    let mut s = String::new();
    writeln!(
        s,
        "{:<16} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>4}  {:<40} {:>10} {:>7}",
        "llm", "n", "m", "R", "mbs", "mnt", "dtype", "rep", "fits", "est_s", "runs"
    )?;
    let (mut total, mut skipped) = (0.0, 0usize);
    for r in rows {
        let p = r.point;
        let (fits, est, runs) = match &r.fit {
            Ok((e, runs)) => {
                total += e * *runs as f64;
                ("yes".to_string(), format!("{e:.2}"), runs.to_string())
            }
            Err(why) => {
                skipped += 1;
                (format!("no: {why}"), "-".into(), "-".into())
            }
        };
        writeln!(
            s,
            "{:<16} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>4}  {:<40} {:>10} {:>7}",
            r.llm,
            p.input_tokens,
            p.output_tokens,
            p.requests,
            p.max_batch_size,
            p.max_num_tokens,
            p.dtype,
            p.repeat,
            fits,
            est,
            runs
        )?;
    }
    writeln!(
        s,
        "{} points, {} do not fit; estimated measured time {:.0} s (roofline lower bound, windows ≥ {min_window_s} s; warm-up, idle and load time not included)",
        rows.len(),
        skipped,
        total
    )?;
    Ok(s)
}

/// The columns of a plan file (`measure --dry-run --plan-csv`, `design --plan-csv`; read back
/// by `measure --plan`), named as the measurement columns where they have one.
pub const PLAN_COLUMNS: [&str; 12] = [
    "llm",
    "input_tokens",
    "output_tokens",
    "requests",
    "max_batch_size",
    "max_num_tokens",
    "dtype",
    "repeat",
    "fits",
    "est_s",
    "runs",
    "role",
];

/// The `--plan-csv` text: a header and one line per row; `est_s` at full precision (the table
/// rounds it), `est_s` and `runs` empty where the point does not fit; `role` from `roles` (same
/// order as `rows`; empty when `roles` is shorter, as for a plain dry run).
pub fn plan_csv(rows: &[PlanRow], roles: &[&str]) -> String {
    let mut s = PLAN_COLUMNS.join(",");
    s.push('\n');
    for (i, r) in rows.iter().enumerate() {
        let p = r.point;
        let (est, runs) = match &r.fit {
            Ok((e, runs)) => (e.to_string(), runs.to_string()),
            Err(_) => (String::new(), String::new()),
        };
        let fields = [
            quote(&r.llm),
            p.input_tokens.to_string(),
            p.output_tokens.to_string(),
            p.requests.to_string(),
            p.max_batch_size.to_string(),
            p.max_num_tokens.to_string(),
            quote(&p.dtype),
            p.repeat.to_string(),
            r.fit.is_ok().to_string(),
            est,
            runs,
            quote(roles.get(i).copied().unwrap_or("")),
        ];
        s.push_str(&fields.join(","));
        s.push('\n');
    }
    s
}

/// How many back-to-back runs make a window of at least `min_window_s`.
pub fn window_runs_for(run_s: f64, min_window_s: f64) -> u64 {
    if run_s <= 0.0 || !run_s.is_finite() {
        return 1;
    }
    ((min_window_s / run_s).ceil() as u64).max(1)
}

/// A list flag's values: not empty, each in 1..=`max`, none twice; errors name the flag and value.
pub fn check_list(flag: &str, vals: &[u64], max: u64) -> Result<()> {
    if vals.is_empty() {
        bail!("{flag}: empty list");
    }
    let mut seen = std::collections::HashSet::new();
    for &v in vals {
        if !(1..=max).contains(&v) {
            bail!("{flag}: {v} is out of range 1..={max}");
        }
        if !seen.insert(v) {
            bail!("{flag}: {v} is listed twice");
        }
    }
    Ok(())
}
