//! The forward pass of one in-flight-batching iteration: prefill tokens of newly admitted requests
//! and one decode token per running request in a single batch, through every layer, then the LM
//! head and greedy argmax for one token per request. All work is queued on one stream with one
//! metadata upload per iteration: no host synchronisation per layer, sampled ids stay on the GPU
//! (they feed the next iteration's embedding directly). The launches themselves are in
//! `forward_launch.rs`.

use super::attn_item::AttnItem;
use super::attn_shapes::prefill_chunks;
pub use super::attn_shapes::{prefill_bq, SCALAR_ROWS};
use super::device::{DType, DevBuf, DevPtr, DevSlice, Device};
use super::graphs::{GraphCache, GraphKey, GraphUse, Stager};
use super::scheduler::Iteration;
use super::weights::Weights;
use crate::llm::{alibi_slopes, LlmConfig, Norm, Positional, RopeScaling};
use anyhow::{bail, Result};

/// Head dimensions with a compiled attention kernel.
pub const HEAD_DIMS: [usize; 7] = [16, 32, 64, 80, 96, 128, 256];
/// Most query heads per KV head the attention kernels take (rows of one scalar prefill block and of
/// the tensor-core decode tile).
pub const MAX_GROUP: usize = 16;
/// Split-K partial slots for decode attention.
pub const MAX_PARTS: usize = 2048;

/// Device buffers sized once for the engine's token and sequence capacity.
pub struct Buffers {
    pub resid: DevBuf,
    pub xn: DevBuf,
    pub qkv: DevBuf,
    pub q: DevBuf,
    pub attn: DevBuf,
    pub tmp: DevBuf,
    pub up: DevBuf,
    pub act: DevBuf,
    pub xs: DevBuf,
    pub logits: DevBuf,
    pub meta: DevBuf,
    pub next_tok: DevBuf,
    pub part_o: DevBuf,
    pub part_ml: DevBuf,
    /// `positional_table`: RoPE inverse frequencies or ALiBi slopes.
    pub inv_freq: DevBuf,
    pub block_table: DevBuf,
    pub kv: DevBuf,
}

/// Offsets (in ints) of the per-iteration metadata arrays in `Buffers::meta`. Fixed, so that the
/// pointers a captured graph bakes in hold for every iteration of its shape.
#[derive(Clone, Copy, Debug)]
pub struct MetaLayout {
    pub src: usize,
    pub pos: usize,
    pub slot: usize,
    pub pitems: usize,
    pub ditems: usize,
    pub comb: usize,
    pub srows: usize,
    pub sdst: usize,
    pub sslot: usize,
    pub total: usize,
}

impl MetaLayout {
    /// For at most `tokens` tokens and `seqs` sequences per iteration.
    pub fn new(tokens: usize, seqs: usize) -> MetaLayout {
        let src = 0;
        let pos = src + tokens;
        let slot = pos + tokens;
        let pitems = slot + tokens;
        let ditems = pitems + AttnItem::INTS * tokens;
        let comb = ditems + AttnItem::INTS * (MAX_PARTS + seqs);
        let srows = comb + 3 * seqs;
        let sdst = srows + seqs;
        let sslot = sdst + seqs;
        MetaLayout {
            src,
            pos,
            slot,
            pitems,
            ditems,
            comb,
            srows,
            sdst,
            sslot,
            total: sslot + seqs,
        }
    }
}

/// Per-iteration integer metadata (built on the host, uploaded once).
#[derive(Default, Debug)]
pub struct StepInput {
    pub tok_src: Vec<i32>,
    pub tok_pos: Vec<i32>,
    pub tok_slot: Vec<i32>,
    pub prefill_items: Vec<AttnItem>,
    pub decode_items: Vec<AttnItem>,
    pub comb: Vec<[i32; 3]>,
    pub sample_rows: Vec<i32>,
    pub sample_dst: Vec<i32>,
    pub sample_slot: Vec<i32>,
}

