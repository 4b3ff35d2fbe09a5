//! In-flight batching with TensorRT-LLM semantics (guaranteed no eviction), as pure CPU logic so CI
//! can test it: at most `max_batch_size` active requests, at most `max_num_tokens` tokens per
//! iteration (one per decoding request plus whole prompts of newly admitted ones), a request admitted
//! (FIFO) only when KV pages for all its n + m tokens are free, never evicted, removed as soon as its
//! m-th token is out. The prefill iteration of a request produces its first token.

use anyhow::{bail, Result};
use std::collections::VecDeque;

/// Tokens per KV page (the attention kernels assume 32).
pub const PAGE_SIZE: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_batch_size: usize,
    pub max_num_tokens: usize,
}

/// One request: prompt and output lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReqLen {
    pub input_tokens: usize,
    pub output_tokens: usize,
}

impl ReqLen {
    pub fn pages(&self) -> usize {
        (self.input_tokens + self.output_tokens).div_ceil(PAGE_SIZE)
    }
}

/// A request prefilled in this iteration (its whole prompt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefill {
    pub req: usize,
    pub slot: usize,
    pub n: usize,
    /// KV pages reserved for the request (page ids), in sequence order.
    pub pages: Vec<u32>,
}

/// A request decoding one token in this iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decode {
    pub req: usize,
    pub slot: usize,
    /// Position of the input token (the last generated one).
    pub pos: usize,
    /// Index (0-based) of the output token this step produces.
    pub step: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iteration {
    pub prefill: Vec<Prefill>,
    pub decode: Vec<Decode>,
    /// Requests whose last token this iteration produces (removed afterwards).
    pub finished: Vec<usize>,
}

impl Iteration {
    pub fn prefill_tokens(&self) -> usize {
        self.prefill.iter().map(|p| p.n).sum()
    }
    pub fn tokens(&self) -> usize {
        self.prefill_tokens() + self.decode.len()
    }
}

struct Active {
    req: usize,
    slot: usize,
    pages: Vec<u32>,
    generated: usize,
}

pub struct Scheduler {
    reqs: Vec<ReqLen>,
    limits: Limits,
    waiting: VecDeque<usize>,
    active: Vec<Active>,
    free_slots: Vec<usize>,
    free_pages: Vec<u32>,
    pub total_pages: usize,
}

impl Scheduler {
    /// Checks up front that every request can run alone; otherwise a clear error.
    pub fn new(reqs: Vec<ReqLen>, limits: Limits, total_pages: usize) -> Result<Scheduler> {
        if limits.max_batch_size == 0 || limits.max_num_tokens == 0 {
            bail!("max_batch_size and max_num_tokens must be > 0 (got {limits:?})");
        }
        for (i, r) in reqs.iter().enumerate() {
            if r.output_tokens == 0 || r.input_tokens == 0 {
                bail!("request {i}: input_tokens and output_tokens must be > 0 (got {r:?})");
            }
            if r.input_tokens > limits.max_num_tokens {
                bail!("request {i}: input_tokens {} exceeds max_num_tokens {} (chunked prefill is not supported)", r.input_tokens, limits.max_num_tokens);
            }
            if r.pages() > total_pages {
                bail!(
                    "request {i}: needs {} KV pages for {} tokens but the cache holds {total_pages} pages ({} tokens): too little GPU memory for one request",
                    r.pages(),
                    r.input_tokens + r.output_tokens,
                    total_pages * PAGE_SIZE
                );
            }
        }
        Ok(Scheduler {
            waiting: (0..reqs.len()).collect(),
            reqs,
            limits,
            active: Vec::new(),
            free_slots: (0..limits.max_batch_size).rev().collect(),
            free_pages: (0..total_pages as u32).rev().collect(),
            total_pages,
        })
    }

    pub fn done(&self) -> bool {
        self.waiting.is_empty() && self.active.is_empty()
    }

    pub fn free_pages(&self) -> usize {
        self.free_pages.len()
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Plan the next iteration and advance the state as if it ran. None when all are done.
    pub fn next_iteration(&mut self) -> Option<Iteration> {
        if self.done() {
            return None;
        }
        let mut it = Iteration::default();
        for a in &self.active {
            let r = self.reqs[a.req];
            it.decode.push(Decode {
                req: a.req,
                slot: a.slot,
                pos: r.input_tokens + a.generated - 1,
                step: a.generated,
            });
        }
        let mut budget =
            self.limits.max_num_tokens - it.decode.len().min(self.limits.max_num_tokens);
        while let Some(&req) = self.waiting.front() {
            let r = self.reqs[req];
            if self.active.len() >= self.limits.max_batch_size
                || r.input_tokens > budget
                || r.pages() > self.free_pages.len()
            {
                break;
            }
            self.waiting.pop_front();
            budget -= r.input_tokens;
            let slot = self
                .free_slots
                .pop()
                .expect("slot available when active < max_batch_size");
            let pages: Vec<u32> = (0..r.pages())
                .map(|_| self.free_pages.pop().unwrap())
                .collect();
            it.prefill.push(Prefill {
                req,
                slot,
                n: r.input_tokens,
                pages: pages.clone(),
            });
            self.active.push(Active {
                req,
                slot,
                pages,
                generated: 0,
            });
        }
        // Advance: every active request produced one token this iteration.
        let reqs = &self.reqs;
        let mut keep = Vec::with_capacity(self.active.len());
        for mut a in self.active.drain(..) {
            a.generated += 1;
            if a.generated >= reqs[a.req].output_tokens {
                it.finished.push(a.req);
                self.free_slots.push(a.slot);
                self.free_pages.append(&mut a.pages);
            } else {
                keep.push(a);
            }
        }
        self.active = keep;
        Some(it)
    }
}
