//! How many sequences run at once at a grid point, from the engine's batching rules alone.
//!
//! Costs a decode step shares among its sequences (reading the weights, fixed per-step overheads)
//! are divided by the number of sequences in flight, and at long contexts fewer sequences fit in the
//! KV cache. This module reproduces, on the CPU and without the engine, the in-flight batching the
//! engine's scheduler applies to a grid point's R identical requests (all submitted at t = 0):
//!
//! - at most `max_batch_size` requests active;
//! - at most `max_num_tokens` tokens per iteration: one per decoding request, plus the whole prompt
//!   of each request admitted in that iteration (no chunked prefill);
//! - a request is admitted first-in first-out, only when KV pages for all its n + m tokens are free;
//!   it is never evicted, and its pages return once its m-th token is out;
//! - the iteration that prefills a request also produces its first token.
//!
//! Requests of one point are identical, so the simulation keeps cohorts (requests admitted in the
//! same iteration) instead of requests, and jumps over the iterations in which nothing is admitted
//! or finishes: its cost grows with R, not with R · m.

use super::LlmConfig;
use anyhow::{bail, Result};

/// Tokens per KV page (the engine's paged cache uses 32).
pub const PAGE_TOKENS: usize = 32;

/// Share of GPU memory the engine may use (the rest: CUDA context, cuBLAS workspace,
/// fragmentation); the measure plan's dry run uses the same share.
pub const USABLE_MEMORY: f64 = 0.90;

/// The batching limits and KV capacity that decide a point's concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Requests submitted at once (R).
    pub requests: usize,
    pub max_batch_size: usize,
    pub max_num_tokens: usize,
    /// Tokens the KV cache holds (all layers), e.g. from [`kv_capacity_tokens`].
    pub kv_capacity_tokens: usize,
    /// Tokens per KV page; a request reserves whole pages.
    pub page_tokens: usize,
}

/// What the schedule of one point looks like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Concurrency {
    /// Forward passes (iterations) to finish all R requests.
    pub iterations: u64,
    /// Most requests active in one iteration.
    pub max_in_flight: usize,
    /// Mean sequences per iteration, R · m / iterations (every active request produces one token
    /// per iteration).
    pub mean_in_flight: f64,
}

impl Batching {
    /// KV pages in the cache.
    pub fn total_pages(&self) -> usize {
        self.kv_capacity_tokens / self.page_tokens.max(1)
    }
}

/// The schedule of R requests of `n` prompt and `m` output tokens under `b`. Errors (naming the
/// limit) when a single request cannot run at all, as the engine's scheduler refuses it up front.
pub fn concurrency(n: usize, m: usize, b: &Batching) -> Result<Concurrency> {
    if n == 0 || m == 0 {
        bail!("input_tokens and output_tokens must be > 0 (got n = {n}, m = {m})");
    }
    if b.requests == 0 || b.max_batch_size == 0 || b.max_num_tokens == 0 || b.page_tokens == 0 {
        bail!("requests, max_batch_size, max_num_tokens and page_tokens must be > 0 (got {b:?})");
    }
    if n > b.max_num_tokens {
        bail!(
            "input_tokens {n} exceeds max_num_tokens {} (chunked prefill is not supported)",
            b.max_num_tokens
        );
    }
    let pages = (n + m).div_ceil(b.page_tokens);
    if pages > b.total_pages() {
        bail!(
            "one request of {} tokens needs {pages} KV pages but the cache holds {} ({} tokens)",
            n + m,
            b.total_pages(),
            b.kv_capacity_tokens
        );
    }
    let mut waiting = b.requests;
    let mut free = b.total_pages();
    // (requests, iteration its m-th token is out) per cohort, oldest first. Every cohort has the
    // same m, so cohorts finish in the order they were admitted and one step costs O(1), not
    // O(cohorts): a point of 10^6 requests with a few admitted per iteration stays fast.
    let mut cohorts: std::collections::VecDeque<(usize, u64)> = Default::default();
    let mut decoding = 0usize;
    let (mut iterations, mut max_in_flight) = (0u64, 0usize);
    while waiting > 0 || !cohorts.is_empty() {
        let budget = b.max_num_tokens - decoding.min(b.max_num_tokens);
        let admit = waiting
            .min(b.max_batch_size.saturating_sub(decoding))
            .min(budget / n)
            .min(free / pages);
        let step = if admit > 0 {
            cohorts.push_back((admit, iterations + m as u64));
            waiting -= admit;
            free -= admit * pages;
            1
        } else {
            // Nothing can be admitted until a cohort finishes and frees its slots and pages: the
            // iterations until then all look alike.
            cohorts
                .front()
                .map(|c| c.1 - iterations)
                .expect("a cohort is active when none is admitted")
        };
        max_in_flight = max_in_flight.max(decoding + admit);
        decoding += admit;
        iterations += step;
        while let Some(&(k, done)) = cohorts.front() {
            if done > iterations {
                break;
            }
            cohorts.pop_front();
            free += k * pages;
            decoding -= k;
        }
    }
    Ok(Concurrency {
        iterations,
        max_in_flight,
        mean_in_flight: (b.requests * m) as f64 / iterations as f64,
    })
}

