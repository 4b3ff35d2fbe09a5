//! The inference engine: our own CUDA kernels (NVRTC), cuBLAS GEMMs, a paged KV cache and an
//! in-flight batching scheduler with TensorRT-LLM semantics. `Engine::run` executes one grid point
//! (R requests of n input and m output tokens) and reports what ran; it knows nothing of energy.

#[cfg(test)]
mod alibi_bias;
pub mod attn_item;
pub mod attn_shapes;
pub mod bench;
mod checkpoint;
pub mod device;
pub mod forward;
mod forward_launch;
pub mod gemm_shape;
pub mod gemms;
pub mod graphs;
pub mod kv_tmap;
mod launch_ptrs;
pub mod launches;
pub mod lt_gemm;
pub mod scheduler;
pub mod selftest;
mod selftest_attn;
mod selftest_attn_tc;
mod selftest_gemm;
mod selftest_layer;
pub mod weights;

pub use device::DType;
pub use scheduler::{Limits, ReqLen, PAGE_SIZE};

use crate::llm::LlmConfig;
use anyhow::{bail, Context, Result};
use device::Device;
use forward::{Buffers, MetaLayout, Model, MAX_PARTS};
use graphs::{GraphCache, Stager};
use rand::{Rng, SeedableRng};
use scheduler::Scheduler;
use std::path::PathBuf;
use std::time::Instant;

/// Construction options.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub dtype: DType,
    /// Fraction of the free GPU memory (after weights and activations) given to the KV cache.
    pub kv_fraction: f64,
    /// Seed of the random weights and of the random prompt tokens.
    pub seed: u64,
    /// Local HF checkpoint directory; None = random weights.
    pub checkpoint: Option<PathBuf>,
    /// Capacity: the largest max_batch_size / max_num_tokens a run may ask for.
    pub max_batch_size: usize,
    pub max_num_tokens: usize,
    pub device: usize,
    /// Replay decode iterations as CUDA graphs (off: launch every kernel; for A/B checks).
    pub cuda_graphs: bool,
    /// Attention on the tensor-core kernels (attention_tc.cu prefill, attention_tcd.cu decode); off:
    /// the fp32 scalar attention.cu for both (A/B checks).
    pub tc_attention: bool,
    /// `warm_gemm_shapes` times cuBLASLt's candidate algorithms against cublasGemmEx for each layer
    /// GEMM at each row count and keeps the fastest (lt_gemm.rs); off: cublasGemmEx throughout,
    /// but for a fused-epilogue GEMM (OPT's fc1, `gemms::ffn_epilogue`) on cuBLASLt's default pick.
    pub gemm_tune: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            dtype: DType::Bf16,
            kv_fraction: 0.9,
            seed: 0,
            checkpoint: None,
            max_batch_size: 1024,
            max_num_tokens: 8192,
            device: 0,
            cuda_graphs: true,
            tc_attention: true,
            gemm_tune: false,
        }
    }
}

/// What `warm_gemm_shapes` found when tuning: per-launch milliseconds summed over the tuned shapes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct GemmTuneSummary {
    pub shapes: usize,
    /// Shapes that now run on a cuBLASLt algorithm.
    pub lt_shapes: usize,
    /// Sum over shapes of the untuned time (cublasGemmEx's; for a fused-epilogue GEMM, which has no
    /// cublasGemmEx form, cuBLASLt's default algorithm's), and of the time of what each now runs.
    pub gemm_ex_ms: f64,
    pub tuned_ms: f64,
}

impl GemmTuneSummary {
    /// One line for a tuning over `rows` (e.g. "1..=1024") that took `secs`.
    pub fn line(&self, rows: &str, secs: f64) -> String {
        format!(
            "GEMM shapes of {rows} rows tuned in {secs:.1} s: {} of {} on cuBLASLt; summed per-launch time {:.3} -> {:.3} ms ({:+.1} %)",
            self.lt_shapes,
            self.shapes,
            self.gemm_ex_ms,
            self.tuned_ms,
            100.0 * (self.tuned_ms / self.gemm_ex_ms.max(1e-12) - 1.0)
        )
    }
}

/// One grid point: `requests` identical requests, all submitted at t = 0.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub requests: usize,
    pub input_tokens: usize,
    pub output_tokens: usize,
    pub max_batch_size: usize,
    pub max_num_tokens: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IterationStats {
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
}

/// Timing of one iteration (`Engine::trace`), from CUDA events recorded just before and just after
/// its launches: host time spent planning and queuing it, GPU time between the two events, and the
/// GPU's idle time before it (from the previous iteration's end event to this one's start event:
/// nonzero only when the host had nothing queued, which is the host's share of the run's time).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct IterationTrace {
    pub host_us: f64,
    pub busy_ms: f64,
    pub gap_ms: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunStats {
    pub generated_tokens: usize,
    pub wall_s: f64,
    pub iterations: Vec<IterationStats>,
    /// Per iteration, when tracing is on (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<IterationTrace>,
}

