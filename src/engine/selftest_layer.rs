//! Self-test of the per-token kernels of a layer and of sampling: embedding, norm with residual,
//! FFN activation, soft-cap and argmax, each against a CPU reference.

use super::device::{ffn_act_grid, grid_for, norm_residual_block, DevPtr};
use super::launches::{Argmax, Embed, FfnAct, NormResidual, Softcap};
use super::selftest::{erf, Check, Tester};
use anyhow::Result;
use rand::Rng;

impl Tester {
    pub(crate) fn embed(
        &mut self,
        vocab: usize,
        h: usize,
        t: usize,
        scale: f32,
        learned: bool,
    ) -> Result<()> {
        let (tab, th) = self.rand(vocab * h, 1.0);
        let ids: Vec<i32> = (0..t)
            .map(|_| self.rng.random_range(0..vocab as i32))
            .collect();
        let mut src = ids.clone();
        src[0] = -2; // take next_tok[1]
        let next = self.ints(&[0, ids[0], 0]);
        let sb = self.ints(&src);
        let (offset, rows) = (2usize, t + 40);
        let (ptab, ph) = if learned {
            self.rand(rows * h, 1.0)
        } else {
            (self.poisoned(0), Vec::new())
        };
        let pos: Vec<i32> = (0..t)
            .map(|_| self.rng.random_range(0..(rows - offset) as i32))
            .collect();
        let pb = self.ints(&pos);
        let out = self.poisoned(t * h);
        let sx = self.sx();
        let a = Embed {
            out: out.dptr(),
            table: tab.dptr(),
            src: sb.dptr(),
            next_tok: next.dptr(),
            hidden: h as i32,
            scale,
            positions: if learned { ptab.dptr() } else { DevPtr::null() },
            tok_pos: pb.dptr(),
            pos_offset: offset as i32,
        };
        let name = format!("embed_{sx}");
        // SAFETY: t rows of h out; ids and positions drawn inside the tables built above.
        unsafe { a.launch(&mut self.dev, &name, (t as u32, 1, 1), 256, 0)? };
        let got = self.get(&out, t * h)?;
        let s = self.dt.decode(self.dt.encode(scale)) as f64;
        let want: Vec<f64> = (0..t * h)
            .map(|k| {
                let (i, d) = (k / h, k % h);
                let e = th[ids[i] as usize * h + d] * s;
                e + if learned {
                    ph[(pos[i] as usize + offset) * h + d]
                } else {
                    0.0
                }
            })
            .collect();
        let exact = scale == 1.0 && !learned;
        let tol = if exact { 0.0 } else { self.tol() };
        let what = if learned { " + learned positions" } else { "" };
        self.record(
            format!("embed v={vocab} h={h} t={t} scale={scale}{what}"),
            &got,
            &want,
            tol,
        );
        Ok(())
    }

    pub(crate) fn norm(
        &mut self,
        rows: usize,
        cols: usize,
        mode: i32,
        add_bias: bool,
        post: bool,
    ) -> Result<()> {
        let (res, rh) = self.rand(rows * cols, 2.0);
        let (add, ah) = self.rand(rows * cols, 1.0);
        let (w, wh) = self.rand(cols, 1.0);
        let (bb, bh) = self.rand(cols, 0.5);
        let (ab, abh) = self.rand(cols, 0.5);
        let (pw, pwh) = self.rand(cols, 1.0);
        let out = self.poisoned(rows * cols);
        let eps = 1e-5f32;
        let sx = self.sx();
        let a = NormResidual {
            resid: res.dptr(),
            add: add.dptr(),
            add_bias: if add_bias { ab.dptr() } else { DevPtr::null() },
            add_post_w: if post { pw.dptr() } else { DevPtr::null() },
            w: w.dptr(),
            b: bb.dptr(),
            out: out.dptr(),
            cols: cols as i32,
            eps,
            mode,
        };
        let name = format!("norm_residual_{sx}");
        let (threads, smem) = norm_residual_block(cols);
        // SAFETY: rows × cols matrices and cols-long vectors, allocated above.
        unsafe { a.launch(&mut self.dev, &name, (rows as u32, 1, 1), threads, smem)? };
        let got = self.get(&out, rows * cols)?;
        let got_res = self.get(&res, rows * cols)?;
        let mut want = vec![0.0; rows * cols];
        let mut want_res = vec![0.0; rows * cols];
        for r in 0..rows {
            let mut br: Vec<f64> = (0..cols)
                .map(|i| ah[r * cols + i] + if add_bias { abh[i] } else { 0.0 })
                .collect();
            if post {
                let inv =
                    1.0 / (br.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps as f64).sqrt();
                for (i, v) in br.iter_mut().enumerate() {
                    *v *= inv * if mode == 1 { 1.0 + pwh[i] } else { pwh[i] };
                }
            }
            let x: Vec<f64> = (0..cols).map(|i| rh[r * cols + i] + br[i]).collect();
            let mean = if mode == 2 {
                x.iter().sum::<f64>() / cols as f64
            } else {
                0.0
            };
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for i in 0..cols {
                let n = (x[i] - mean) * inv;
                want[r * cols + i] = match mode {
                    0 => wh[i] * n,
                    1 => (1.0 + wh[i]) * n,
                    _ => wh[i] * n + bh[i],
                };
                want_res[r * cols + i] = x[i];
            }
        }
        let tol = self.tol();
        let kind = ["rmsnorm", "rmsnorm(1+w)", "layernorm"][mode as usize];
        let extra = format!(
            "{}{}",
            if add_bias { " +bias" } else { "" },
            if post { " +post-norm" } else { "" }
        );
        self.record(
            format!("norm_residual {kind}{extra} {rows}x{cols}"),
            &got,
            &want,
            tol,
        );
        self.record(
            format!("norm_residual {kind}{extra} residual {rows}x{cols}"),
            &got_res,
            &want_res,
            tol,
        );
        Ok(())
    }

