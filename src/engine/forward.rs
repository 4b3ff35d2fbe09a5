//! The forward pass of one in-flight-batching iteration: prefill tokens of newly admitted requests
//! and one decode token per running request in a single batch, through every layer, then the LM
//! head and greedy argmax for one token per request. All work is queued on one stream with one
//! metadata upload per iteration: no host synchronisation per layer, sampled ids stay on the GPU
//! (they feed the next iteration's embedding directly).

use super::attn_item::AttnItem;
pub use super::attn_shapes::{prefill_bq, SCALAR_ROWS};
use super::device::{Arg, DType, DevBuf, Device};
use super::gemms::{layer_gemms, lm_head_gemm};
use super::graphs::{GraphCache, GraphKey, GraphUse, Stager};
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
    add: u64,
    bias: u64,
    post: u64,
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
            rows.push((
                self.b.block_table.ptr() + (p.slot * self.max_pages_per_seq * 4) as u64,
                row,
            ));
        }
        // One staged upload per chunk of rows that fits a staging slot.
        let cap = self.stager.capacity();
        let mut parts: Vec<(u64, &[i32])> = Vec::new();
        let mut used = 0;
        for (d, r) in &rows {
            if used + r.len() > cap {
                self.stager.upload(&self.dev.stream, &parts)?;
                parts.clear();
                used = 0;
            }
            parts.push((*d, r.as_slice()));
            used += r.len();
        }
        self.stager.upload(&self.dev.stream, &parts)
    }

    /// Queue the forward pass of one iteration; sampled ids go to `out_tok[sample_dst]`. Decode-only
    /// iterations go through the graph cache when there is one (captured on a shape's second
    /// sighting, replayed after).
    pub fn forward(&mut self, s: &StepInput, out_tok: u64) -> Result<()> {
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
        let base = self.b.meta.ptr();
        let mut parts = Vec::with_capacity(9);
        for (off, cap, v) in regions {
            if v.len() > cap {
                bail!(
                    "iteration metadata: {} entries exceed the region of {cap}",
                    v.len()
                );
            }
            parts.push((base + (off * 4) as u64, v));
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
    fn launch_all(&mut self, s: &StepInput, out_tok: u64) -> Result<()> {
        let c = self.cfg.clone();
        let t = s.tok_src.len();
        let ns = s.sample_rows.len();
        let at = |o: usize| self.b.meta.ptr() + (o * 4) as u64;
        let l = &self.meta;
        let (src, pos, slot, pitems, ditems, comb) = (
            at(l.src),
            at(l.pos),
            at(l.slot),
            at(l.pitems),
            at(l.ditems),
            at(l.comb),
        );
        let (srows, sdst, sslot) = (at(l.srows), at(l.sdst), at(l.sslot));

        let sx = self.dt.suffix();
        let (h, hd) = (c.hidden, c.head_dim);
        let eps = c.norm_eps as f32;
        let nmode = match c.norm {
            Norm::RmsNorm => 0,
            Norm::RmsNormPlusOne => 1,
            Norm::LayerNorm => 2,
        };
        let b = &self.b;
        let (resid, xn, tmp) = (b.resid.ptr(), b.xn.ptr(), b.tmp.ptr());
        let page_bytes = (self.total_pages * c.kv_heads * PAGE_SIZE * hd * 2) as u64;
        let scale = c.attn_scale() as f32;
        let attn_softcap = c.gemma.map_or(0.0, |g| g.attn_softcap);
        let alibi = if c.positional == Positional::Alibi {
            b.inv_freq.ptr()
        } else {
            0
        };
        let rope = matches!(c.positional, Positional::Rope { .. }) as i32;
        let act = match c.ffn {
            Ffn::SwiGlu => 0,
            Ffn::GeGluTanh => 1,
            Ffn::Relu => 2,
            Ffn::Gelu => 3,
        };
        let (prow, drow) = (self.prefill_rows(), c.group_size());
        let nb = |o: &Option<DevBuf>| o.as_ref().map_or(0, |x| x.ptr());
        let post = |o: &Option<NormWeights>| o.as_ref().map_or(0, |x| x.0.ptr());
        let dev = &mut self.dev;
        let w = &self.w;
        let tt = t as u32;
        launch_embed(dev, &c, w, sx, tt, resid, src, pos, b.next_tok.ptr())?;
        let norm = |dev: &mut Device, br: Branch, nw: &NormWeights| {
            let a = [
                Arg::P(resid),
                Arg::P(br.add),
                Arg::P(br.bias),
                Arg::P(br.post),
                Arg::P(nw.0.ptr()),
                Arg::P(nb(&nw.1)),
                Arg::P(xn),
                Arg::I(h as i32),
                Arg::F(eps),
                Arg::I(nmode),
            ];
            dev.launch(
                &format!("norm_residual_{sx}"),
                (tt, 1, 1),
                256,
                (h * 4) as u32,
                &a,
            )
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
            let kc = b.kv.ptr() + (2 * l) as u64 * page_bytes;
            let vc = kc + page_bytes;
            dev.launch(
                &format!("qkv_post_{sx}"),
                (tt, 1, 1),
                128,
                0,
                &[
                    Arg::P(b.qkv.ptr()),
                    Arg::P(nb(&lw.qkv_b)),
                    Arg::P(b.q.ptr()),
                    Arg::P(kc),
                    Arg::P(vc),
                    Arg::P(pos),
                    Arg::P(slot),
                    Arg::P(b.block_table.ptr()),
                    Arg::I(self.max_pages_per_seq as i32),
                    Arg::P(b.inv_freq.ptr()),
                    Arg::I(c.heads as i32),
                    Arg::I(c.kv_heads as i32),
                    Arg::I(hd as i32),
                    Arg::I(PAGE_SIZE as i32),
                    Arg::I(rope),
                ],
            )?;
            let window = c.sliding_window(l).map_or(0, |x| x as i32);
            let attn = |dev: &mut Device, items: u64, n: usize, rows: usize| {
                let a = [
                    Arg::P(b.q.ptr()),
                    Arg::P(b.attn.ptr()),
                    Arg::P(kc),
                    Arg::P(vc),
                    Arg::P(items),
                    Arg::P(pos),
                    Arg::P(b.block_table.ptr()),
                    Arg::I(self.max_pages_per_seq as i32),
                    Arg::I(c.heads as i32),
                    Arg::I(c.kv_heads as i32),
                    Arg::F(scale),
                    Arg::F(attn_softcap),
                    Arg::I(window),
                    Arg::P(alibi),
                    Arg::P(b.part_o.ptr()),
                    Arg::P(b.part_ml.ptr()),
                ];
                let smem = (32 * (hd + 2) + 32 * hd + rows * hd) * 2 + rows * 32 * 4;
                dev.launch(
                    &format!("attention_{sx}_{hd}"),
                    (n as u32, c.kv_heads as u32, 1),
                    (32 * rows) as u32,
                    smem as u32,
                    &a,
                )
            };
            // The tensor-core kernels take the scalar kernel's arguments (prefill: without the partials).
            let tc_args = |items: u64| {
                [
                    Arg::P(b.q.ptr()),
                    Arg::P(b.attn.ptr()),
                    Arg::P(kc),
                    Arg::P(vc),
                    Arg::P(items),
                    Arg::P(pos),
                    Arg::P(b.block_table.ptr()),
                    Arg::I(self.max_pages_per_seq as i32),
                    Arg::I(c.heads as i32),
                    Arg::I(c.kv_heads as i32),
                    Arg::F(scale),
                    Arg::F(attn_softcap),
                    Arg::I(window),
                    Arg::P(alibi),
                    Arg::P(b.part_o.ptr()),
                    Arg::P(b.part_ml.ptr()),
                ]
            };
            if self.tc_attention {
                let grid = (s.prefill_items.len() as u32, c.kv_heads as u32, 1);
                dev.launch(
                    &format!("attention_tc_{sx}_{hd}"),
                    grid,
                    self.tc_threads as u32,
                    self.tc_smem as u32,
                    &tc_args(pitems)[..14],
                )?;
            } else {
                attn(dev, pitems, s.prefill_items.len(), prow)?;
            }
            if self.tc_attention {
                let grid = (s.decode_items.len() as u32, c.kv_heads as u32, 1);
                dev.launch(
                    &format!("attention_tcd_{sx}_{hd}"),
                    grid,
                    128,
                    self.tcd_smem as u32,
                    &tc_args(ditems),
                )?;
            } else {
                attn(dev, ditems, s.decode_items.len(), drow)?;
            }
            if !s.comb.is_empty() {
                let a = [
                    Arg::P(b.attn.ptr()),
                    Arg::P(comb),
                    Arg::P(b.part_o.ptr()),
                    Arg::P(b.part_ml.ptr()),
                    Arg::I(c.heads as i32),
                    Arg::I(hd as i32),
                ];
                dev.launch(
                    &format!("attn_combine_{sx}"),
                    (s.comb.len() as u32, c.heads as u32, 1),
                    hd.div_ceil(32) as u32 * 32,
                    0,
                    &a,
                )?;
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
            let a = [
                Arg::P(b.act.ptr()),
                Arg::P(b.up.ptr()),
                Arg::P(nb(&lw.up_b)),
                Arg::L(t as i64),
                Arg::I(c.ffn_dim as i32),
                Arg::I(act),
            ];
            dev.launch(
                &format!("ffn_act_{sx}"),
                super::device::ffn_act_grid(t, c.ffn_dim, 256),
                256,
                0,
                &a,
            )?;
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
        dev.launch(
            &format!("gather_rows_{sx}"),
            (ns as u32, 1, 1),
            256,
            0,
            &[
                Arg::P(b.xs.ptr()),
                Arg::P(xn),
                Arg::P(srows),
                Arg::I(h as i32),
            ],
        )?;
        lm_head_gemm(&c, b, w).run(dev, self.dt, ns)?;
        if let Some(cap) = c.gemma.map(|g| g.final_softcap).filter(|&x| x > 0.0) {
            let n = ns * c.vocab;
            dev.launch(
                &format!("softcap_{sx}"),
                super::device::grid_for(n, 256, dev.sms),
                256,
                0,
                &[Arg::P(b.logits.ptr()), Arg::L(n as i64), Arg::F(cap)],
            )?;
        }
        dev.launch(
            &format!("argmax_{sx}"),
            (ns as u32, 1, 1),
            1024,
            0,
            &[
                Arg::P(b.logits.ptr()),
                Arg::I(c.vocab as i32),
                Arg::P(out_tok),
                Arg::P(sdst),
                Arg::P(b.next_tok.ptr()),
                Arg::P(sslot),
            ],
        )?;
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
    out: u64,
    src: u64,
    tok_pos: u64,
    next_tok: u64,
) -> Result<()> {
    let scale = if c.embed_scale {
        (c.hidden as f32).sqrt()
    } else {
        1.0
    };
    let (table, offset) = match (c.positional, &w.positions) {
        (Positional::Learned { offset }, Some(p)) => (p.ptr(), offset as i32),
        _ => (0, 0),
    };
    let a = [
        Arg::P(out),
        Arg::P(w.embed.ptr()),
        Arg::P(src),
        Arg::P(next_tok),
        Arg::I(c.hidden as i32),
        Arg::F(scale),
        Arg::P(table),
        Arg::P(tok_pos),
        Arg::I(offset),
    ];
    dev.launch(&format!("embed_{sx}"), (tokens, 1, 1), 256, 0, &a)
}