pub struct Model {
    pub dev: Device,
    pub cfg: LlmConfig,
    pub dt: DType,
    pub w: Weights,
    pub b: Buffers,
    pub max_tokens: usize,
    pub max_seqs: usize,
    pub max_pages_per_seq: usize,
    pub total_pages: usize,
    pub sms: usize,
    /// Fixed offsets of the metadata arrays in `b.meta`.
    pub meta: MetaLayout,
    /// Pinned staging ring for metadata uploads.
    pub stager: Stager,
    /// Decode graphs (None: launch every kernel directly).
    pub graphs: Option<GraphCache>,
    /// Debug: record (layer, rms, max |x|, all finite) of the residual stream entering every layer
    /// and of the final normed hidden state (synchronises per layer; selftest only).
    pub probe: Option<Vec<(usize, f64, f64, bool)>>,
    /// Attention on the tensor-core kernels (prefill in items of `tc_rows` rows, decode in one
    /// 16-row tile per item), else the scalar ones.
    pub tc_attention: bool,
    /// The FFN's up projection applies its bias and activation in the GEMM's epilogue where that
    /// is exact (`gemms::ffn_epilogue`: OPT), with no `ffn_act` launch; off: `ffn_act` after a
    /// plain GEMM (A/B checks). Set from the model at construction; no effect on other models.
    pub ffn_epilogue: bool,
    /// Rows, threads and dynamic shared memory of a tensor-core prefill attention block, and the
    /// decode block's threads and shared memory, as the kernels were compiled.
    pub tc_rows: usize,
    pub tc_threads: usize,
    pub tc_smem: usize,
    pub tcd_threads: usize,
    pub tcd_smem: usize,
}

/// The per-model float table the kernels read for positions: RoPE inverse frequencies (qkv_post),
/// ALiBi slopes rounded to bf16 as HF's `build_alibi_tensor` does (attention), nothing for learned
/// positions (the embedding adds them).
pub fn positional_table(cfg: &LlmConfig) -> Vec<f32> {
    match cfg.positional {
        Positional::Rope { .. } => inv_freq(cfg),
        Positional::Alibi => alibi_slopes(cfg.heads)
            .iter()
            .map(|&s| half::bf16::from_f64(s).to_f32())
            .collect(),
        Positional::Learned { .. } => Vec::new(),
    }
}

/// RoPE inverse frequencies with the config's θ and scaling (HF semantics).
pub fn inv_freq(cfg: &LlmConfig) -> Vec<f32> {
    let hd = cfg.head_dim;
    let (theta, scaling) = match cfg.positional {
        Positional::Rope { theta, scaling } => (theta, scaling),
        _ => return vec![0.0; hd / 2],
    };
    (0..hd / 2)
        .map(|i| {
            let f = 1.0 / theta.powf((2 * i) as f64 / hd as f64);
            let f = match scaling {
                None => f,
                Some(RopeScaling::Linear { factor }) => f / factor,
                Some(RopeScaling::Llama3 {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_positions,
                }) => {
                    let orig = original_max_positions as f64;
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let (low_wl, high_wl) = (orig / low_freq_factor, orig / high_freq_factor);
                    if wavelen < high_wl {
                        f
                    } else if wavelen > low_wl {
                        f / factor
                    } else {
                        let s = (orig / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - s) * f / factor + s * f
                    }
                }
            };
            f as f32
        })
        .collect()
}

impl Model {
    /// Rows per scalar prefill attention block: BQ queries × group size.
    pub fn prefill_rows(&self) -> usize {
        let g = self.cfg.group_size();
        prefill_bq(g, SCALAR_ROWS) * g
    }

    /// Check the shapes and switches the kernels support (all five architectures of the catalog).
    pub fn check_supported(cfg: &LlmConfig) -> Result<()> {
        if !HEAD_DIMS.contains(&cfg.head_dim) {
            bail!(
                "{}: head_dim {} has no attention kernel (supported: {HEAD_DIMS:?})",
                cfg.name,
                cfg.head_dim
            );
        }
        if cfg.group_size() > MAX_GROUP {
            bail!(
                "{}: {} query heads per KV head; the attention kernels support at most {MAX_GROUP}",
                cfg.name,
                cfg.group_size()
            );
        }
        if cfg.post_norms && cfg.norm == Norm::LayerNorm {
            bail!(
                "{}: post-attention / post-FFN norms are supported for RMSNorm only",
                cfg.name
            );
        }
        if matches!(cfg.positional, Positional::Learned { .. }) && cfg.position_rows() == 0 {
            bail!(
                "{}: learned positions need max_position_embeddings > 0",
                cfg.name
            );
        }
        Ok(())
    }

