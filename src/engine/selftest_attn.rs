//! Self-test of the attention path: QKV post-processing (bias, RoPE, paged KV write) and the
//! prefill / decode (split-context + combine) attention kernels against CPU references, with
//! sequences of different lengths scattered over shuffled KV pages; plain, with Gemma-2's
//! soft-cap, query scale and sliding window, and with falcon's ALiBi.

use super::attn_item::AttnItem;
use super::device::{DevBuf, DevPtr};
use super::launches::{Attention, AttnCombine, QkvPost};
use super::selftest::{AttnOpts, Tester};
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::Rng;

const PS: usize = 32;

struct Layout {
    max_pages: usize,
    table: Vec<i32>,
    pages: usize,
}

impl Tester {
    /// Random page assignment for sequences of `lens` tokens.
    fn layout(&mut self, lens: &[usize]) -> Layout {
        let max_pages = lens.iter().map(|l| l.div_ceil(PS)).max().unwrap_or(1);
        let need: usize = lens.iter().map(|l| l.div_ceil(PS)).sum();
        let pages = need + 3;
        let mut ids: Vec<i32> = (0..pages as i32).collect();
        ids.shuffle(&mut self.rng);
        let mut table = vec![0; lens.len() * max_pages];
        let mut k = 0;
        for (s, l) in lens.iter().enumerate() {
            for p in 0..l.div_ceil(PS) {
                table[s * max_pages + p] = ids[k];
                k += 1;
            }
        }
        Layout {
            max_pages,
            table,
            pages,
        }
    }