/// A request with explicit prompt tokens (HF comparison, tests).
#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub output_tokens: usize,
}

/// Result of `run_requests`: stats, every request's generated ids, and optionally the logits of
/// every generated token (request → step → vocab), for checking against a reference.
pub struct RunOutput {
    pub stats: RunStats,
    pub tokens: Vec<Vec<u32>>,
    pub logits: Option<Vec<Vec<Vec<f32>>>>,
}

pub struct Engine {
    model: Model,
    seed: u64,
    runs: u64,
    /// Record an `IterationTrace` per iteration (two CUDA events each; diagnostics only).
    pub trace: bool,
    /// Totals of GEMM tuning so far (`EngineOptions::gemm_tune`).
    pub gemm_tune: Option<GemmTuneSummary>,
}

impl Engine {
    pub fn new(cfg: &LlmConfig, opts: EngineOptions) -> Result<Engine> {
        Model::check_supported(cfg)?;
        if !(0.0..=1.0).contains(&opts.kv_fraction) || opts.kv_fraction == 0.0 {
            bail!("--kv-fraction {} must be in (0, 1]", opts.kv_fraction);
        }
        let mut dev = Device::new(opts.device)?;
        let fused_ffn = gemms::ffn_epilogue(cfg) != device::Epilogue::None;
        if opts.gemm_tune || fused_ffn {
            dev.enable_lt()?;
        }
        let dt = opts.dtype;
        let w = match &opts.checkpoint {
            Some(dir) => weights::load(&dev, cfg, dt, dir)
                .with_context(|| format!("loading checkpoint {}", dir.display()))?,
            None => weights::random(&mut dev, cfg, dt, opts.seed)?,
        };
        let (tm, sm) = (opts.max_num_tokens, opts.max_batch_size);
        let c = cfg;
        let e = dt.bytes();
        let up_rows = if c.ffn.gated() {
            2 * c.ffn_dim
        } else {
            c.ffn_dim
        };
        let max_pages_per_seq = c.max_positions.div_ceil(PAGE_SIZE);
        let meta = MetaLayout::new(tm, sm);
        let a = |n: usize| dev.alloc(n);
        let mut b = Buffers {
            resid: a(tm * c.hidden * e)?,
            xn: a(tm * c.hidden * e)?,
            qkv: a(tm * (c.q_dim() + 2 * c.kv_dim()) * e)?,
            q: a(tm * c.q_dim() * e)?,
            attn: a(tm * c.q_dim() * e)?,
            tmp: a(tm * c.hidden * e)?,
            up: a(tm * up_rows * e)?,
            act: a(tm * c.ffn_dim * e)?,
            xs: a(sm * c.hidden * e)?,
            logits: a(sm * c.vocab * e)?,
            meta: a(meta.total * 4)?,
            next_tok: a(sm * 4)?,
            part_o: a(MAX_PARTS * c.heads * c.head_dim * 4)?,
            part_ml: a(MAX_PARTS * c.heads * 2 * 4)?,
            inv_freq: a(forward::positional_table(c).len().max(1) * 4)?,
            block_table: a(sm * max_pages_per_seq * 4)?,
            kv: device::DevBuf::empty(),
        };
        dev.upload(b.inv_freq.view(), &forward::positional_table(c))?;
        dev.upload(b.next_tok.view(), &vec![0i32; sm])?;
        dev.upload(b.block_table.view(), &vec![0i32; sm * max_pages_per_seq])?;
        dev.sync()?;
        let (free, _total) = dev.mem_info()?;
        let headroom = 512usize << 20; // cuBLAS workspaces, module, fragmentation
        let page_all_layers = 2 * c.layers * c.kv_heads * PAGE_SIZE * c.head_dim * e;
        let kv_bytes = (free.saturating_sub(headroom) as f64 * opts.kv_fraction) as usize;
        let total_pages = kv_bytes / page_all_layers;
        if total_pages == 0 {
            bail!(
                "too little GPU memory for a KV cache: {:.1} GiB free after weights",
                free as f64 / (1u64 << 30) as f64
            );
        }
        b.kv = dev.alloc(total_pages * page_all_layers)?;
        // Zeroed once, so every value in the cache is finite: attention_ws's TMA copies whole
        // pages, keys past a sequence's end included (masked to P = 0, and 0 · NaN would be NaN).
        dev.zero(&b.kv)?;
        let sms = dev.sms;
        let stager = Stager::new(&dev.ctx, meta.total.max(max_pages_per_seq))?;
        let graphs = opts.cuda_graphs.then(GraphCache::default);
        let (sx, hd) = (dt.suffix(), c.head_dim);
        let (tc_rows, tc_threads, tc_smem, tcd_threads, tcd_smem) = (
            dev.tc_rows(sx, hd)?,
            dev.tc_threads(sx, hd)?,
            dev.tc_smem(sx, hd)?,
            dev.tcd_threads(sx, hd)?,
            dev.tcd_smem(sx, hd)?,
        );
        if opts.tc_attention && kv_tmap::needs_maps(&dev, sx, hd)? {
            kv_tmap::set_maps(&dev, &b.kv, &b.kv, hd)?;
        }
        let model = Model {
            dev,
            cfg: c.clone(),
            dt,
            w,
            b,
            max_tokens: tm,
            max_seqs: sm,
            max_pages_per_seq,
            total_pages,
            sms,
            meta,
            stager,
            graphs,
            probe: None,
            tc_attention: opts.tc_attention,
            ffn_epilogue: fused_ffn,
            tc_rows,
            tc_threads,
            tc_smem,
            tcd_threads,
            tcd_smem,
        };
        Ok(Engine {
            model,
            seed: opts.seed,
            runs: 0,
            trace: false,
            gemm_tune: opts.gemm_tune.then(GemmTuneSummary::default),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.model.cfg
    }
    pub fn dtype(&self) -> DType {
        self.model.dt
    }
    pub fn device_name(&self) -> &str {
        &self.model.dev.name
    }
    /// Tokens the KV cache holds.
    pub fn kv_capacity_tokens(&self) -> usize {
        self.model.total_pages * PAGE_SIZE
    }
    /// (captured, replayed) decode graphs since the engine was created.
    pub fn graph_counts(&self) -> (usize, usize) {
        self.model
            .graphs
            .as_ref()
            .map_or((0, 0), |g| (g.captures, g.replays))
    }
    pub fn nvrtc_ms(&self) -> f64 {
        self.model.dev.nvrtc_ms
    }
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    /// Run each GEMM of the forward (layer 0's weights, the LM head) once at every row count in
    /// `rows`, on scratch activations; returns the seconds it took. cuBLAS pays 2–40 ms of host time
    /// the first time a process uses a GEMM shape; decode iterations use every row count from the
    /// batch size down to 1, so a first run paid ~0.4 s of it (6 % of a 6.4 s window) without this
    /// (`engine-run --trace`, docs/performance.md). Callers warm 1..=max_batch_size once per engine.
    /// With `EngineOptions::gemm_tune` each layer GEMM is tuned at each row count instead (the
    /// first tuning of a shape wins; `gemm_tune` holds the totals).
    pub fn warm_gemm_shapes(&mut self, rows: impl IntoIterator<Item = usize>) -> Result<f64> {
        let m = &mut self.model;
        let l = gemms::layer_gemms(&m.cfg, &m.b, &m.w.layers[0], m.ffn_epilogue);
        let head = gemms::lm_head_gemm(&m.cfg, &m.b, &m.w);
        let t0 = Instant::now();
        for r in rows {
            let r = r.min(m.max_tokens);
            for g in [l.qkv, l.o, l.up, l.down] {
                match &mut self.gemm_tune {
                    Some(sum) if !m.dev.gemm_tuned(g.shape(m.dt, r)) => {
                        let t = m.dev.tune_gemm(g.shape(m.dt, r), g.o)?;
                        sum.shapes += 1;
                        sum.lt_shapes += t.lt_chosen as usize;
                        sum.gemm_ex_ms += t.untuned_ms;
                        sum.tuned_ms += t.chosen_ms;
                    }
                    _ => g.run(&m.dev, m.dt, r)?,
                }
            }
            if r <= m.max_seqs {
                head.run(&m.dev, m.dt, r)?;
            }
        }
        m.dev.sync()?;
        Ok(t0.elapsed().as_secs_f64())
    }

    /// One grid point with random prompt tokens.
    pub fn run(&mut self, spec: &RunSpec) -> Result<RunStats> {
        self.runs += 1;
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ (self.runs << 32));
        let vocab = self.model.cfg.vocab as u32;
        let reqs: Vec<Request> = (0..spec.requests)
            .map(|_| Request {
                prompt: (0..spec.input_tokens)
                    .map(|_| rng.random_range(0..vocab))
                    .collect(),
                output_tokens: spec.output_tokens,
            })
            .collect();
        let limits = Limits {
            max_batch_size: spec.max_batch_size,
            max_num_tokens: spec.max_num_tokens,
        };
        Ok(self.run_requests(&reqs, limits, false)?.stats)
    }

    /// Run explicit requests to completion.
    pub fn run_requests(
        &mut self,
        reqs: &[Request],
        limits: Limits,
        capture_logits: bool,
    ) -> Result<RunOutput> {
        let m = &mut self.model;
        let c = m.cfg.clone();
        if limits.max_batch_size > m.max_seqs || limits.max_num_tokens > m.max_tokens {
            bail!("limits {limits:?} exceed the engine capacity (max_batch_size {}, max_num_tokens {}); create the engine with larger EngineOptions", m.max_seqs, m.max_tokens);
        }
        for (i, r) in reqs.iter().enumerate() {
            let len = r.prompt.len() + r.output_tokens;
            if len > c.max_positions {
                bail!("request {i}: input_tokens + output_tokens = {len} exceeds {}'s max positions {}", c.name, c.max_positions);
            }
            if let Some(t) = r.prompt.iter().find(|&&t| t as usize >= c.vocab) {
                bail!(
                    "request {i}: token id {t} outside the vocabulary ({})",
                    c.vocab
                );
            }
        }
        let lens: Vec<ReqLen> = reqs
            .iter()
            .map(|r| ReqLen {
                input_tokens: r.prompt.len(),
                output_tokens: r.output_tokens,
            })
            .collect();
        let mut sched = Scheduler::new(lens, limits, m.total_pages)?;
        let mut out_base = Vec::with_capacity(reqs.len());
        let mut total = 0usize;
        for r in reqs {
            out_base.push(total);
            total += r.output_tokens;
        }
        let out = m.dev.alloc(total * 4)?;
        // Graphs bake in `out`'s address: start each run with an empty cache.
        if let Some(g) = m.graphs.as_mut() {
            g.clear();
        }
        let prompt = |r: usize, i: usize| reqs[r].prompt[i] as i32;
        let mut logits: Option<Vec<Vec<Vec<f32>>>> = capture_logits.then(|| {
            reqs.iter()
                .map(|r| Vec::with_capacity(r.output_tokens))
                .collect()
        });
        m.dev.sync()?;
        let t0 = Instant::now();
        let mut iterations = Vec::new();
        let mut marks = Vec::new(); // (start event, end event, host µs) per iteration when tracing
        loop {
            let h0 = Instant::now();
            let Some(it) = sched.next_iteration() else {
                break;
            };
            m.set_block_tables(&it)?;
            let step = m.plan(&it, &prompt, &out_base);
            let start = if self.trace {
                Some(m.dev.recorded_event()?)
            } else {
                None
            };
            m.forward(&step, out.dptr())?;
            if let Some(start) = start {
                marks.push((
                    start,
                    m.dev.recorded_event()?,
                    h0.elapsed().as_secs_f64() * 1e6,
                ));
            }
            iterations.push(IterationStats {
                prefill_tokens: it.prefill_tokens(),
                decode_tokens: it.decode.len(),
            });
            if let Some(lg) = logits.as_mut() {
                let ns = step.sample_rows.len();
                let raw: Vec<u16> = m.dev.download(m.b.logits.slice(0, ns * c.vocab)?)?;
                let reqs_in_order = it
                    .prefill
                    .iter()
                    .map(|p| p.req)
                    .chain(it.decode.iter().map(|d| d.req));
                for (k, r) in reqs_in_order.enumerate() {
                    lg[r].push(
                        raw[k * c.vocab..(k + 1) * c.vocab]
                            .iter()
                            .map(|&b| m.dt.decode(b))
                            .collect(),
                    );
                }
            }
        }
        m.dev.sync().context("running the batch")?;
        let wall_s = t0.elapsed().as_secs_f64();
        let mut trace = Vec::with_capacity(marks.len());
        for (i, (start, end, host_us)) in marks.iter().enumerate() {
            let gap_ms = if i == 0 {
                0.0
            } else {
                device::elapsed_ms(&marks[i - 1].1, start)?
            };
            trace.push(IterationTrace {
                host_us: *host_us,
                busy_ms: device::elapsed_ms(start, end)?,
                gap_ms,
            });
        }
        let ids: Vec<i32> = m.dev.download(out.slice(0, total)?)?;
        let tokens = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ids[out_base[i]..out_base[i] + r.output_tokens]
                    .iter()
                    .map(|&x| x as u32)
                    .collect()
            })
            .collect();
        Ok(RunOutput {
            stats: RunStats {
                generated_tokens: total,
                wall_s,
                iterations,
                trace,
            },
            tokens,
            logits,
        })
    }
}

#[cfg(test)]
mod tests {
    /// The tuning line reports the change of the summed time (synthetic totals: 10 ms -> 9 ms).
    #[test]
    fn gemm_tune_line_gives_the_change() {
        let t = super::GemmTuneSummary {
            shapes: 4,
            lt_shapes: 2,
            gemm_ex_ms: 10.0,
            tuned_ms: 9.0,
        };
        let l = t.line("1..=8", 1.25);
        assert_eq!(l, "GEMM shapes of 1..=8 rows tuned in 1.2 s: 2 of 4 on cuBLASLt; summed per-launch time 10.000 -> 9.000 ms (-10.0 %)");
    }
}
