//! GPU self-test: every kernel against a CPU reference on fresh random inputs at several shapes
//! (odd sizes included), outputs poisoned with NaN before each launch so unwritten elements fail.
//! Used by `energy-fit selftest` so users can check their own GPU.

use super::device::{grid_for, Arg, DType, DevBuf, Device};
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
        Ok(Tester { dev: Device::new(0)?, dt, rng: StdRng::seed_from_u64(seed), checks: Vec::new() })
    }
    /// Random values, rounded to the dtype (host copy returned as f64).
    pub(crate) fn rand(&mut self, n: usize, scale: f32) -> (DevBuf, Vec<f64>) {
        let v: Vec<f32> = (0..n).map(|_| self.rng.random_range(-1.0f32..1.0) * scale).collect();
        self.put(&v)
    }
    fn put(&mut self, v: &[f32]) -> (DevBuf, Vec<f64>) {
        let bits: Vec<u16> = v.iter().map(|&x| self.dt.encode(x)).collect();
        let b = self.dev.alloc(bits.len().max(1) * 2).expect("alloc");
        self.dev.upload(b.ptr, &bits).expect("upload");
        (b, bits.iter().map(|&x| self.dt.decode(x) as f64).collect())
    }
    pub(crate) fn poisoned(&mut self, n: usize) -> DevBuf {
        let b = self.dev.alloc(n.max(1) * 2).expect("alloc");
        self.dev.upload(b.ptr, &vec![0xFFFFu16; n]).expect("poison");
        b
    }
    pub(crate) fn ints(&mut self, v: &[i32]) -> DevBuf {
        let b = self.dev.alloc(v.len().max(1) * 4).expect("alloc");
        self.dev.upload(b.ptr, v).expect("upload");
        b
    }
    pub(crate) fn get(&self, b: &DevBuf, n: usize) -> Result<Vec<f32>> {
        let raw: Vec<u16> = self.dev.download(b.ptr, n)?;
        Ok(raw.iter().map(|&x| self.dt.decode(x)).collect())
    }
    pub(crate) fn record(&mut self, name: String, got: &[f32], want: &[f64], tol: f64) {
        let e = rel_err(got, want);
        self.checks.push(Check { name, rel_err: e, tol, ok: e <= tol });
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
        for &(v, h, t) in &[(1000usize, 64usize, 7usize), (50257, 80, 33), (128256, 2048, 5)] {
            self.embed(v, h, t)?;
        }
        for &(rows, cols) in &[(1, 64), (7, 1000), (33, 2048), (5, 3584)] {
            for mode in 0..3 {
                self.norm(rows, cols, mode)?;
            }
        }
        for &(rows, cols) in &[(3, 5), (17, 1000), (64, 4096)] {
            self.bias(rows, cols)?;
        }
        for &(rows, f) in &[(1, 64), (9, 1001), (33, 8192)] {
            self.glu(rows, f, 0)?;
            self.glu(rows, f, 1)?;
        }
        for &(rows, n, k) in &[(1, 64, 64), (7, 333, 129), (130, 1024, 2048)] {
            self.gemm(rows, n, k)?;
        }
        for &(rows, v) in &[(1, 10), (5, 32000), (3, 128256)] {
            self.argmax(rows, v)?;
        }
        for &(h, kv, hd) in &[(4, 2, 16), (6, 2, 64), (32, 8, 64), (12, 2, 128), (8, 8, 80), (8, 4, 256)] {
            self.qkv_post(h, kv, hd, &[1, 37, 70])?;
            self.attention(h, kv, hd, &[1, 37, 70, 300], false)?;
            self.attention(h, kv, hd, &[1, 37, 70, 1500], true)?;
        }
        Ok(())
    }

    fn embed(&mut self, vocab: usize, h: usize, t: usize) -> Result<()> {
        let (tab, th) = self.rand(vocab * h, 1.0);
        let ids: Vec<i32> = (0..t).map(|_| self.rng.random_range(0..vocab as i32)).collect();
        let mut src = ids.clone();
        src[0] = -2; // take next_tok[1]
        let next = self.ints(&[0, ids[0], 0]);
        let sb = self.ints(&src);
        let out = self.poisoned(t * h);
        let sx = self.sx();
        self.dev.launch(&format!("embed_{sx}"), (t as u32, 1, 1), 256, 0, &[Arg::P(out.ptr), Arg::P(tab.ptr), Arg::P(sb.ptr), Arg::P(next.ptr), Arg::I(h as i32), Arg::F(1.0)])?;
        let got = self.get(&out, t * h)?;
        let want: Vec<f64> = ids.iter().flat_map(|&i| th[i as usize * h..(i as usize + 1) * h].to_vec()).collect();
        self.record(format!("embed v={vocab} h={h} t={t}"), &got, &want, 0.0);
        Ok(())
    }

    fn norm(&mut self, rows: usize, cols: usize, mode: i32) -> Result<()> {
        let (res, rh) = self.rand(rows * cols, 2.0);
        let (add, ah) = self.rand(rows * cols, 1.0);
        let (w, wh) = self.rand(cols, 1.0);
        let (bb, bh) = self.rand(cols, 0.5);
        let out = self.poisoned(rows * cols);
        let eps = 1e-5f32;
        let sx = self.sx();
        let a = [Arg::P(res.ptr), Arg::P(add.ptr), Arg::P(w.ptr), Arg::P(bb.ptr), Arg::P(out.ptr), Arg::I(cols as i32), Arg::F(eps), Arg::I(mode)];
        self.dev.launch(&format!("norm_residual_{sx}"), (rows as u32, 1, 1), 256, (cols * 4) as u32, &a)?;
        let got = self.get(&out, rows * cols)?;
        let got_res = self.get(&res, rows * cols)?;
        let mut want = vec![0.0; rows * cols];
        let mut want_res = vec![0.0; rows * cols];
        for r in 0..rows {
            let x: Vec<f64> = (0..cols).map(|i| rh[r * cols + i] + ah[r * cols + i]).collect();
            let mean = if mode == 2 { x.iter().sum::<f64>() / cols as f64 } else { 0.0 };
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
        self.record(format!("norm_residual mode={mode} {rows}x{cols}"), &got, &want, tol);
        self.record(format!("norm_residual mode={mode} residual {rows}x{cols}"), &got_res, &want_res, tol);
        Ok(())
    }

    fn bias(&mut self, rows: usize, cols: usize) -> Result<()> {
        let (x, xh) = self.rand(rows * cols, 1.0);
        let (b, bh) = self.rand(cols, 1.0);
        let sx = self.sx();
        self.dev.launch(&format!("bias_add_{sx}"), grid_for(rows * cols, 256), 256, 0, &[Arg::P(x.ptr), Arg::P(b.ptr), Arg::L(rows as i64), Arg::I(cols as i32)])?;
        let got = self.get(&x, rows * cols)?;
        let want: Vec<f64> = (0..rows * cols).map(|i| xh[i] + bh[i % cols]).collect();
        let tol = self.tol();
        self.record(format!("bias_add {rows}x{cols}"), &got, &want, tol);
        Ok(())
    }

    fn glu(&mut self, rows: usize, f: usize, act: i32) -> Result<()> {
        let (gu, gh) = self.rand(rows * 2 * f, 3.0);
        let out = self.poisoned(rows * f);
        let sx = self.sx();
        self.dev.launch(&format!("glu_{sx}"), grid_for(rows * f, 256), 256, 0, &[Arg::P(out.ptr), Arg::P(gu.ptr), Arg::L(rows as i64), Arg::I(f as i32), Arg::I(act)])?;
        let got = self.get(&out, rows * f)?;
        let want: Vec<f64> = (0..rows * f)
            .map(|i| {
                let (r, c) = (i / f, i % f);
                let (g, u) = (gh[r * 2 * f + c], gh[r * 2 * f + f + c]);
                let a = if act == 0 { g / (1.0 + (-g).exp()) } else { 0.5 * g * (1.0 + (0.7978845608028654 * (g + 0.044715 * g * g * g)).tanh()) };
                a * u
            })
            .collect();
        let tol = self.tol();
        self.record(format!("{} {rows}x{f}", if act == 0 { "swiglu" } else { "geglu" }), &got, &want, tol);
        Ok(())
    }

    fn gemm(&mut self, rows: usize, n: usize, k: usize) -> Result<()> {
        let (x, xh) = self.rand(rows * k, 1.0);
        let (w, wh) = self.rand(n * k, 1.0);
        let y = self.poisoned(rows * n);
        self.dev.gemm(self.dt, rows, n, k, x.ptr, w.ptr, y.ptr)?;
        let got = self.get(&y, rows * n)?;
        let want: Vec<f64> = (0..rows * n).map(|i| (0..k).map(|j| xh[(i / n) * k + j] * wh[(i % n) * k + j]).sum()).collect();
        let tol = self.tol();
        self.record(format!("cublas gemm {rows}x{n}x{k}"), &got, &want, tol);
        Ok(())
    }

    fn argmax(&mut self, rows: usize, v: usize) -> Result<()> {
        let (l, lh) = self.rand(rows * v, 10.0);
        let out = self.ints(&vec![-1; rows]);
        let dst: Vec<i32> = (0..rows as i32).collect();
        let db = self.ints(&dst);
        let sx = self.sx();
        self.dev.launch(&format!("argmax_{sx}"), (rows as u32, 1, 1), 1024, 0, &[Arg::P(l.ptr), Arg::I(v as i32), Arg::P(out.ptr), Arg::P(db.ptr), Arg::P(0), Arg::P(db.ptr)])?;
        let got: Vec<i32> = self.dev.download(out.ptr, rows)?;
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
        self.checks.push(Check { name: format!("argmax {rows}x{v} (mismatches)"), rel_err: bad as f64, tol: 0.0, ok: bad == 0 });
        Ok(())
    }
}
