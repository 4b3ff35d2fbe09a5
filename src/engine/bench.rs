//! Timing of single engine phases against their roofline floors (docs/performance.md): one prefill iteration
//! of a full token budget, and decode steps of a batch at a given context, set up directly on the
//! model (no scheduler, KV cache zeroed rather than prefilled: decode time does not depend on the
//! cached values). Also the two peaks the floors divide by: cuBLAS bf16/fp16 GEMM throughput and
//! device-to-device copy bandwidth, measured on the GPU at hand. Times come from CUDA events.

use super::device::{elapsed_ms, grid_for, DevBuf, DevPtr, KernelTime};
use super::forward::{Model, StepInput};
use super::launches::FillUniform;
use super::scheduler::{Decode, Iteration, Prefill, PAGE_SIZE};
use super::Engine;
use anyhow::{bail, Context, Result};
use cudarc::driver::result as drv;

impl Engine {
    /// cuBLAS throughput of an `m × n × k` GEMM in the run dtype: (ms per GEMM, TFLOP/s).
    /// `random`: operands uniform in [-1, 1], as the engine's are, rather than zeros; zeros toggle
    /// no bits and draw less power, so a card at its power limit runs them faster (894 against 788
    /// TFLOP/s have been seen on an H200). `sustained`: `reps` GEMMs back to back timed as one,
    /// long enough for the clocks to settle at the power limit as in a prefill; otherwise the best
    /// of `reps` single GEMMs, each a burst the power controller does not see.
    pub fn bench_gemm(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        reps: usize,
        random: bool,
        sustained: bool,
    ) -> Result<(f64, f64)> {
        let dt = self.model.dt;
        let dev = &mut self.model.dev;
        let e = dt.bytes();
        let (x, w, y) = (
            dev.alloc(m * k * e)?,
            dev.alloc(n * k * e)?,
            dev.alloc(m * n * e)?,
        );
        for (i, b) in [&x, &w].into_iter().enumerate() {
            if random {
                let f = FillUniform {
                    out: b.dptr(),
                    n: (b.bytes() / e) as i64,
                    seed: 0x5EED_0000 + i as u64,
                    scale: 1.0,
                    offset: 0.0,
                };
                let grid = grid_for(b.bytes() / e, 256, dev.sms);
                // SAFETY: n is the buffer's element count.
                unsafe { f.launch(dev, &format!("fill_uniform_{}", dt.suffix()), grid, 256, 0)? };
            } else {
                dev.zero(b)?;
            }
        }
        let reps = reps.max(1);
        let gemm = |md: &mut Model| md.dev.gemm(dt, m, n, k, x.view(), w.view(), y.view());
        let ms = if sustained {
            back_to_back_ms(&mut self.model, reps.div_ceil(4), gemm)?; // warm-up: clocks settle before the timing
            back_to_back_ms(&mut self.model, reps, gemm)?
        } else {
            best_single_ms(&mut self.model, reps, gemm)?
        };
        Ok((ms, 2.0 * (m * n * k) as f64 / (ms * 1e-3) / 1e12))
    }

    /// Best of `reps` device-to-device copies of `bytes` (ms) and the bandwidth counting the read
    /// and the write (GB/s).
    pub fn bench_copy_bandwidth(&mut self, bytes: usize, reps: usize) -> Result<(f64, f64)> {
        let dev = &self.model.dev;
        let (src, dst): (DevBuf, DevBuf) = (dev.alloc(bytes)?, dev.alloc(bytes)?);
        // SAFETY: both buffers hold `bytes` bytes.
        let copy = |md: &mut Model| {
            unsafe {
                drv::memcpy_dtod_async(
                    dst.view::<u8>().addr(),
                    src.view::<u8>().addr(),
                    bytes,
                    md.dev.stream.cu_stream(),
                )
            }
            .context("copy")
        };
        let best = best_single_ms(&mut self.model, reps.max(1), copy)?;
        Ok((best, 2.0 * bytes as f64 / (best * 1e-3) / 1e9))
    }

    /// The most sequences of `len` tokens that the KV cache and max_batch_size hold at once: the
    /// batch a long-context point decodes at when the asked batches do not fit.
    pub fn decode_capacity(&self, len: usize) -> usize {
        batch_capacity(self.model.total_pages, self.model.max_seqs, len)
    }

