//! The forward pass of one in-flight-batching iteration: prefill tokens of newly admitted requests
//! and one decode token per running request in a single batch, through every layer, then the LM
//! head and greedy argmax for one token per request. All work is queued on one stream with one
//! metadata upload per iteration: no host synchronisation per layer, sampled ids stay on the GPU
//! (they feed the next iteration's embedding directly).

use super::attn_item::AttnItem;
pub use super::attn_shapes::{prefill_bq, SCALAR_ROWS};
use super::device::{DType, DevBuf, DevPtr, DevSlice, Device};
use super::gemms::{layer_gemms, lm_head_gemm};
use super::graphs::{GraphCache, GraphKey, GraphUse, Stager};
use super::launches::{
    Argmax, Attention, AttnCombine, Embed, FfnAct, GatherRows, Half, NormResidual, QkvPost, Softcap,
};
use super::scheduler::{Iteration, PAGE_SIZE};
use super::weights::{NormWeights, Weights};
use crate::llm::{alibi_slopes, Ffn, LlmConfig, Norm, Positional, RopeScaling};
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
    /// Rows, threads and dynamic shared memory of a tensor-core prefill attention block, and the
    /// decode block's shared memory, as the kernels were compiled.
    pub tc_rows: usize,
    pub tc_threads: usize,
    pub tc_smem: usize,
    pub tcd_smem: usize,
}