    pub fn qkv_post(&mut self, h: usize, kv: usize, hd: usize, lens: &[usize]) -> Result<()> {
        let lay = self.layout(lens);
        let (mut pos, mut slot) = (Vec::new(), Vec::new());
        for (s, &l) in lens.iter().enumerate() {
            for p in 0..l {
                pos.push(p as i32);
                slot.push(s as i32);
            }
        }
        let t = pos.len();
        let width = (h + 2 * kv) * hd;
        let (qkv, qh) = self.rand(t * width, 2.0);
        let (bias, bh) = self.rand(width, 0.5);
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| (1.0 / 10000f64.powf(2.0 * i as f64 / hd as f64)) as f32)
            .collect();
        let ib = self.dev.alloc(inv.len() * 4)?;
        self.dev.upload(ib.view(), &inv)?;
        let cache_n = lay.pages * kv * PS * hd;
        let (q, kc, vc) = (
            self.poisoned(t * h * hd),
            self.poisoned(cache_n),
            self.poisoned(cache_n),
        );
        let (pb, sb, tb) = (self.ints(&pos), self.ints(&slot), self.ints(&lay.table));
        let sx = self.sx();
        let a = QkvPost {
            qkv: qkv.dptr(),
            bias: bias.dptr(),
            q_out: q.dptr(),
            kc: kc.dptr(),
            vc: vc.dptr(),
            tok_pos: pb.dptr(),
            tok_slot: sb.dptr(),
            block_table: tb.dptr(),
            max_pages: lay.max_pages as i32,
            inv_freq: ib.dptr(),
            heads: h as i32,
            kv_heads: kv as i32,
            hd: hd as i32,
            page_size: PS as i32,
            rope: 1,
        };
        let name = format!("qkv_post_{sx}");
        // SAFETY: t tokens of qkv and q, the caches of lay.pages pages, block-table rows of
        // lay.max_pages pages each, hd / 2 inverse frequencies, all allocated above.
        unsafe { a.launch(&mut self.dev, &name, (t as u32, 1, 1), 128, 0)? };
        let (gq, gk, gv) = (
            self.get(&q, t * h * hd)?,
            self.get(&kc, cache_n)?,
            self.get(&vc, cache_n)?,
        );
        let (mut wq, mut wk, mut wv) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ok_, mut ov_) = (Vec::new(), Vec::new());
        let half = hd / 2;
        for i in 0..t {
            let row: Vec<f64> = (0..width).map(|j| qh[i * width + j] + bh[j]).collect();
            let p = pos[i] as f64;
            let rot = |x: &[f64]| -> Vec<f64> {
                let mut o = vec![0.0; hd];
                for d in 0..half {
                    let (s, c) = (p * inv[d] as f64).sin_cos();
                    o[d] = x[d] * c - x[d + half] * s;
                    o[d + half] = x[d + half] * c + x[d] * s;
                }
                o
            };
            for hh in 0..h + 2 * kv {
                let x = &row[hh * hd..(hh + 1) * hd];
                if hh < h {
                    wq.extend(rot(x));
                    continue;
                }
                let (kvh, is_k) = if hh < h + kv {
                    (hh - h, true)
                } else {
                    (hh - h - kv, false)
                };
                let page =
                    lay.table[slot[i] as usize * lay.max_pages + pos[i] as usize / PS] as usize;
                let base = ((page * kv + kvh) * PS + pos[i] as usize % PS) * hd;
                if is_k {
                    wk.extend(rot(x));
                    ok_.extend_from_slice(&gk[base..base + hd]);
                } else {
                    wv.extend_from_slice(x);
                    ov_.extend_from_slice(&gv[base..base + hd]);
                }
            }
        }
        let tol = self.tol();
        self.record(
            format!("qkv_post q (bias+rope) h={h} kv={kv} hd={hd} t={t}"),
            &gq,
            &wq,
            tol,
        );
        self.record(
            format!("qkv_post k cache (bias+rope, paged) hd={hd}"),
            &ok_,
            &wk,
            tol,
        );
        self.record(
            format!("qkv_post v cache (bias, paged) hd={hd}"),
            &ov_,
            &wv,
            tol,
        );
        Ok(())
    }

    /// Prefill (all positions of every sequence) or decode (last position, split over context).
    pub fn attention(
        &mut self,
        h: usize,
        kv: usize,
        hd: usize,
        lens: &[usize],
        decode: bool,
        o: AttnOpts,
    ) -> Result<()> {
        let lay = self.layout(lens);
        let g = h / kv;
        let cache_n = lay.pages * kv * PS * hd;
        let (kc, kh) = self.rand(cache_n, 1.0);
        let (vc, vh) = self.rand(cache_n, 1.0);
        let tc_rows = self.dev.tc_rows(self.sx(), hd)?;
        let bq = if decode {
            1
        } else {
            super::forward::prefill_bq(
                g,
                if o.tc {
                    tc_rows
                } else {
                    super::forward::SCALAR_ROWS
                },
            )
        };
        let tc = o.tc && !decode;
        let (pos, slot, items, comb, parts) = plan_items(lens, decode, bq);
        let t = pos.len();
        let (q, qh) = self.rand(t * h * hd, 1.0);
        let out = self.poisoned(t * h * hd);
        let flat = AttnItem::flatten(&items);
        let (ib, pb, tb) = (self.ints(&flat), self.ints(&pos), self.ints(&lay.table));
        let cb = self.ints(&comb.iter().flatten().copied().collect::<Vec<_>>());
        let np = (parts as usize).max(1);
        let po: DevBuf = self.dev.alloc(np * h * hd * 4)?;
        let pml: DevBuf = self.dev.alloc(np * h * 2 * 4)?;
        let scale = o.scale.unwrap_or(1.0 / (hd as f32).sqrt());
        let slopes: Vec<f32> = crate::llm::alibi_slopes(h)
            .iter()
            .map(|&x| bf(x) as f32)
            .collect();
        let sl = self.dev.alloc(h * 4)?;
        self.dev.upload(sl.view(), &slopes)?;
        let rows = bq * g;
        let smem = (32 * (hd + 2) + 32 * hd + rows * hd) * 2 + rows * 32 * 4;
        let sx = self.sx();
        let a = Attention {
            q: q.dptr(),
            out: out.dptr(),
            kc: kc.dptr(),
            vc: vc.dptr(),
            items: ib.dptr(),
            tok_pos: pb.dptr(),
            block_table: tb.dptr(),
            max_pages: lay.max_pages as i32,
            heads: h as i32,
            kv_heads: kv as i32,
            scale,
            softcap: o.softcap,
            window: o.window as i32,
            alibi: if o.alibi { sl.dptr() } else { DevPtr::null() },
            part_o: po.dptr(),
            part_ml: pml.dptr(),
        };
        let grid = (items.len() as u32, kv as u32, 1);
        // SAFETY (each launch below): the items, positions, block table, caches, q, out and the
        // partials were built above for exactly these items, sequences and pages.
        // attention_ws and attention_tcd read the cache through the tensor maps where compiled so.
        if o.tc && super::kv_tmap::needs_maps(&self.dev, sx, hd)? {
            super::kv_tmap::set_maps(&self.dev, &kc, &vc, hd)?;
        }
        if o.tc && decode {
            let smem = self.dev.tcd_smem(sx, hd)? as u32;
            let threads = self.dev.tcd_threads(sx, hd)? as u32;
            let name = format!("attention_tcd_{sx}_{hd}");
            unsafe { a.launch(&mut self.dev, &name, grid, threads, smem)? };
        } else if tc {
            let smem = self.dev.tc_smem(sx, hd)? as u32;
            let threads = self.dev.tc_threads(sx, hd)? as u32;
            let name = format!("attention_tc_{sx}_{hd}");
            unsafe {
                a.prefill()
                    .launch(&mut self.dev, &name, grid, threads, smem)?
            };
        } else {
            let name = format!("attention_{sx}_{hd}");
            unsafe { a.launch(&mut self.dev, &name, grid, (32 * rows) as u32, smem as u32)? };
        }
        if !comb.is_empty() {
            let a = AttnCombine {
                out: out.dptr(),
                comb: cb.dptr(),
                part_o: po.dptr(),
                part_ml: pml.dptr(),
                heads: h as i32,
                hd: hd as i32,
            };
            let (name, block) = (format!("attn_combine_{sx}"), hd.div_ceil(32) as u32 * 32);
            let grid = (comb.len() as u32, h as u32, 1);
            // SAFETY: comb's triples name the parts the split items wrote above.
            unsafe { a.launch(&mut self.dev, &name, grid, block, 0)? };
        }
        let got = self.get(&out, t * h * hd)?;
        let want = reference(
            &lay,
            (h, kv, hd),
            &pos,
            &slot,
            (&qh, &kh, &vh),
            o,
            scale,
            &slopes,
        );
        let tol = self.tol();
        let (kind, extra) = label(o, decode, tc, parts);
        self.record(
            format!("attention {kind}{extra} h={h} kv={kv} hd={hd} lens={lens:?}"),
            &got,
            &want,
            tol,
        );
        let _ = self.rng.random::<u8>();
        Ok(())
    }
}