    /// Pages for `seqs` sequences of `len` tokens each, slots 0.., written to the block table.
    fn bench_pages(&mut self, seqs: usize, len: usize) -> Result<Vec<Vec<u32>>> {
        let per = len.div_ceil(PAGE_SIZE);
        if seqs > self.model.max_seqs {
            bail!(
                "{seqs} sequences exceed the engine's max_batch_size {}",
                self.model.max_seqs
            );
        }
        if seqs * per > self.model.total_pages {
            bail!(
                "{seqs} sequences of {len} tokens need {} KV pages, the cache holds {}",
                seqs * per,
                self.model.total_pages
            );
        }
        let pages: Vec<Vec<u32>> = (0..seqs)
            .map(|s| ((s * per) as u32..((s + 1) * per) as u32).collect())
            .collect();
        let it = Iteration {
            prefill: pages
                .iter()
                .enumerate()
                .map(|(s, p)| Prefill {
                    req: s,
                    slot: s,
                    n: len,
                    pages: p.clone(),
                })
                .collect(),
            ..Default::default()
        };
        self.model.set_block_tables(&it)?;
        Ok(pages)
    }

    /// The planned prefill iteration of `seqs` prompts of `n` tokens and its output buffer.
    fn prefill_setup(&mut self, seqs: usize, n: usize) -> Result<(StepInput, DevBuf)> {
        if seqs * n > self.model.max_tokens {
            bail!(
                "{seqs} × {n} tokens exceed the engine's max_num_tokens {}",
                self.model.max_tokens
            );
        }
        let pages = self.bench_pages(seqs, n + 1)?;
        let it = Iteration {
            prefill: pages
                .into_iter()
                .enumerate()
                .map(|(s, p)| Prefill {
                    req: s,
                    slot: s,
                    n,
                    pages: p,
                })
                .collect(),
            ..Default::default()
        };
        let vocab = self.model.cfg.vocab;
        let prompt = |r: usize, i: usize| ((r * 7919 + i * 104729) % vocab) as i32;
        let out = self.model.dev.alloc(seqs * 4)?;
        let base: Vec<usize> = (0..seqs).collect();
        Ok((self.model.plan(&it, &prompt, &base), out))
    }

    /// One prefill iteration of `seqs` prompts of `n` tokens: GPU time (ms), the mean of iterations
    /// run back to back for at least `min_ms` (after a quarter as many untimed), so the card works at
    /// its power limit as through a prompt-heavy point; a lone iteration is a burst that ends before
    /// the power controller lowers the clocks. Matches the sustained GEMM peak it is compared with.
    pub fn bench_prefill(&mut self, seqs: usize, n: usize, min_ms: f64) -> Result<f64> {
        let (step, out) = self.prefill_setup(seqs, n)?;
        let fwd = |md: &mut Model| md.forward(&step, out.dptr());
        let once = back_to_back_ms(&mut self.model, 1, fwd)?;
        let reps = ((min_ms / once.max(1e-3)).ceil() as usize).clamp(1, 10_000);
        back_to_back_ms(&mut self.model, reps.div_ceil(4), fwd)?;
        back_to_back_ms(&mut self.model, reps, fwd)
    }

    /// Block tables and a zeroed KV cache for `batch` sequences decoding `steps` tokens from
    /// position `context - 1`; the output buffer and each sequence's output base.
    fn decode_setup(
        &mut self,
        batch: usize,
        context: usize,
        steps: usize,
    ) -> Result<(DevBuf, Vec<usize>)> {
        if context == 0 || context + steps > self.model.max_pages_per_seq * PAGE_SIZE {
            bail!(
                "context {context} + {steps} steps exceeds the block table ({} tokens)",
                self.model.max_pages_per_seq * PAGE_SIZE
            );
        }
        self.bench_pages(batch, context + steps)?;
        self.model.dev.zero(&self.model.b.kv)?;
        let out = self.model.dev.alloc(batch * (steps + 1) * 4)?;
        let base: Vec<usize> = (0..batch).map(|s| s * (steps + 1)).collect();
        Ok((out, base))
    }

    /// Decode step `k` of the setup above.
    fn decode_step(&self, batch: usize, context: usize, k: usize, base: &[usize]) -> StepInput {
        let it = Iteration {
            decode: (0..batch)
                .map(|s| Decode {
                    req: s,
                    slot: s,
                    pos: context - 1 + k,
                    step: k,
                })
                .collect(),
            ..Default::default()
        };
        self.model.plan(&it, &|_: usize, _: usize| 0i32, base)
    }