/// GPU memory left for the KV cache, in tokens: the usable share of `gpu_memory_bytes` less the
/// weights and the activation workspace (one iteration of `max_num_tokens` tokens, logits of
/// `max(batch)` sequences in fp32), divided by the KV bytes one token occupies. Zero when nothing
/// is left. The measure plan's dry run sizes its cache the same way.
pub fn kv_capacity_tokens(
    cfg: &LlmConfig,
    gpu_memory_bytes: f64,
    dtype_bytes: usize,
    max_num_tokens: usize,
    max_sequences: usize,
) -> usize {
    let free = gpu_memory_bytes * USABLE_MEMORY
        - weight_bytes(cfg, dtype_bytes)
        - workspace_bytes(cfg, dtype_bytes, max_num_tokens, max_sequences);
    let per_token = cfg.kv_bytes_per_token(dtype_bytes) as f64;
    if free <= 0.0 || per_token <= 0.0 {
        return 0;
    }
    (free / per_token).floor() as usize
}

/// Bytes of every parameter as stored.
pub fn weight_bytes(cfg: &LlmConfig, dtype_bytes: usize) -> f64 {
    (cfg.params() * dtype_bytes) as f64
}

/// Activation workspace of one iteration: residual, norms, projections and FFN rows of
/// `max_num_tokens` tokens, plus fp32 logits of `max_sequences` sequences.
pub fn workspace_bytes(
    cfg: &LlmConfig,
    dtype_bytes: usize,
    max_num_tokens: usize,
    max_sequences: usize,
) -> f64 {
    max_num_tokens as f64 * ((4 * cfg.hidden + 2 * cfg.ffn_dim) * dtype_bytes) as f64
        + max_sequences as f64 * (cfg.vocab * 4) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(requests: usize, bs: usize, t: usize, cap: usize) -> Batching {
        Batching {
            requests,
            max_batch_size: bs,
            max_num_tokens: t,
            kv_capacity_tokens: cap,
            page_tokens: PAGE_TOKENS,
        }
    }

    #[test]
    fn ample_capacity_is_one_wave_of_m_iterations() {
        let c = concurrency(64, 100, &b(10, 1024, 8192, 1 << 20)).unwrap();
        assert_eq!(c.iterations, 100);
        assert_eq!(c.max_in_flight, 10);
        assert!((c.mean_in_flight - 10.0).abs() < 1e-12);
    }

    #[test]
    fn kv_capacity_splits_requests_into_waves() {
        // Two requests of 64 tokens (2 pages each) fit at a time: 3 waves of m iterations.
        let c = concurrency(32, 32, &b(6, 1024, 8192, 4 * PAGE_TOKENS)).unwrap();
        assert_eq!(c.max_in_flight, 2);
        assert_eq!(c.iterations, 3 * 32);
    }

    #[test]
    fn a_request_too_large_is_refused_naming_the_limit() {
        let e = concurrency(64, 64, &b(1, 8, 8192, 64)).unwrap_err();
        assert!(format!("{e}").contains("KV pages"), "{e}");
        let e = concurrency(9000, 64, &b(1, 8, 8192, 1 << 20)).unwrap_err();
        assert!(format!("{e}").contains("max_num_tokens"), "{e}");
    }

    /// The schedule iteration by iteration, request by request: the rules of the module doc
    /// stated as plainly as possible, to check the cohort simulation against.
    fn naive(n: usize, m: usize, b: &Batching) -> (u64, usize) {
        let pages = (n + m).div_ceil(b.page_tokens);
        let (mut waiting, mut free) = (b.requests, b.total_pages());
        let mut active: Vec<usize> = Vec::new(); // tokens out per active request
        let (mut it, mut most) = (0u64, 0usize);
        while waiting > 0 || !active.is_empty() {
            let mut tokens = active.len();
            let mut admitted = 0;
            while waiting > 0
                && active.len() + admitted < b.max_batch_size
                && tokens + n <= b.max_num_tokens
                && free >= pages
            {
                waiting -= 1;
                free -= pages;
                tokens += n;
                admitted += 1;
            }
            active.extend(std::iter::repeat_n(0, admitted));
            most = most.max(active.len());
            it += 1;
            active.iter_mut().for_each(|t| *t += 1);
            free += active.iter().filter(|t| **t >= m).count() * pages;
            active.retain(|t| *t < m);
        }
        (it, most)
    }

    #[test]
    fn cohorts_agree_with_the_rules_request_by_request() {
        let cases = [
            (64, 64, b(1000, 1024, 8192, 1 << 20)),
            (4096, 300, b(37, 16, 8192, 40 * 1024)),
            (100, 7, b(500, 64, 1000, 3000)),
            (33, 1, b(50, 8, 100, 200)),
            (512, 2048, b(300, 1024, 8192, 100_000)),
        ];
        for (n, m, batching) in cases {
            let c = concurrency(n, m, &batching).unwrap();
            assert_eq!(
                (c.iterations, c.max_in_flight),
                naive(n, m, &batching),
                "{n} {m} {batching:?}"
            );
        }
    }

    #[test]
    fn a_million_requests_of_long_prompts_take_milliseconds() {
        // Two long prompts are admitted per iteration, so about 500 cohorts decode at once.
        let t = std::time::Instant::now();
        let c = concurrency(4096, 4096, &b(1 << 20, 1024, 8192, 1 << 23)).unwrap();
        assert!(c.mean_in_flight > 100.0, "{c:?}");
        assert!(t.elapsed().as_secs_f64() < 0.5, "{:?}", t.elapsed());
    }
}