    /// Turn a scheduler iteration into kernel metadata. `prompt(req, i)` gives prompt token i of
    /// request req; `out_base[req]` is where its output tokens start in the output buffer.
    pub fn plan(
        &self,
        it: &Iteration,
        prompt: &dyn Fn(usize, usize) -> i32,
        out_base: &[usize],
    ) -> StepInput {
        let mut s = StepInput::default();
        let bq = prefill_bq(
            self.cfg.group_size(),
            if self.tc_attention {
                self.tc_rows
            } else {
                SCALAR_ROWS
            },
        );
        for p in &it.prefill {
            let t0 = s.tok_src.len();
            for i in 0..p.n {
                s.tok_src.push(prompt(p.req, i));
                s.tok_pos.push(i as i32);
                s.tok_slot.push(p.slot as i32);
            }
            for (i, q) in prefill_chunks(p.n, bq) {
                s.prefill_items.push(AttnItem {
                    q_tok: (t0 + i) as i32,
                    q_cnt: q as i32,
                    slot: p.slot as i32,
                    key_begin: 0,
                    key_end: i32::MAX,
                    part: -1,
                });
            }
            s.sample_rows.push((t0 + p.n - 1) as i32);
            s.sample_dst.push(out_base[p.req] as i32);
            s.sample_slot.push(p.slot as i32);
        }
        longest_first(&mut s.prefill_items, &s.tok_pos);
        let nd = it.decode.len();
        let blocks = nd * self.cfg.kv_heads;
        let mut parts = 0usize;
        for d in &it.decode {
            let t = s.tok_src.len() as i32;
            s.tok_src.push(-(d.slot as i32) - 1);
            s.tok_pos.push(d.pos as i32);
            s.tok_slot.push(d.slot as i32);
            let ctx = d.pos + 1;
            let tiles = ctx.div_ceil(32);
            // Small batches (MHA above all: one warp per block) are latency-bound: split the context
            // until there are ~8 blocks per SM.
            let target = 8 * self.sms;
            let mut splits = if blocks >= target {
                1
            } else {
                target.div_ceil(blocks.max(1)).min(tiles).min(32)
            };
            if parts + splits > MAX_PARTS {
                splits = 1;
            }
            let chunk = tiles.div_ceil(splits) * 32;
            let splits = ctx.div_ceil(chunk);
            if splits == 1 {
                s.decode_items.push(AttnItem {
                    q_tok: t,
                    q_cnt: 1,
                    slot: d.slot as i32,
                    key_begin: 0,
                    key_end: ctx as i32,
                    part: -1,
                });
            } else {
                s.comb.push([t, parts as i32, splits as i32]);
                for k in 0..splits {
                    let (kb, ke) = (k * chunk, ((k + 1) * chunk).min(ctx));
                    s.decode_items.push(AttnItem {
                        q_tok: t,
                        q_cnt: 1,
                        slot: d.slot as i32,
                        key_begin: kb as i32,
                        key_end: ke as i32,
                        part: (parts + k) as i32,
                    });
                }
                parts += splits;
            }
            s.sample_rows.push(t);
            s.sample_dst.push((out_base[d.req] + d.step) as i32);
            s.sample_slot.push(d.slot as i32);
        }
        s
    }