/// The attention items of sequences of `lens` tokens: prefill in blocks of `bq` queries, or decode
/// (the last position) split over the context, a sequence's splits growing with its index; with
/// each query's position and sequence, the combine triples and the partial slots used.
#[allow(clippy::type_complexity)]
fn plan_items(
    lens: &[usize],
    decode: bool,
    bq: usize,
) -> (Vec<i32>, Vec<i32>, Vec<AttnItem>, Vec<[i32; 3]>, i32) {
    let (mut pos, mut slot) = (Vec::new(), Vec::new());
    let mut items: Vec<AttnItem> = Vec::new();
    let mut comb: Vec<[i32; 3]> = Vec::new();
    let mut parts = 0;
    for (s, &l) in lens.iter().enumerate() {
        let t0 = pos.len() as i32;
        let qpos: Vec<usize> = if decode {
            vec![l - 1]
        } else {
            (0..l).collect()
        };
        for &p in &qpos {
            pos.push(p as i32);
            slot.push(s as i32);
        }
        if decode {
            let tiles = l.div_ceil(PS);
            let splits = tiles.min(1 + s);
            let chunk = tiles.div_ceil(splits) * PS;
            let splits = l.div_ceil(chunk);
            if splits == 1 {
                items.push(AttnItem {
                    q_tok: t0,
                    q_cnt: 1,
                    slot: s as i32,
                    key_begin: 0,
                    key_end: l as i32,
                    part: -1,
                });
            } else {
                comb.push([t0, parts, splits as i32]);
                for k in 0..splits {
                    items.push(AttnItem {
                        q_tok: t0,
                        q_cnt: 1,
                        slot: s as i32,
                        key_begin: (k * chunk) as i32,
                        key_end: ((k + 1) * chunk).min(l) as i32,
                        part: parts + k as i32,
                    });
                }
                parts += splits as i32;
            }
        } else {
            for (i, q) in super::attn_shapes::prefill_chunks(l, bq) {
                items.push(AttnItem {
                    q_tok: t0 + i as i32,
                    q_cnt: q as i32,
                    slot: s as i32,
                    key_begin: 0,
                    key_end: i32::MAX,
                    part: -1,
                });
            }
        }
    }
    (pos, slot, items, comb, parts)
}

