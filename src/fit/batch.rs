//! Binding flops-mem-batch to a group of rows: the run settings its c(n, m) is computed under,
//! and each row's own concurrency, so one fit spans rows of several `requests` and
//! `max_batch_size` values.

use crate::analytic::flops_mem_batch::{BatchContext, Settings};
use crate::dataset::schema::KV_CAPACITY_TOKENS;
use crate::dataset::settings::default_of;
use crate::dataset::{Dataset, Group};
use crate::llm::concurrency::{concurrency, kv_capacity_tokens, Batching, PAGE_TOKENS};
use anyhow::{Context, Result};
use std::collections::HashMap;

/// The run settings flops-mem-batch spans: its concurrency term tells their rows apart.
pub const SPANS: [&str; 2] = ["requests", "max_batch_size"];

/// flops-mem-batch's binding to a group: its LLM and the group's run settings (the largest
/// `requests` and `max_batch_size` where the group spans several).
pub fn context(ds: &Dataset, g: &Group, gpu_mem_gib: f64) -> Result<BatchContext> {
    let s = ds
        .run_settings_spanning(g, &SPANS)
        .context("flops-mem-batch needs one max_num_tokens and dtype per fit")?;
    let dtype_bytes = crate::measure::plan::dtype_bytes(&s.dtype)
        .with_context(|| format!("{}: unknown dtype {:?}", g.label(), s.dtype))?;
    Ok(BatchContext {
        llm: g.llm().to_string(),
        settings: Settings {
            requests: s.requests as usize,
            max_batch_size: s.max_batch_size as usize,
            max_num_tokens: s.max_num_tokens as usize,
            dtype_bytes,
            gpu_memory_bytes: gpu_mem_gib * (1u64 << 30) as f64,
        },
    })
}

/// Give every row of `g` (fitted and hold-out) its concurrency: its `mean_concurrency` where
/// the file has one, else the scheduler's mean in flight (`llm::concurrency`) under the row's
/// own requests and max_batch_size, the group's max_num_tokens and dtype, and the row's
/// `kv_capacity_tokens` (else the capacity `ctx`'s GPU memory leaves).
pub fn fill_concurrency(ds: &Dataset, g: &mut Group, ctx: &BatchContext) -> Result<()> {
    let shape = ctx.llm.strip_prefix("synthetic-").unwrap_or(&ctx.llm);
    let cfg = crate::llm::resolve_llm(shape)?;
    let count = |name: &str| -> Result<Vec<Option<usize>>> {
        Ok(match ds.optional_f64(name)? {
            Some(v) => v
                .into_iter()
                .map(|x| x.filter(|x| *x >= 1.0).map(|x| x as usize))
                .collect(),
            None => vec![None; ds.df.height()],
        })
    };
    let fallback = |name: &str| default_of(name).parse::<usize>().unwrap_or(1);
    let (req, mbs, cap) = (
        count("requests")?,
        count("max_batch_size")?,
        count(KV_CAPACITY_TOKENS)?,
    );
    let s = ctx.settings;
    let mut memo: HashMap<(usize, usize, usize, usize, usize), f64> = HashMap::new();
    let n_obs = g.obs.len();
    for (k, &row) in g.rows.clone().iter().enumerate() {
        let o = if k < n_obs {
            &mut g.obs[k]
        } else {
            &mut g.holdouts[k - n_obs]
        };
        if o.concurrency.is_some() {
            continue;
        }
        let r = req[row].unwrap_or_else(|| fallback("requests"));
        let b = mbs[row].unwrap_or_else(|| fallback("max_batch_size"));
        let kv = cap[row].unwrap_or_else(|| {
            kv_capacity_tokens(
                &cfg,
                s.gpu_memory_bytes,
                s.dtype_bytes,
                s.max_num_tokens,
                b.min(r),
            )
        });
        let (n, m) = (o.input_tokens as usize, o.output_tokens as usize);
        let c = *memo.entry((n, m, r, b, kv)).or_insert_with(|| {
            let batching = Batching {
                requests: r,
                max_batch_size: b,
                max_num_tokens: s.max_num_tokens,
                kv_capacity_tokens: kv,
                page_tokens: PAGE_TOKENS,
            };
            concurrency(n, m, &batching).map_or(1.0, |c| c.mean_in_flight)
        });
        o.concurrency = Some(c);
    }
    Ok(())
}

/// The value of the count column `name` (requests, max_batch_size) of each of `g`'s fitted rows
/// (`obs` order), missing cells taking the measure default.
pub fn counts_of(ds: &Dataset, g: &Group, name: &str) -> Result<Vec<u64>> {
    let r = ds.optional_f64(name)?.unwrap_or_default();
    let default = default_of(name).parse().unwrap_or(1);
    Ok(g.rows[..g.obs.len()]
        .iter()
        .map(|&i| r.get(i).copied().flatten().map_or(default, |x| x as u64))
        .collect())
}
