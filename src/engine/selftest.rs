//! GPU self-test: every kernel against a CPU reference on fresh random inputs at several shapes
//! (odd sizes included), outputs poisoned with NaN before each launch so unwritten elements fail.
//! Used by `energy-fit selftest` so users can check their own GPU.

use super::device::{
    extra_nvrtc_options, ffn_act_grid, grid_for, DType, DevBuf, DevPtr, Device, Shape,
};
use super::launches::{Argmax, Embed, FfnAct, NormResidual, Softcap};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One check's outcome.
pub struct Check {
    pub name: String,
    pub rel_err: f64,
    pub tol: f64,
    pub ok: bool,
}

/// Attention variants: Gemma-2's soft-cap, sliding window and query scale, falcon's ALiBi.
#[derive(Clone, Copy, Default, Debug)]
pub struct AttnOpts {
    pub softcap: f32,
    /// 0: none.
    pub window: usize,
    pub alibi: bool,
    /// None: head_dim^-0.5.
    pub scale: Option<f32>,
    /// Prefill on the tensor-core kernel (attention_tc.cu).
    pub tc: bool,
}

/// erf to ~1e-7 (Abramowitz–Stegun 7.1.26 is too coarse for a reference): series / continued fraction.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        // Maclaurin series: 2/sqrt(pi) Σ (-1)^k x^(2k+1) / (k! (2k+1))
        let (mut term, mut sum, mut k) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            k += 1.0;
            term *= -a * a / k;
            sum += term / (2.0 * k + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz), converges fast for a >= 3
        let mut f = a;
        let (mut c, mut d) = (a, 0.0);
        for n in 1..200 {
            let an = n as f64 / 2.0;
            d = 1.0 / (a + an * d);
            c = a + an / c;
            f *= c * d;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

pub struct Tester {
    pub dev: Device,
    pub dt: DType,
    pub(crate) rng: StdRng,
    pub checks: Vec<Check>,
}

/// ‖a − b‖ / ‖b‖; infinite when a holds a non-finite value.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        if !x.is_finite() {
            return f64::INFINITY;
        }
        num += (*x as f64 - y) * (*x as f64 - y);
        den += y * y;
    }
    (num / den.max(1e-300)).sqrt()
}