/// The CPU reference of attention: for each query, softmax over its keys (causal, within the window)
/// of the scaled, soft-capped, ALiBi-biased dot products, times the values; as attention's output.
#[allow(clippy::too_many_arguments)]
fn reference(
    lay: &Layout,
    (h, kv, hd): (usize, usize, usize),
    pos: &[i32],
    slot: &[i32],
    (qh, kh, vh): (&[f64], &[f64], &[f64]),
    o: AttnOpts,
    scale: f32,
    slopes: &[f32],
) -> Vec<f64> {
    let t = pos.len();
    let g = h / kv;
    let mut want = vec![0.0f64; t * h * hd];
    for i in 0..t {
        let (p, s) = (pos[i] as usize, slot[i] as usize);
        for hh in 0..h {
            let kvh = hh / g;
            let qv = &qh[(i * h + hh) * hd..(i * h + hh + 1) * hd];
            let idx = |key: usize| {
                ((lay.table[s * lay.max_pages + key / PS] as usize * kv + kvh) * PS + key % PS) * hd
            };
            let k0 = if o.window > 0 {
                (p + 1).saturating_sub(o.window)
            } else {
                0
            };
            let sc: Vec<f64> = (k0..=p)
                .map(|key| {
                    let mut dot = (0..hd).map(|d| qv[d] * kh[idx(key) + d]).sum::<f64>();
                    if o.alibi {
                        dot += bf(slopes[hh] as f64 * bf(key as f64));
                    }
                    let s = dot * scale as f64;
                    let c = o.softcap as f64;
                    if c > 0.0 {
                        c * (s / c).tanh()
                    } else {
                        s
                    }
                })
                .collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                want[(i * h + hh) * hd + d] = (k0..=p)
                    .map(|key| e[key - k0] * vh[idx(key) + d])
                    .sum::<f64>()
                    / z;
            }
        }
    }
    want
}

/// What an attention check is called: the kernel (prefill or decode, scalar or tensor-core, the
/// partials a decode split into) and the variant's options.
fn label(o: AttnOpts, decode: bool, tc: bool, parts: i32) -> (String, String) {
    let kind = if decode {
        format!(
            "decode{} (splits: {parts} partials)",
            if o.tc { " tensor-core" } else { "" }
        )
    } else if tc {
        "prefill tensor-core".into()
    } else {
        "prefill".into()
    };
    let mut extra = String::new();
    if o.softcap > 0.0 {
        extra += &format!(" softcap={}", o.softcap);
    }
    if o.window > 0 {
        extra += &format!(" window={}", o.window);
    }
    if o.alibi {
        extra += " alibi";
    }
    if let Some(s) = o.scale {
        extra += &format!(" scale={s:.4}");
    }
    (kind, extra)
}

/// `x` rounded to bf16, as the kernels hold ALiBi slopes and key positions.
fn bf(x: f64) -> f64 {
    half::bf16::from_f64(x).to_f64()
}
