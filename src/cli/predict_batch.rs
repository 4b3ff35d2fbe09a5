//! `predict`'s batch flags: flops-mem-batch at a given number of requests (its concurrency
//! simulated under the fit's batching limits) or at a given concurrency.

use crate::analytic::flops_mem_batch::{concurrency_with_capacity, ConcurrencyFn, FlopsMemBatch};
use crate::fit::file::FitFile;
use crate::llm::concurrency::{concurrency, Batching, PAGE_TOKENS};
use crate::measure::plan::MAX_REQUESTS;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;

#[derive(clap::Args, Debug, Default)]
pub struct BatchArgs {
    /// flops-mem-batch: predict for R requests submitted at once (concurrency from the engine's
    /// batching rules under the fit's max_batch_size and max_num_tokens).
    #[arg(long, value_name = "R", conflicts_with = "concurrency", value_parser = super::values::whole(1, MAX_REQUESTS))]
    pub requests: Option<u64>,
    /// flops-mem-batch: predict at this many sequences in flight per decode step.
    #[arg(long, value_name = "C", value_parser = super::values::in_flight)]
    pub concurrency: Option<f64>,
    /// With --requests: GPU memory that sizes the KV cache (default: the fit's).
    #[arg(long, value_name = "GIB", requires = "requests", conflicts_with = "kv_capacity_tokens", value_parser = super::values::gpu_mem_gib)]
    pub gpu_mem_gib: Option<f64>,
    /// With --requests: tokens the KV cache holds (default: computed from the GPU memory).
    #[arg(long, value_name = "TOKENS", requires = "requests", value_parser = clap::value_parser!(u64).range(1..))]
    pub kv_capacity_tokens: Option<u64>,
}

/// flops-mem-batch bound to the batch asked for.
pub struct Bound {
    pub model: FlopsMemBatch,
    pub concurrency: ConcurrencyFn,
    /// The batch in words, for the output.
    pub what: String,
    /// With --requests: the batching the concurrency is simulated under and the flag that set
    /// its KV cache, to refuse a point no request of which fits (see [`Bound::check`]).
    runs: Option<(Batching, String)>,
}

impl Bound {
    /// A point (n, m) the batch asked for cannot run at all (a request longer than the KV
    /// cache or than max_num_tokens) is an error naming the flag: its concurrency would
    /// otherwise read as 1 and the prediction as that of a batch that never exists.
    pub fn check(&self, n: f64, m: f64) -> Result<()> {
        if let Some((b, flag)) = &self.runs {
            concurrency(n as usize, m as usize, b)
                .with_context(|| format!("{flag}: no request of n = {n}, m = {m} tokens runs"))?;
        }
        Ok(())
    }
}

impl BatchArgs {
    /// The first batch flag given, for errors.
    pub fn given(&self) -> Option<&'static str> {
        if self.requests.is_some() {
            Some("--requests")
        } else if self.concurrency.is_some() {
            Some("--concurrency")
        } else {
            None
        }
    }

    /// The fit's model at the batch asked for; None when no batch flag is given.
    pub fn bind(&self, f: &FitFile, path: &Path) -> Result<Option<Bound>> {
        let Some(flag) = self.given() else {
            return Ok(None);
        };
        let Some(ctx) = f.batch.as_ref().filter(|_| f.model == "flops-mem-batch") else {
            bail!(
                "{flag}: {} is a {} fit, which does not model the batch; fit flops-mem-batch (fit --model flops-mem-batch)",
                path.display(),
                f.model
            );
        };
        if let Some(c) = self.concurrency {
            let cf: ConcurrencyFn = Arc::new(move |_, _| c);
            return Ok(Some(Bound {
                model: FlopsMemBatch::new(cf.clone()),
                concurrency: cf,
                what: format!("{c} sequences in flight (--concurrency)"),
                runs: None,
            }));
        }
        let mut ctx = ctx.clone();
        ctx.settings.requests = self.requests.unwrap_or(1) as usize;
        if let Some(g) = self.gpu_mem_gib {
            ctx.settings.gpu_memory_bytes = g * (1u64 << 30) as f64;
        }
        let s = ctx.settings;
        let gib = s.gpu_memory_bytes / (1u64 << 30) as f64;
        let (cf, cap, capacity, flag) = match self.kv_capacity_tokens {
            Some(k) => (
                concurrency_with_capacity(s, k as usize),
                format!("KV cache of {k} tokens"),
                k as usize,
                format!("--kv-capacity-tokens {k}"),
            ),
            None => {
                let flag = match self.gpu_mem_gib {
                    Some(g) => format!("--gpu-mem-gib {g}"),
                    None => format!("--requests {} (the fit's {gib} GiB GPU memory)", s.requests),
                };
                let cfg = crate::llm::resolve_llm(
                    ctx.llm.strip_prefix("synthetic-").unwrap_or(&ctx.llm),
                )?;
                let k = crate::llm::concurrency::kv_capacity_tokens(
                    &cfg,
                    s.gpu_memory_bytes,
                    s.dtype_bytes,
                    s.max_num_tokens,
                    s.max_batch_size.min(s.requests),
                );
                (
                    ctx.concurrency().with_context(|| flag.clone())?,
                    format!("KV cache of {gib:.0} GiB GPU memory"),
                    k,
                    flag,
                )
            }
        };
        let batching = Batching {
            requests: s.requests,
            max_batch_size: s.max_batch_size,
            max_num_tokens: s.max_num_tokens,
            kv_capacity_tokens: capacity,
            page_tokens: PAGE_TOKENS,
        };
        Ok(Some(Bound {
            model: FlopsMemBatch::new(cf.clone()),
            concurrency: cf,
            what: format!(
                "{} requests at once (max_batch_size {}, max_num_tokens {}, {cap})",
                s.requests, s.max_batch_size, s.max_num_tokens
            ),
            runs: Some((batching, flag)),
        }))
    }
}