impl Tester {
    pub fn new(dt: DType, seed: u64) -> Result<Tester> {
        Ok(Tester {
            dev: Device::new(0)?,
            dt,
            rng: StdRng::seed_from_u64(seed),
            checks: Vec::new(),
        })
    }
    /// Random values, rounded to the dtype (host copy returned as f64).
    pub(crate) fn rand(&mut self, n: usize, scale: f32) -> (DevBuf, Vec<f64>) {
        let v: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-1.0f32..1.0) * scale)
            .collect();
        self.put(&v)
    }
    fn put(&mut self, v: &[f32]) -> (DevBuf, Vec<f64>) {
        let bits: Vec<u16> = v.iter().map(|&x| self.dt.encode(x)).collect();
        let b = self.dev.alloc(bits.len().max(1) * 2).expect("alloc");
        self.dev.upload(b.view(), &bits).expect("upload");
        (b, bits.iter().map(|&x| self.dt.decode(x) as f64).collect())
    }
    pub(crate) fn poisoned(&mut self, n: usize) -> DevBuf {
        let b = self.dev.alloc(n.max(1) * 2).expect("alloc");
        self.dev
            .upload(b.view(), &vec![0xFFFFu16; n])
            .expect("poison");
        b
    }
    pub(crate) fn ints(&mut self, v: &[i32]) -> DevBuf {
        let b = self.dev.alloc(v.len().max(1) * 4).expect("alloc");
        self.dev.upload(b.view(), v).expect("upload");
        b
    }
    pub(crate) fn get(&self, b: &DevBuf, n: usize) -> Result<Vec<f32>> {
        let raw: Vec<u16> = self.dev.download(b.slice(0, n)?)?;
        Ok(raw.iter().map(|&x| self.dt.decode(x)).collect())
    }
    pub(crate) fn record(&mut self, name: String, got: &[f32], want: &[f64], tol: f64) {
        let e = rel_err(got, want);
        self.checks.push(Check {
            name,
            rel_err: e,
            tol,
            ok: e <= tol,
        });
    }
    pub(crate) fn tol(&self) -> f64 {
        match self.dt {
            DType::Bf16 => 1.5e-2,
            DType::F16 => 3e-3,
        }
    }
    pub(crate) fn sx(&self) -> &'static str {
        self.dt.suffix()
    }

    /// Run every kernel check.
    pub fn run_all(&mut self) -> Result<()> {
        // (vocab, hidden, tokens, scale, learned positions): plain, OPT, Gemma (scale sqrt(hidden)).
        for &(v, h, t, sc, lp) in &[
            (1000usize, 64usize, 7usize, 1.0f32, false),
            (50257, 80, 33, 1.0, false),
            (128256, 2048, 5, 1.0, false),
            (50272, 768, 9, 1.0, true),
            (301, 80, 33, 1.0, true),
            (256000, 2304, 6, 48.0, false),
            (999, 96, 5, 9.797959, false),
        ] {
            self.embed(v, h, t, sc, lp)?;
        }
        for &(rows, cols) in &[(1, 64), (7, 1000), (33, 2048), (5, 3584)] {
            for mode in 0..3 {
                self.norm(rows, cols, mode, false, false)?;
                self.norm(rows, cols, mode, true, false)?; // bias of the added projection (OPT, falcon)
            }
            self.norm(rows, cols, 1, false, true)?; // Gemma-2 post-norm of the added branch
            self.norm(rows, cols, 0, false, true)?;
        }
        for &(rows, f) in &[(1, 64), (9, 1001), (33, 8192)] {
            for act in 0..4 {
                self.ffn_act(rows, f, act, false)?;
                self.ffn_act(rows, f, act, true)?;
            }
        }
        for &(n, cap) in &[(7usize, 30.0f32), (3 * 256000, 30.0), (1001, 5.0)] {
            self.softcap(n, cap)?;
        }
        for &(rows, n, k) in &[(1, 64, 64), (7, 333, 129), (130, 1024, 2048)] {
            self.gemm(rows, n, k)?;
        }
        for &(rows, n, k) in &[(1, 64, 64), (37, 192, 256), (130, 1024, 2048)] {
            // An error here fails this check only: GEMM tuning is optional, the other checks still run.
            if let Err(e) = self.lt_gemm_candidates(rows, n, k) {
                self.checks.push(Check {
                    name: format!("cublasLt gemm {rows}x{n}x{k}: {e:#}"),
                    rel_err: f64::NAN,
                    tol: 0.0,
                    ok: false,
                });
            }
        }
        for &(rows, v) in &[(1, 10), (5, 32000), (3, 128256), (2, 50257)] {
            self.argmax(rows, v)?;
        }
        let plain = AttnOpts::default();
        for &(h, kv, hd) in &[
            (4, 2, 16),
            (6, 2, 64),
            (32, 8, 64),
            (12, 2, 128),
            (8, 8, 80),
            (8, 4, 256),
        ] {
            self.qkv_post(h, kv, hd, &[1, 37, 70])?;
            self.attention(h, kv, hd, &[1, 37, 70, 300], false, plain)?;
            self.attention(h, kv, hd, &[1, 37, 70, 1500], true, plain)?;
        }
        // Gemma-2: soft-capping (small caps so tanh bends), query_pre_attn_scalar scale, sliding window
        // (odd, smaller and larger than a 32-key tile, and beyond the sequence).
        for &(h, kv, hd, cap, win) in &[
            (8, 4, 256, 50.0f32, 4096usize),
            (8, 4, 256, 2.0, 37),
            (4, 2, 64, 1.5, 100),
            (6, 3, 32, 0.0, 7),
            (4, 4, 16, 3.0, 64),
        ] {
            let o = AttnOpts {
                softcap: cap,
                window: win,
                alibi: false,
                scale: Some(1.0 / 12.0),
                tc: false,
            };
            self.attention(h, kv, hd, &[1, 37, 70, 300], false, o)?;
            self.attention(h, kv, hd, &[1, 37, 70, 1500], true, o)?;
        }
        // falcon: ALiBi (64 heads of 64 as falcon-rw-7b; 6 heads for the non-power-of-two slopes).
        for &(h, hd) in &[(64usize, 64usize), (6, 64), (5, 80)] {
            let o = AttnOpts {
                alibi: true,
                ..plain
            };
            self.attention(h, h, hd, &[1, 37, 70, 300], false, o)?;
            self.attention(h, h, hd, &[1, 37, 70, 1500], true, o)?;
        }
        self.attention_tc_checks()
    }

    /// The tensor-core prefill and decode kernels: GQA groups 1 / 3 / 4 / 8 / 16, every head dim, odd lengths
    /// (partial pages, partial 64-row blocks, several items per sequence), window / soft-cap / ALiBi.
    fn attention_tc_checks(&mut self) -> Result<()> {
        // The host plans prefill items with the rows (and launches the threads and shared memory)
        // the kernels were compiled with; without a variant those must be the CPU side's defaults
        // (attn_shapes::tc_rows and tcd_smem, which its tests use, and 4 warps; 9 for
        // attention_ws.cu, which sm_90a builds at hd 64 and 128).
        if extra_nvrtc_options().is_empty() {
            for hd in super::forward::HEAD_DIMS {
                let got = self.dev.tc_rows(self.sx(), hd)? as f32;
                self.record(
                    format!(
                        "attention_tc rows per block at hd {hd}: compiled vs attn_shapes::tc_rows"
                    ),
                    &[got],
                    &[super::attn_shapes::tc_rows(hd) as f64],
                    0.0,
                );
                let threads = self.dev.tc_threads(self.sx(), hd)? as f32;
                // attention_ws, and decode's TMA loads, on sm_90a at hd 64 and 128.
                let ws = self.dev.arch == "sm_90a" && (hd == 64 || hd == 128);
                let warps = if ws { 9 } else { 4 };
                self.record(
                    format!("attention_tc threads per block at hd {hd}: compiled vs {warps} warps"),
                    &[threads],
                    &[32.0 * warps as f64],
                    0.0,
                );
                let smem = self.dev.tcd_smem(self.sx(), hd)? as f32;
                self.record(format!("attention_tcd shared memory at hd {hd}: compiled vs attn_shapes::tcd_smem (TMA {ws})"), &[smem], &[super::attn_shapes::tcd_smem(hd, ws) as f64], 0.0);
            }
        }
        let tc = AttnOpts {
            tc: true,
            ..AttnOpts::default()
        };
        let lens: &[usize] = &[1, 17, 100, 333];
        for &(h, kv, hd) in &[
            (8, 8, 64),
            (32, 8, 64),
            (16, 2, 64),
            (6, 2, 64),
            (32, 2, 64),
            (8, 2, 80),
            (8, 1, 80),
            (4, 4, 96),
            (12, 3, 128),
            (16, 2, 128),
            (8, 4, 256),
            (4, 4, 16),
            (8, 2, 32),
        ] {
            self.attention(h, kv, hd, lens, false, tc)?;
        }
        self.attention(16, 4, 128, &[700, 5, 1029], false, tc)?; // many items per sequence
        for &(h, kv, hd, cap, win) in &[
            (8, 4, 256, 50.0f32, 4096usize),
            (8, 4, 256, 2.0, 37),
            (4, 2, 64, 1.5, 100),
            (6, 3, 32, 0.0, 7),
            (16, 2, 128, 0.0, 65),
            (8, 1, 80, 3.0, 200),
        ] {
            let o = AttnOpts {
                softcap: cap,
                window: win,
                scale: Some(1.0 / 12.0),
                ..tc
            };
            self.attention(h, kv, hd, lens, false, o)?;
        }
        for &(h, hd) in &[(64usize, 64usize), (6, 64), (5, 80), (4, 128)] {
            self.attention(h, h, hd, lens, false, AttnOpts { alibi: true, ..tc })?;
        }
        // Decode kernel: groups 1…16, every head dim, contexts across page and 64-key tile edges,
        // single items and split partials (sequence s is split min(tiles, s + 1) ways).
        let dlens: &[usize] = &[1, 37, 64, 70, 1500, 4097];
        for &(h, kv, hd) in &[
            (8, 8, 64),
            (32, 8, 64),
            (28, 4, 128),
            (12, 2, 128),
            (32, 2, 64),
            (8, 1, 80),
            (4, 4, 96),
            (8, 4, 256),
            (4, 4, 16),
            (8, 2, 32),
        ] {
            self.attention(h, kv, hd, dlens, true, tc)?;
        }
        for &(h, kv, hd, cap, win) in &[
            (8, 4, 256, 50.0f32, 4096usize),
            (8, 4, 256, 30.0, 37),
            (4, 2, 64, 0.0, 100),
            (8, 1, 80, 3.0, 200),
        ] {
            self.attention(
                h,
                kv,
                hd,
                dlens,
                true,
                AttnOpts {
                    softcap: cap,
                    window: win,
                    scale: Some(1.0 / 12.0),
                    ..tc
                },
            )?;
        }
        for &(h, hd) in &[(32usize, 64usize), (5, 80)] {
            self.attention(h, h, hd, dlens, true, AttnOpts { alibi: true, ..tc })?;
        }
        Ok(())
    }

    fn embed(&mut self, vocab: usize, h: usize, t: usize, scale: f32, learned: bool) -> Result<()> {
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

    fn norm(
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
        // SAFETY: rows × cols matrices and cols-long vectors, allocated above.
        unsafe {
            a.launch(
                &mut self.dev,
                &name,
                (rows as u32, 1, 1),
                256,
                (cols * 4) as u32,
            )?
        };
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

    fn ffn_act(&mut self, rows: usize, f: usize, act: i32, bias: bool) -> Result<()> {
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

    fn softcap(&mut self, n: usize, cap: f32) -> Result<()> {
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

    fn gemm(&mut self, rows: usize, n: usize, k: usize) -> Result<()> {
        let (x, xh) = self.rand(rows * k, 1.0);
        let (w, wh) = self.rand(n * k, 1.0);
        let y = self.poisoned(rows * n);
        self.dev
            .gemm(self.dt, rows, n, k, x.view(), w.view(), y.view())?;
        let got = self.get(&y, rows * n)?;
        let want: Vec<f64> = (0..rows * n)
            .map(|i| {
                (0..k)
                    .map(|j| xh[(i / n) * k + j] * wh[(i % n) * k + j])
                    .sum()
            })
            .collect();
        let tol = self.tol();
        self.record(format!("cublas gemm {rows}x{n}x{k}"), &got, &want, tol);
        Ok(())
    }

    /// Every algorithm GEMM tuning (lt_gemm.rs) may pick for this shape, against the CPU.
    fn lt_gemm_candidates(&mut self, rows: usize, n: usize, k: usize) -> Result<()> {
        self.dev.enable_gemm_tuning()?;
        let (x, xh) = self.rand(rows * k, 1.0);
        let (w, wh) = self.rand(n * k, 1.0);
        let want: Vec<f64> = (0..rows * n)
            .map(|i| {
                (0..k)
                    .map(|j| xh[(i / n) * k + j] * wh[(i % n) * k + j])
                    .sum()
            })
            .collect();
        let s = Shape {
            dt: self.dt,
            rows,
            n,
            k,
        };
        let count = self.dev.lt_gemm()?.candidate_count(s)?;
        // No candidate would leave tuning nothing to choose: a failed check, not a silent pass.
        self.checks.push(Check {
            name: format!(
                "cublasLt gemm {rows}x{n}x{k}: {count} algorithms offered (fails at none)"
            ),
            rel_err: (count == 0) as u8 as f64,
            tol: 0.0,
            ok: count > 0,
        });
        for i in 0..count {
            let y = self.poisoned(rows * n);
            self.dev
                .lt_gemm()?
                .run_candidate(&self.dev, s, i, x.view(), w.view(), y.view())?;
            let got = self.get(&y, rows * n)?;
            let tol = self.tol();
            self.record(
                format!(
                    "cublasLt gemm {rows}x{n}x{k} algorithm {} of {count}",
                    i + 1
                ),
                &got,
                &want,
                tol,
            );
        }
        Ok(())
    }

    fn argmax(&mut self, rows: usize, v: usize) -> Result<()> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn erf_reference_is_accurate() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (-2.0, -0.9953222650189527),
            (2.9, 0.9999589021219005),
            (3.5, 0.9999992569016276),
        ] {
            assert!(
                (super::erf(x) - want).abs() < 1e-12,
                "erf({x}) = {} want {want}",
                super::erf(x)
            );
        }
    }
}
