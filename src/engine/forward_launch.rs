//! The kernel launches of one forward iteration, in order: embedding, then per layer the norm,
//! QKV GEMM and post-processing, attention (prefill and decode items, the split-context combine),
//! output projection, norm, FFN; then the final norm, the sampled rows, LM head, soft-cap and argmax.
//! The metadata they read is already on the device (`Model::forward`). `Model::launch_all` is that
//! sequence; each block of it is a method of `Iteration`, which holds what the launches share.

use super::attn_item::AttnItem;
use super::device::{DType, DevBuf, DevPtr, Device};
use super::forward::{Buffers, Model, StepInput};
use super::gemms::{layer_gemms, lm_head_gemm, LayerGemms};
use super::launch_ptrs::{kv_caches, MetaPtrs};
use super::launches::{
    Argmax, Attention, AttnCombine, Embed, FfnAct, GatherRows, Half, NormResidual, QkvPost, Softcap,
};
use super::scheduler::PAGE_SIZE;
use super::weights::{LayerWeights, NormWeights, Weights};
use crate::llm::{Ffn, LlmConfig, Norm, Positional};
use anyhow::Result;

/// What `Model::probe` records per layer: (layer, rms, max |x|, all finite).
type Probe = Vec<(usize, f64, f64, bool)>;

fn stats(v: &[f32]) -> (f64, f64, bool) {
    let fin = v.iter().all(|x| x.is_finite());
    let ss: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let mx = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    ((ss / v.len().max(1) as f64).sqrt(), mx, fin)
}

/// An optional weight as a kernel pointer: null when the model has none (the kernels test for it).
fn opt<T>(o: &Option<DevBuf>) -> DevPtr<T> {
    o.as_ref().map_or(DevPtr::null(), |x| x.dptr())
}

/// An optional norm's weight as a kernel pointer (null: no such norm).
fn opt_norm(o: &Option<NormWeights>) -> DevPtr<Half> {
    o.as_ref().map_or(DevPtr::null(), |x| x.0.dptr())
}

/// What a norm adds to the residual stream first: a projection's output (0: nothing), that
/// projection's bias and, on Gemma-2, the norm applied to it before the add (0: none).
#[derive(Clone, Copy, Default)]
struct Branch {
    add: DevPtr<Half>,
    bias: DevPtr<Half>,
    post: DevPtr<Half>,
}

/// What the launches of one iteration share: the model's configuration, weights and buffers, the
/// iteration's metadata and the attention kernels' compiled shapes. Borrowed apart from the
/// device (`Model::iteration`), so that the launches queue on it while reading the rest.
struct Iteration<'a> {
    c: &'a LlmConfig,
    w: &'a Weights,
    b: &'a Buffers,
    s: &'a StepInput,
    m: MetaPtrs,
    dt: DType,
    sx: &'static str,
    /// Tokens in the iteration.
    t: usize,
    /// Elements of one layer's K (or V) cache: the KV allocation holds K0, V0, K1, V1, … of this.
    kv_elems: usize,
    max_pages: i32,
    /// Rows of a scalar prefill attention block (`Model::prefill_rows`).
    prefill_rows: usize,
    tc_attention: bool,
    /// `Model::ffn_epilogue`.
    ffn_epilogue: bool,
    tc_threads: usize,
    tc_smem: usize,
    tcd_threads: usize,
    tcd_smem: usize,
}

impl Model {
    /// Queue every kernel of one iteration whose metadata is already on the device.
    pub(super) fn launch_all(&mut self, s: &StepInput, out_tok: DevPtr<i32>) -> Result<()> {
        let (dev, probe, it) = self.iteration(s)?;
        it.embed(dev)?;
        // The FFN output of layer l is added (with its bias and post-norm) by layer l+1's first norm.
        let mut pending = Branch::default();
        for (l, lw) in it.w.layers.iter().enumerate() {
            pending = it.layer(dev, l, lw, pending, probe)?;
        }
        it.norm(dev, pending, &it.w.final_norm)?;
        it.snap(dev, it.c.layers, &it.b.xn, probe)?;
        it.head(dev, out_tok)
    }