    pub(crate) fn ffn_act(&mut self, rows: usize, f: usize, act: i32, bias: bool) -> Result<()> {
        let gated = act < 2;
        let width = if gated { 2 * f } else { f };
        let (gu, gh) = self.rand(rows * width, 3.0);
        let (bb, bh) = self.rand(width, 0.5);
        let out = self.poisoned(rows * f);
        let sx = self.sx();
        let a = FfnAct {
            out: out.dptr(),
            gate_up: gu.dptr(),
            bias: if bias { bb.dptr() } else { DevPtr::null() },
            rows: rows as i64,
            ffn: f as i32,
            act,
        };
        let name = format!("ffn_act_{sx}");
        // SAFETY: rows × width inputs, width biases and rows × f outputs, allocated above.
        unsafe { a.launch(&mut self.dev, &name, ffn_act_grid(rows, f, 256), 256, 0)? };
        let got = self.get(&out, rows * f)?;
        let b = |c: usize| if bias { bh[c] } else { 0.0 };
        let want: Vec<f64> = (0..rows * f)
            .map(|i| {
                let (r, c) = (i / f, i % f);
                let g = gh[r * width + c] + b(c);
                let a = match act {
                    0 => g / (1.0 + (-g).exp()),
                    1 => 0.5 * g * (1.0 + (0.7978845608028654 * (g + 0.044715 * g * g * g)).tanh()),
                    2 => g.max(0.0),
                    _ => 0.5 * g * (1.0 + erf(g / std::f64::consts::SQRT_2)),
                };
                if gated {
                    a * (gh[r * width + f + c] + b(f + c))
                } else {
                    a
                }
            })
            .collect();
        let tol = self.tol();
        let name = ["swiglu", "geglu(tanh)", "relu", "gelu(erf)"][act as usize];
        self.record(
            format!(
                "ffn_act {name}{} {rows}x{f}",
                if bias { " +bias" } else { "" }
            ),
            &got,
            &want,
            tol,
        );
        Ok(())
    }

    pub(crate) fn softcap(&mut self, n: usize, cap: f32) -> Result<()> {
        let (x, xh) = self.rand(n, 4.0 * cap);
        let sx = self.sx();
        let a = Softcap {
            x: x.dptr(),
            n: n as i64,
            cap,
        };
        let grid = grid_for(n, 256, self.dev.sms);
        // SAFETY: x holds n elements.
        unsafe { a.launch(&mut self.dev, &format!("softcap_{sx}"), grid, 256, 0)? };
        let got = self.get(&x, n)?;
        let c = cap as f64;
        let want: Vec<f64> = xh.iter().map(|v| c * (v / c).tanh()).collect();
        let tol = self.tol();
        self.record(format!("final logit softcap {cap} n={n}"), &got, &want, tol);
        Ok(())
    }

    pub(crate) fn argmax(&mut self, rows: usize, v: usize) -> Result<()> {
        let (l, lh) = self.rand(rows * v, 10.0);
        let out = self.ints(&vec![-1; rows]);
        let dst: Vec<i32> = (0..rows as i32).collect();
        let db = self.ints(&dst);
        let sx = self.sx();
        let a = Argmax {
            logits: l.dptr(),
            vocab: v as i32,
            out_tok: out.dptr(),
            dst: db.dptr(),
            next_tok: DevPtr::null(),
            slot: db.dptr(),
        };
        let name = format!("argmax_{sx}");
        // SAFETY: rows × v logits, rows outputs and destinations (0..rows); no next_tok.
        unsafe { a.launch(&mut self.dev, &name, (rows as u32, 1, 1), 1024, 0)? };
        let got: Vec<i32> = self.dev.download(out.slice(0, rows)?)?;
        let mut bad = 0;
        for r in 0..rows {
            let row = &lh[r * v..(r + 1) * v];
            let mut best = 0;
            for i in 1..v {
                if row[i] > row[best] {
                    best = i;
                }
            }
            bad += (got[r] != best as i32) as usize;
        }
        self.checks.push(Check {
            name: format!("argmax {rows}x{v} (mismatches)"),
            rel_err: bad as f64,
            tol: 0.0,
            ok: bad == 0,
        });
        Ok(())
    }
}