fn stats(v: &[f32]) -> (f64, f64, bool) {
    let fin = v.iter().all(|x| x.is_finite());
    let ss: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let mx = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    ((ss / v.len().max(1) as f64).sqrt(), mx, fin)
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

/// What a norm adds to the residual stream first: a projection's output (0: nothing), that
/// projection's bias and, on Gemma-2, the norm applied to it before the add (0: none).
#[derive(Clone, Copy, Default)]
struct Branch {
    add: DevPtr<Half>,
    bias: DevPtr<Half>,
    post: DevPtr<Half>,
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
            for i in (0..p.n).step_by(bq) {
                s.prefill_items.push(AttnItem {
                    q_tok: (t0 + i) as i32,
                    q_cnt: bq.min(p.n - i) as i32,
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

    /// Queue every kernel of one iteration whose metadata is already on the device.
    fn launch_all(&mut self, s: &StepInput, out_tok: DevPtr<i32>) -> Result<()> {
        let c = self.cfg.clone();
        let t = s.tok_src.len();
        let ns = s.sample_rows.len();
        let meta = &self.b.meta;
        let at = |o: usize| meta.ptr() + (o * 4) as u64;
        let l = &self.meta;
        // The metadata regions (MetaLayout): ints, and the attention items.
        let ints = |o: usize| DevPtr::<i32>::from_addr(at(o));
        let (src, pos, slot, comb) = (ints(l.src), ints(l.pos), ints(l.slot), ints(l.comb));
        let pitems = DevPtr::<AttnItem>::from_addr(at(l.pitems));
        let ditems = DevPtr::<AttnItem>::from_addr(at(l.ditems));
        let (srows, sdst, sslot) = (ints(l.srows), ints(l.sdst), ints(l.sslot));

        let sx = self.dt.suffix();
        let (h, hd) = (c.hidden, c.head_dim);
        let eps = c.norm_eps as f32;
        let nmode = match c.norm {
            Norm::RmsNorm => 0,
            Norm::RmsNormPlusOne => 1,
            Norm::LayerNorm => 2,
        };
        let b = &self.b;
        let (resid, xn, tmp) = (b.resid.dptr(), b.xn.dptr(), b.tmp.dptr());
        let page_bytes = (self.total_pages * c.kv_heads * PAGE_SIZE * hd * 2) as u64;
        let scale = c.attn_scale() as f32;
        let attn_softcap = c.gemma.map_or(0.0, |g| g.attn_softcap);
        let alibi = if c.positional == Positional::Alibi {
            b.inv_freq.dptr()
        } else {
            DevPtr::null()
        };
        let rope = matches!(c.positional, Positional::Rope { .. }) as i32;
        let act = match c.ffn {
            Ffn::SwiGlu => 0,
            Ffn::GeGluTanh => 1,
            Ffn::Relu => 2,
            Ffn::Gelu => 3,
        };
        let (prow, drow) = (self.prefill_rows(), c.group_size());
        let nb = |o: &Option<DevBuf>| o.as_ref().map_or(DevPtr::null(), |x| x.dptr());
        let post = |o: &Option<NormWeights>| o.as_ref().map_or(DevPtr::null(), |x| x.0.dptr());
        let dev = &mut self.dev;
        let w = &self.w;
        let tt = t as u32;
        launch_embed(dev, &c, w, sx, tt, resid, src, pos, b.next_tok.dptr())?;
        let norm = |dev: &mut Device, br: Branch, nw: &NormWeights| {
            let a = NormResidual {
                resid,
                add: br.add,
                add_bias: br.bias,
                add_post_w: br.post,
                w: nw.0.dptr(),
                b: nb(&nw.1),
                out: xn,
                cols: h as i32,
                eps,
                mode: nmode,
            };
            // SAFETY: resid and xn hold max_tokens rows of h (Buffers), the add branch (tmp) as
            // many, the norm weights h each; one block per token (tt ≤ max_tokens).
            unsafe {
                a.launch(
                    dev,
                    &format!("norm_residual_{sx}"),
                    (tt, 1, 1),
                    256,
                    (h * 4) as u32,
                )
            }
        };
        let mut probe = self.probe.take();
        let dt = self.dt;
        let snap = |dev: &mut Device,
                    l: usize,
                    buf: &DevBuf,
                    probe: &mut Option<Vec<(usize, f64, f64, bool)>>|
         -> Result<()> {
            if let Some(p) = probe.as_mut() {
                let raw: Vec<u16> = dev.download(buf.slice(0, t * h)?)?;
                let v: Vec<f32> = raw.iter().map(|&x| dt.decode(x)).collect();
                let (r, m, f) = stats(&v);
                p.push((l, r, m, f));
            }
            Ok(())
        };
        // The FFN output of layer l is added (with its bias and post-norm) by layer l+1's first norm.
        let mut pending = Branch::default();
        for (l, lw) in w.layers.iter().enumerate() {
            norm(dev, pending, &lw.norm1)?;
            snap(dev, l, &b.resid, &mut probe)?;
            let gm = layer_gemms(&c, b, lw);
            gm.qkv.run(dev, self.dt, t)?;
            // Layer l's K and V caches: the whole allocation holds K0, V0, K1, V1, … of page_bytes.
            let kc = DevPtr::<Half>::from_addr(b.kv.ptr() + (2 * l) as u64 * page_bytes);
            let vc = DevPtr::<Half>::from_addr(kc.addr() + page_bytes);
            let qp = QkvPost {
                qkv: b.qkv.dptr(),
                bias: nb(&lw.qkv_b),
                q_out: b.q.dptr(),
                kc,
                vc,
                tok_pos: pos,
                tok_slot: slot,
                block_table: b.block_table.dptr(),
                max_pages: self.max_pages_per_seq as i32,
                inv_freq: b.inv_freq.dptr(),
                heads: c.heads as i32,
                kv_heads: c.kv_heads as i32,
                hd: hd as i32,
                page_size: PAGE_SIZE as i32,
                rope,
            };
            // SAFETY: qkv and q hold max_tokens rows (Buffers), pos / slot the iteration's tokens
            // (MetaLayout), every slot's block-table row max_pages pages of this layer's caches.
            unsafe { qp.launch(dev, &format!("qkv_post_{sx}"), (tt, 1, 1), 128, 0)? };
            let window = c.sliding_window(l).map_or(0, |x| x as i32);
            // Every attention kernel takes these (prefill's tensor-core kernel without the partials).
            let at_args = |items: DevPtr<AttnItem>| Attention {
                q: b.q.dptr(),
                out: b.attn.dptr(),
                kc,
                vc,
                items,
                tok_pos: pos,
                block_table: b.block_table.dptr(),
                max_pages: self.max_pages_per_seq as i32,
                heads: c.heads as i32,
                kv_heads: c.kv_heads as i32,
                scale,
                softcap: attn_softcap,
                window,
                alibi,
                part_o: b.part_o.dptr(),
                part_ml: b.part_ml.dptr(),
            };
            let attn = |dev: &mut Device, items: DevPtr<AttnItem>, n: usize, rows: usize| {
                let smem = (32 * (hd + 2) + 32 * hd + rows * hd) * 2 + rows * 32 * 4;
                // SAFETY: n items in the region at `items` (MetaLayout), each within the
                // iteration's tokens and its slot's pages; partials sized for MAX_PARTS.
                unsafe {
                    at_args(items).launch(
                        dev,
                        &format!("attention_{sx}_{hd}"),
                        (n as u32, c.kv_heads as u32, 1),
                        (32 * rows) as u32,
                        smem as u32,
                    )
                }
            };
            if self.tc_attention {
                let grid = (s.prefill_items.len() as u32, c.kv_heads as u32, 1);
                // SAFETY: as the scalar kernel's (above), with the compiled block shape.
                unsafe {
                    at_args(pitems).prefill().launch(
                        dev,
                        &format!("attention_tc_{sx}_{hd}"),
                        grid,
                        self.tc_threads as u32,
                        self.tc_smem as u32,
                    )?
                };
            } else {
                attn(dev, pitems, s.prefill_items.len(), prow)?;
            }
            if self.tc_attention {
                let grid = (s.decode_items.len() as u32, c.kv_heads as u32, 1);
                // SAFETY: as the scalar kernel's (above), with the compiled shared memory.
                unsafe {
                    at_args(ditems).launch(
                        dev,
                        &format!("attention_tcd_{sx}_{hd}"),
                        grid,
                        128,
                        self.tcd_smem as u32,
                    )?
                };
            } else {
                attn(dev, ditems, s.decode_items.len(), drow)?;
            }
            if !s.comb.is_empty() {
                let a = AttnCombine {
                    out: b.attn.dptr(),
                    comb,
                    part_o: b.part_o.dptr(),
                    part_ml: b.part_ml.dptr(),
                    heads: c.heads as i32,
                    hd: hd as i32,
                };
                // SAFETY: s.comb's triples in the comb region name parts the decode items wrote.
                unsafe {
                    a.launch(
                        dev,
                        &format!("attn_combine_{sx}"),
                        (s.comb.len() as u32, c.heads as u32, 1),
                        hd.div_ceil(32) as u32 * 32,
                        0,
                    )?
                };
            }
            gm.o.run(dev, self.dt, t)?;
            norm(
                dev,
                Branch {
                    add: tmp,
                    bias: nb(&lw.o_b),
                    post: post(&lw.post_attn),
                },
                &lw.norm2,
            )?;
            gm.up.run(dev, self.dt, t)?;
            let a = FfnAct {
                out: b.act.dptr(),
                gate_up: b.up.dptr(),
                bias: nb(&lw.up_b),
                rows: t as i64,
                ffn: c.ffn_dim as i32,
                act,
            };
            // SAFETY: up holds max_tokens rows of up_rows, act of ffn_dim (Buffers); t ≤ max_tokens.
            unsafe {
                a.launch(
                    dev,
                    &format!("ffn_act_{sx}"),
                    super::device::ffn_act_grid(t, c.ffn_dim, 256),
                    256,
                    0,
                )?
            };
            gm.down.run(dev, self.dt, t)?;
            pending = Branch {
                add: tmp,
                bias: nb(&lw.down_b),
                post: post(&lw.post_ffn),
            };
        }
        norm(dev, pending, &w.final_norm)?;
        snap(dev, c.layers, &b.xn, &mut probe)?;
        self.probe = probe;
        let g = GatherRows {
            out: b.xs.dptr(),
            src: xn,
            rows: srows,
            cols: h as i32,
        };
        // SAFETY: xs holds max_seqs rows of h; srows names ns ≤ max_seqs rows of xn's t.
        unsafe { g.launch(dev, &format!("gather_rows_{sx}"), (ns as u32, 1, 1), 256, 0)? };
        lm_head_gemm(&c, b, w).run(dev, self.dt, ns)?;
        if let Some(cap) = c.gemma.map(|g| g.final_softcap).filter(|&x| x > 0.0) {
            let n = ns * c.vocab;
            let sc = Softcap {
                x: b.logits.dptr(),
                n: n as i64,
                cap,
            };
            let grid = super::device::grid_for(n, 256, dev.sms);
            // SAFETY: logits holds max_seqs rows of vocab; ns ≤ max_seqs.
            unsafe { sc.launch(dev, &format!("softcap_{sx}"), grid, 256, 0)? };
        }
        let am = Argmax {
            logits: b.logits.dptr(),
            vocab: c.vocab as i32,
            out_tok,
            dst: sdst,
            next_tok: b.next_tok.dptr(),
            slot: sslot,
        };
        // SAFETY: ns rows of logits; sdst indexes the caller's out_tok (forward's contract),
        // sslot next_tok's max_seqs slots.
        unsafe { am.launch(dev, &format!("argmax_{sx}"), (ns as u32, 1, 1), 1024, 0)? };
        Ok(())
    }
}

/// Order prefill items by their key range, longest first (causal: an item's keys end at its last
/// query's position). Blocks start in item order, so the longest no longer form the launch's tail
/// (n = 4096: 64 key tiles for the last items against 1 for the first).
pub fn longest_first(items: &mut [AttnItem], tok_pos: &[i32]) {
    items.sort_by_key(|x| std::cmp::Reverse(tok_pos[(x.q_tok + x.q_cnt - 1) as usize]));
}

/// Token embeddings into the residual stream: scaled by sqrt(hidden) on Gemma, plus the learned
/// position row (`tok_pos + offset`) on OPT.
#[allow(clippy::too_many_arguments)]
fn launch_embed(
    dev: &mut Device,
    c: &LlmConfig,
    w: &Weights,
    sx: &str,
    tokens: u32,
    out: DevPtr<Half>,
    src: DevPtr<i32>,
    tok_pos: DevPtr<i32>,
    next_tok: DevPtr<i32>,
) -> Result<()> {
    let scale = if c.embed_scale {
        (c.hidden as f32).sqrt()
    } else {
        1.0
    };
    let (table, offset) = match (c.positional, &w.positions) {
        (Positional::Learned { offset }, Some(p)) => (p.dptr(), offset as i32),
        _ => (DevPtr::null(), 0),
    };
    let a = Embed {
        out,
        table: w.embed.dptr(),
        src,
        next_tok,
        hidden: c.hidden as i32,
        scale,
        positions: table,
        tok_pos,
        pos_offset: offset,
    };
    // SAFETY: out holds max_tokens rows of hidden, src / tok_pos `tokens` entries; token ids are
    // below vocab (the embedding's rows), positions below the learned table's.
    unsafe { a.launch(dev, &format!("embed_{sx}"), (tokens, 1, 1), 256, 0) }
}