    /// `steps` decode iterations of `batch` sequences whose new token sits at position
    /// `context - 1` (KV cache zeroed): median GPU time per step (ms), graphs as configured.
    pub fn bench_decode(&mut self, batch: usize, context: usize, steps: usize) -> Result<f64> {
        let (out, base) = self.decode_setup(batch, context, steps)?;
        if let Some(g) = self.model.graphs.as_mut() {
            g.clear();
        }
        let mut events = vec![self.model.dev.recorded_event()?];
        for k in 0..steps {
            let step = self.decode_step(batch, context, k, &base);
            self.model.forward(&step, out.dptr())?;
            events.push(self.model.dev.recorded_event()?);
        }
        self.model.dev.sync()?;
        let mut t: Vec<f64> = events
            .windows(2)
            .map(|w| elapsed_ms(&w[0], &w[1]))
            .collect::<Result<_>>()?;
        // The first two steps include graph capture; the median ignores them.
        t.sort_by(f64::total_cmp);
        Ok(t[t.len() / 2])
    }

    /// Per-kernel GPU time of one forward of `step` (after one untimed warm-up forward), launched
    /// directly: CUDA graphs are set aside meanwhile, since events cannot bracket nodes of a replay.
    fn kernel_times(&mut self, step: &StepInput, out: DevPtr<i32>) -> Result<Vec<KernelTime>> {
        self.model.forward(step, out)?;
        let graphs = self.model.graphs.take();
        self.model.dev.kernel_timer = Some(Default::default());
        let r = self
            .model
            .forward(step, out)
            .and_then(|_| self.model.dev.take_kernel_times());
        self.model.dev.kernel_timer = None;
        self.model.graphs = graphs;
        r
    }

    /// Per-kernel breakdown of the prefill iteration `bench_prefill` times.
    pub fn bench_prefill_kernels(&mut self, seqs: usize, n: usize) -> Result<Vec<KernelTime>> {
        let (step, out) = self.prefill_setup(seqs, n)?;
        self.kernel_times(&step, out.dptr())
    }

    /// Per-kernel breakdown of one decode step of `batch` sequences at `context`.
    pub fn bench_decode_kernels(
        &mut self,
        batch: usize,
        context: usize,
    ) -> Result<Vec<KernelTime>> {
        let (out, base) = self.decode_setup(batch, context, 1)?;
        let step = self.decode_step(batch, context, 0, &base);
        self.kernel_times(&step, out.dptr())
    }
}

/// Sequences of `len` tokens that `total_pages` KV pages hold, at most `max_seqs`.
fn batch_capacity(total_pages: usize, max_seqs: usize, len: usize) -> usize {
    (total_pages / len.max(1).div_ceil(PAGE_SIZE)).min(max_seqs)
}

/// `reps` launches of `op` back to back between two CUDA events: GPU time per launch (ms).
fn back_to_back_ms(
    md: &mut Model,
    reps: usize,
    mut op: impl FnMut(&mut Model) -> Result<()>,
) -> Result<f64> {
    let a = md.dev.recorded_event()?;
    for _ in 0..reps {
        op(md)?;
    }
    let b = md.dev.recorded_event()?;
    md.dev.sync()?;
    Ok(elapsed_ms(&a, &b)? / reps as f64)
}

/// Best of `reps + 1` single launches of `op`, each timed alone (the first also warms up): ms.
fn best_single_ms(
    md: &mut Model,
    reps: usize,
    mut op: impl FnMut(&mut Model) -> Result<()>,
) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps + 1 {
        best = best.min(back_to_back_ms(md, 1, &mut op)?);
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::{batch_capacity, PAGE_SIZE};

    #[test]
    fn batch_capacity_counts_whole_pages() {
        // 14226 pages (llama-3.1-8b on an H100); 2072 tokens take 65 pages of 32 → 218 sequences.
        assert_eq!(PAGE_SIZE, 32);
        assert_eq!(batch_capacity(14226, 1024, 2072), 218);
        assert_eq!(batch_capacity(14226, 1024, 2048), 222); // exactly 64 pages each
        assert_eq!(batch_capacity(14226, 100, 128), 100); // max_batch_size bounds it
        assert_eq!(batch_capacity(10, 1024, 4096), 0);
    }
}