    /// The device, the probe's record and what the launches of iteration `s` read, borrowed apart.
    fn iteration<'a>(
        &'a mut self,
        s: &'a StepInput,
    ) -> Result<(&'a mut Device, &'a mut Option<Probe>, Iteration<'a>)> {
        let prefill_rows = self.prefill_rows();
        let c = &self.cfg;
        let it = Iteration {
            c,
            w: &self.w,
            b: &self.b,
            s,
            m: MetaPtrs::new(&self.b.meta, &self.meta)?,
            dt: self.dt,
            sx: self.dt.suffix(),
            t: s.tok_src.len(),
            kv_elems: self.total_pages * c.kv_heads * PAGE_SIZE * c.head_dim,
            max_pages: self.max_pages_per_seq as i32,
            prefill_rows,
            tc_attention: self.tc_attention,
            ffn_epilogue: self.ffn_epilogue,
            tc_threads: self.tc_threads,
            tc_smem: self.tc_smem,
            tcd_threads: self.tcd_threads,
            tcd_smem: self.tcd_smem,
        };
        Ok((&mut self.dev, &mut self.probe, it))
    }
}

impl Iteration<'_> {
    /// Token embeddings into the residual stream: scaled by sqrt(hidden) on Gemma, plus the
    /// learned position row (`tok_pos + offset`) on OPT.
    fn embed(&self, dev: &mut Device) -> Result<()> {
        let (c, w, sx) = (self.c, self.w, self.sx);
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
            out: self.b.resid.dptr(),
            table: w.embed.dptr(),
            src: self.m.src,
            next_tok: self.b.next_tok.dptr(),
            hidden: c.hidden as i32,
            scale,
            positions: table,
            tok_pos: self.m.pos,
            pos_offset: offset,
        };
        // SAFETY: out holds max_tokens rows of hidden, src / tok_pos `tokens` entries; token ids are
        // below vocab (the embedding's rows), positions below the learned table's.
        unsafe { a.launch(dev, &format!("embed_{sx}"), (self.t as u32, 1, 1), 256, 0) }
    }

    /// Layer l: norm, QKV projection, attention, output projection, norm, FFN. Returns the FFN's
    /// output branch, which the next norm adds to the residual stream.
    fn layer(
        &self,
        dev: &mut Device,
        l: usize,
        lw: &LayerWeights,
        pending: Branch,
        probe: &mut Option<Probe>,
    ) -> Result<Branch> {
        let b = self.b;
        self.norm(dev, pending, &lw.norm1)?;
        self.snap(dev, l, &b.resid, probe)?;
        let gm = layer_gemms(self.c, b, lw, self.ffn_epilogue);
        gm.qkv.run(dev, self.dt, self.t)?;
        self.attention(dev, l, lw)?;
        gm.o.run(dev, self.dt, self.t)?;
        let attn_out = Branch {
            add: b.tmp.dptr(),
            bias: opt(&lw.o_b),
            post: opt_norm(&lw.post_attn),
        };
        self.norm(dev, attn_out, &lw.norm2)?;
        self.ffn(dev, &gm, lw)
    }

    /// The residual add of `br` and the norm of the result into xn.
    fn norm(&self, dev: &mut Device, br: Branch, nw: &NormWeights) -> Result<()> {
        let (c, sx) = (self.c, self.sx);
        let a = NormResidual {
            resid: self.b.resid.dptr(),
            add: br.add,
            add_bias: br.bias,
            add_post_w: br.post,
            w: nw.0.dptr(),
            b: opt(&nw.1),
            out: self.b.xn.dptr(),
            cols: c.hidden as i32,
            eps: c.norm_eps as f32,
            mode: match c.norm {
                Norm::RmsNorm => 0,
                Norm::RmsNormPlusOne => 1,
                Norm::LayerNorm => 2,
            },
        };
        let (threads, smem) = super::device::norm_residual_block(c.hidden);
        // SAFETY: resid and xn hold max_tokens rows of h (Buffers), the add branch (tmp) as
        // many, the norm weights h each; one block per token (t ≤ max_tokens).
        unsafe {
            a.launch(
                dev,
                &format!("norm_residual_{sx}"),
                (self.t as u32, 1, 1),
                threads,
                smem,
            )
        }
    }

    /// With a probe, record the rms, max |x| and finiteness of the iteration's rows of `buf`
    /// (synchronises).
    fn snap(&self, dev: &Device, l: usize, buf: &DevBuf, probe: &mut Option<Probe>) -> Result<()> {
        if let Some(p) = probe.as_mut() {
            let raw: Vec<u16> = dev.download(buf.slice(0, self.t * self.c.hidden)?)?;
            let v: Vec<f32> = raw.iter().map(|&x| self.dt.decode(x)).collect();
            let (r, m, f) = stats(&v);
            p.push((l, r, m, f));
        }
        Ok(())
    }

    /// Layer l's attention after the QKV GEMM: post-processing into q and the layer's KV cache,
    /// the prefill items, the decode items, and the combine of split-context partials.
    fn attention(&self, dev: &mut Device, l: usize, lw: &LayerWeights) -> Result<()> {
        let (kc, vc) = kv_caches(&self.b.kv, l, self.kv_elems)?;
        self.qkv_post(dev, lw, kc, vc)?;
        self.prefill_attention(dev, self.attention_args(l, kc, vc, self.m.pitems))?;
        self.decode_attention(dev, self.attention_args(l, kc, vc, self.m.ditems))?;
        if !self.s.comb.is_empty() {
            self.combine(dev)?;
        }
        Ok(())
    }

    /// Bias, RoPE, the queries into q and the keys and values into the caches at kc / vc.
    fn qkv_post(
        &self,
        dev: &mut Device,
        lw: &LayerWeights,
        kc: DevPtr<Half>,
        vc: DevPtr<Half>,
    ) -> Result<()> {
        let (b, c, sx) = (self.b, self.c, self.sx);
        let qp = QkvPost {
            qkv: b.qkv.dptr(),
            bias: opt(&lw.qkv_b),
            q_out: b.q.dptr(),
            kc,
            vc,
            tok_pos: self.m.pos,
            tok_slot: self.m.slot,
            block_table: b.block_table.dptr(),
            max_pages: self.max_pages,
            inv_freq: b.inv_freq.dptr(),
            heads: c.heads as i32,
            kv_heads: c.kv_heads as i32,
            hd: c.head_dim as i32,
            page_size: PAGE_SIZE as i32,
            rope: matches!(c.positional, Positional::Rope { .. }) as i32,
        };
        // SAFETY: qkv and q hold max_tokens rows (Buffers), pos / slot the iteration's tokens
        // (MetaLayout), every slot's block-table row max_pages pages of this layer's caches.
        unsafe {
            qp.launch(
                dev,
                &format!("qkv_post_{sx}"),
                (self.t as u32, 1, 1),
                128,
                0,
            )
        }
    }

    /// What every attention kernel of layer l takes, for the items at `items` (prefill's
    /// tensor-core kernel takes it without the partials).
    fn attention_args(
        &self,
        l: usize,
        kc: DevPtr<Half>,
        vc: DevPtr<Half>,
        items: DevPtr<AttnItem>,
    ) -> Attention {
        let (b, c) = (self.b, self.c);
        Attention {
            q: b.q.dptr(),
            out: b.attn.dptr(),
            kc,
            vc,
            items,
            tok_pos: self.m.pos,
            block_table: b.block_table.dptr(),
            max_pages: self.max_pages,
            heads: c.heads as i32,
            kv_heads: c.kv_heads as i32,
            scale: c.attn_scale() as f32,
            softcap: c.gemma.map_or(0.0, |g| g.attn_softcap),
            window: c.sliding_window(l).map_or(0, |x| x as i32),
            alibi: if c.positional == Positional::Alibi {
                b.inv_freq.dptr()
            } else {
                DevPtr::null()
            },
            part_o: b.part_o.dptr(),
            part_ml: b.part_ml.dptr(),
        }
    }

    /// The prefill items: the tensor-core kernel in its compiled block shape, else the scalar one.
    fn prefill_attention(&self, dev: &mut Device, a: Attention) -> Result<()> {
        let n = self.s.prefill_items.len();
        if !self.tc_attention {
            return self.scalar_attention(dev, a, n, self.prefill_rows);
        }
        let (sx, hd) = (self.sx, self.c.head_dim);
        let grid = (n as u32, self.c.kv_heads as u32, 1);
        // SAFETY: as the scalar kernel's (`scalar_attention`), with the compiled block shape.
        unsafe {
            a.prefill().launch(
                dev,
                &format!("attention_tc_{sx}_{hd}"),
                grid,
                self.tc_threads as u32,
                self.tc_smem as u32,
            )
        }
    }

    /// The decode items: the tensor-core kernel with its compiled threads and shared memory, else
    /// the scalar one in blocks of one query group.
    fn decode_attention(&self, dev: &mut Device, a: Attention) -> Result<()> {
        let n = self.s.decode_items.len();
        if !self.tc_attention {
            return self.scalar_attention(dev, a, n, self.c.group_size());
        }
        let (sx, hd) = (self.sx, self.c.head_dim);
        let grid = (n as u32, self.c.kv_heads as u32, 1);
        // SAFETY: as the scalar kernel's (`scalar_attention`), with the compiled block shape.
        unsafe {
            a.launch(
                dev,
                &format!("attention_tcd_{sx}_{hd}"),
                grid,
                self.tcd_threads as u32,
                self.tcd_smem as u32,
            )
        }
    }

    /// The scalar attention kernel over `n` items in blocks of `rows` query rows.
    fn scalar_attention(
        &self,
        dev: &mut Device,
        a: Attention,
        n: usize,
        rows: usize,
    ) -> Result<()> {
        let (sx, hd) = (self.sx, self.c.head_dim);
        let smem = (32 * (hd + 2) + 32 * hd + rows * hd) * 2 + rows * 32 * 4;
        // SAFETY: n items in the region at `items` (MetaLayout), each within the
        // iteration's tokens and its slot's pages; partials sized for MAX_PARTS.
        unsafe {
            a.launch(
                dev,
                &format!("attention_{sx}_{hd}"),
                (n as u32, self.c.kv_heads as u32, 1),
                (32 * rows) as u32,
                smem as u32,
            )
        }
    }

    /// The split-context decode queries' partials combined into their attention output.
    fn combine(&self, dev: &mut Device) -> Result<()> {
        let (b, c, sx) = (self.b, self.c, self.sx);
        let a = AttnCombine {
            out: b.attn.dptr(),
            comb: self.m.comb,
            part_o: b.part_o.dptr(),
            part_ml: b.part_ml.dptr(),
            heads: c.heads as i32,
            hd: c.head_dim as i32,
        };
        // SAFETY: s.comb's triples in the comb region name parts the decode items wrote.
        unsafe {
            a.launch(
                dev,
                &format!("attn_combine_{sx}"),
                (self.s.comb.len() as u32, c.heads as u32, 1),
                c.head_dim.div_ceil(32) as u32 * 32,
                0,
            )
        }
    }

    /// The FFN after its norm: up (or gate|up) GEMM, activation (in the up GEMM's epilogue where
    /// `gemms::ffn_epilogue` allows), down GEMM. Returns the down projection's output branch for
    /// the next norm to add.
    fn ffn(&self, dev: &mut Device, gm: &LayerGemms<'_>, lw: &LayerWeights) -> Result<Branch> {
        let (b, t) = (self.b, self.t);
        gm.up.run(dev, self.dt, t)?;
        if !gm.ffn_act_fused() {
            self.ffn_act(dev, lw)?;
        }
        gm.down.run(dev, self.dt, t)?;
        Ok(Branch {
            add: b.tmp.dptr(),
            bias: opt(&lw.down_b),
            post: opt_norm(&lw.post_ffn),
        })
    }

    /// The FFN activation of the up projection's output (`b.up`) into `b.act`, with its bias.
    fn ffn_act(&self, dev: &mut Device, lw: &LayerWeights) -> Result<()> {
        let (b, c, t, sx) = (self.b, self.c, self.t, self.sx);
        let a = FfnAct {
            out: b.act.dptr(),
            gate_up: b.up.dptr(),
            bias: opt(&lw.up_b),
            rows: t as i64,
            ffn: c.ffn_dim as i32,
            act: match c.ffn {
                Ffn::SwiGlu => 0,
                Ffn::GeGluTanh => 1,
                Ffn::Relu => 2,
                Ffn::Gelu => 3,
            },
        };
        // SAFETY: up holds max_tokens rows of up_rows, act of ffn_dim (Buffers); t ≤ max_tokens.
        unsafe {
            a.launch(
                dev,
                &format!("ffn_act_{sx}"),
                super::device::ffn_act_grid(t, c.ffn_dim, 256),
                256,
                0,
            )
        }
    }

    /// The sampling end of an iteration: the sampled rows of the final normed hidden state
    /// gathered, the LM head over them, Gemma-2's final soft-cap, and greedy argmax into `out_tok`
    /// and `next_tok`.
    fn head(&self, dev: &mut Device, out_tok: DevPtr<i32>) -> Result<()> {
        let (b, c, sx) = (self.b, self.c, self.sx);
        let ns = self.s.sample_rows.len();
        let g = GatherRows {
            out: b.xs.dptr(),
            src: b.xn.dptr(),
            rows: self.m.srows,
            cols: c.hidden as i32,
        };
        // SAFETY: xs holds max_seqs rows of h; srows names ns ≤ max_seqs rows of xn's t.
        unsafe { g.launch(dev, &format!("gather_rows_{sx}"), (ns as u32, 1, 1), 256, 0)? };
        lm_head_gemm(c, b, self.w).run(dev, self.dt, ns)?;
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
            dst: self.m.sdst,
            next_tok: b.next_tok.dptr(),
            slot: self.m.sslot,
        };
        // SAFETY: ns rows of logits; sdst indexes the caller's out_tok (forward's contract),
        // sslot next_tok's max_seqs slots.
        unsafe { am.launch(dev, &format!("argmax_{sx}"), (ns as u32, 1, 1), 1024, 0) }
    }
}
