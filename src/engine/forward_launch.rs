//! The kernel launches of one forward iteration, in order: embedding, then per layer the norm,
//! QKV GEMM and post-processing, attention (prefill and decode items, the split-context combine),
//! output projection, norm, FFN; then the final norm, the sampled rows, LM head, soft-cap and argmax.
//! The metadata they read is already on the device (`Model::forward`).

use super::attn_item::AttnItem;
use super::device::{DType, DevBuf, DevPtr, Device};
use super::forward::{Buffers, Model, StepInput};
use super::gemms::{layer_gemms, lm_head_gemm};
use super::launches::{
    Argmax, Attention, AttnCombine, Embed, FfnAct, GatherRows, Half, NormResidual, QkvPost, Softcap,
};
use super::scheduler::PAGE_SIZE;
use super::weights::{NormWeights, Weights};
use crate::llm::{Ffn, LlmConfig, Norm, Positional};
use anyhow::Result;

fn stats(v: &[f32]) -> (f64, f64, bool) {
    let fin = v.iter().all(|x| x.is_finite());
    let ss: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let mx = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    ((ss / v.len().max(1) as f64).sqrt(), mx, fin)
}

/// What a norm adds to the residual stream first: a projection's output (0: nothing), that
/// projection's bias and, on Gemma-2, the norm applied to it before the add (0: none).
#[derive(Clone, Copy, Default)]
struct Branch {
    add: DevPtr<Half>,
    bias: DevPtr<Half>,
    post: DevPtr<Half>,
}

impl Model {
    /// Queue every kernel of one iteration whose metadata is already on the device.
    pub(super) fn launch_all(&mut self, s: &StepInput, out_tok: DevPtr<i32>) -> Result<()> {
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
        launch_head(
            dev, &c, b, w, self.dt, sx, xn, h, srows, sdst, sslot, ns, out_tok,
        )?;
        Ok(())
    }
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

/// The sampling end of an iteration: the sampled rows of the final normed hidden state gathered,
/// the LM head over them, Gemma-2's final soft-cap, and greedy argmax into `out_tok` and `next_tok`.
#[allow(clippy::too_many_arguments)]
fn launch_head(
    dev: &mut Device,
    c: &LlmConfig,
    b: &Buffers,
    w: &Weights,
    dt: DType,
    sx: &str,
    xn: DevPtr<Half>,
    h: usize,
    srows: DevPtr<i32>,
    sdst: DevPtr<i32>,
    sslot: DevPtr<i32>,
    ns: usize,
    out_tok: DevPtr<i32>,
) -> Result<()> {
    let g = GatherRows {
        out: b.xs.dptr(),
        src: xn,
        rows: srows,
        cols: h as i32,
    };
    // SAFETY: xs holds max_seqs rows of h; srows names ns ≤ max_seqs rows of xn's t.
    unsafe { g.launch(dev, &format!("gather_rows_{sx}"), (ns as u32, 1, 1), 256, 0)? };
    lm_head_gemm(c, b, w).run(dev, dt, ns)?;
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