    /// Write the block-table rows of newly admitted requests.
    pub fn set_block_tables(&mut self, it: &Iteration) -> Result<()> {
        let mut rows = Vec::with_capacity(it.prefill.len());
        for p in &it.prefill {
            let row: Vec<i32> = p.pages.iter().map(|&x| x as i32).collect();
            if row.len() > self.max_pages_per_seq {
                bail!(
                    "request {} needs {} pages, block table holds {}",
                    p.req,
                    row.len(),
                    self.max_pages_per_seq
                );
            }
            rows.push((p.slot * self.max_pages_per_seq, row));
        }
        // One staged upload per chunk of rows that fits a staging slot.
        let cap = self.stager.capacity();
        let mut parts: Vec<(DevSlice<'_, i32>, &[i32])> = Vec::new();
        let mut used = 0;
        for (at, r) in &rows {
            if used + r.len() > cap {
                self.stager.upload(&self.dev.stream, &parts)?;
                parts.clear();
                used = 0;
            }
            parts.push((self.b.block_table.slice(*at, r.len())?, r.as_slice()));
            used += r.len();
        }
        self.stager.upload(&self.dev.stream, &parts)
    }

    /// Queue the forward pass of one iteration; sampled ids go to `out_tok[sample_dst]`. Decode-only
    /// iterations go through the graph cache when there is one (captured on a shape's second
    /// sighting, replayed after).
    pub fn forward(&mut self, s: &StepInput, out_tok: DevPtr<i32>) -> Result<()> {
        let t = s.tok_src.len();
        let ns = s.sample_rows.len();
        if t == 0 {
            return Ok(());
        }
        if t > self.max_tokens || ns > self.max_seqs {
            bail!(
                "iteration of {t} tokens / {ns} sequences exceeds the engine capacity {} / {}",
                self.max_tokens,
                self.max_seqs
            );
        }
        let l = &self.meta;
        let (pitems, ditems) = (
            AttnItem::flatten(&s.prefill_items),
            AttnItem::flatten(&s.decode_items),
        );
        let comb: Vec<i32> = s.comb.iter().flatten().copied().collect();
        let regions: [(usize, usize, &[i32]); 9] = [
            (l.src, self.max_tokens, &s.tok_src),
            (l.pos, self.max_tokens, &s.tok_pos),
            (l.slot, self.max_tokens, &s.tok_slot),
            (l.pitems, l.ditems - l.pitems, &pitems),
            (l.ditems, l.comb - l.ditems, &ditems),
            (l.comb, l.srows - l.comb, &comb),
            (l.srows, self.max_seqs, &s.sample_rows),
            (l.sdst, self.max_seqs, &s.sample_dst),
            (l.sslot, self.max_seqs, &s.sample_slot),
        ];
        let mut parts = Vec::with_capacity(9);
        for (off, cap, v) in regions {
            if v.len() > cap {
                bail!(
                    "iteration metadata: {} entries exceed the region of {cap}",
                    v.len()
                );
            }
            parts.push((self.b.meta.slice(off, cap)?, v));
        }
        self.stager.upload(&self.dev.stream, &parts)?;
        let key = GraphKey {
            tokens: t,
            samples: ns,
            decode_items: s.decode_items.len(),
            combines: s.comb.len(),
        };
        let graphable = s.prefill_items.is_empty() && self.probe.is_none();
        let mode = match self.graphs.as_mut() {
            Some(g) if graphable => g.lookup(key),
            _ => GraphUse::Direct,
        };
        match mode {
            GraphUse::Direct => self.launch_all(s, out_tok),
            GraphUse::Replay => self.graphs.as_mut().expect("graph cache").replay(key),
            GraphUse::Capture => {
                GraphCache::begin_capture(&self.dev.stream)?;
                if let Err(e) = self.launch_all(s, out_tok) {
                    GraphCache::abort_capture(&self.dev.stream);
                    return Err(e);
                }
                let stream = self.dev.stream.clone();
                self.graphs
                    .as_mut()
                    .expect("graph cache")
                    .finish_capture(&stream, key)
            }
        }
    }
}

/// Order prefill items by their key range, longest first (causal: an item's keys end at its last
/// query's position). Blocks start in item order, so the longest no longer form the launch's tail
/// (n = 4096: 64 key tiles for the last items against 1 for the first).
pub fn longest_first(items: &mut [AttnItem], tok_pos: &[i32]) {
    items.sort_by_key(|x| std::cmp::Reverse(tok_pos[(x.q_tok + x.q_cnt - 1) as usize]));
}
