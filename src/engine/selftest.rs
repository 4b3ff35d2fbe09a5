//! GPU self-test: every kernel against a CPU reference on fresh random inputs at several shapes
//! (odd sizes included), outputs poisoned with NaN before each launch so unwritten elements fail.
//! Used by `energy-fit selftest` so users can check their own GPU.
//! The checks live by kernel family: `selftest_layer.rs` (embedding, norms, FFN activation,
//! soft-cap, argmax), `selftest_gemm.rs` (cuBLAS, cuBLASLt, the fused bias + ReLU epilogue),
//! `selftest_attn.rs` (QKV post-processing, attention) and `selftest_attn_tc.rs` (the tensor-core
//! attention kernels).

use super::device::{DType, DevBuf, Device, Epilogue};
use super::selftest_gemm::gemm_name;
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
    /// A failed check named `name()` with the error, for a check whose error must not stop the
    /// others.
    fn failed_check(&mut self, r: Result<()>, name: impl FnOnce() -> String) {
        if let Err(e) = r {
            self.checks.push(Check {
                name: format!("{}: {e:#}", name()),
                rel_err: f64::NAN,
                tol: 0.0,
                ok: false,
            });
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
        // Row widths: one 8-column chunk per thread (2048, Gemma-2-2B's 2304, 3584; 64 and 1000 with
        // the last warp part idle), and rows a block takes in more than one step, whose threads go
        // round twice (9000: 1125 chunks) or three times (2049: one column a step), some once fewer.
        for &(rows, cols) in &[
            (1, 64),
            (7, 1000),
            (33, 2048),
            (5, 3584),
            (17, 2304),
            (3, 9000),
            (3, 2049),
        ] {
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
        // An error in a cuBLASLt check fails that check only; the other checks still run.
        let relu_bias = Epilogue::ReluBias;
        for &(rows, n, k) in &[(1, 64, 64), (37, 192, 256), (130, 1024, 2048)] {
            for ep in [Epilogue::None, relu_bias] {
                let r = self.lt_gemm_candidates(rows, n, k, ep);
                self.failed_check(r, || format!("cublasLt {} {rows}x{n}x{k}", gemm_name(ep)));
            }
        }
        // OPT's fc1 (bias and ReLU in the epilogue) as the forward runs it untuned; 5 x 8192 x 2048
        // is opt-1.3b's at a decode batch of 5.
        for &(rows, n, k) in &[
            (1, 64, 64),
            (37, 192, 256),
            (130, 1024, 2048),
            (5, 8192, 2048),
        ] {
            let r = self.gemm_epilogue(rows, n, k, relu_bias);
            self.failed_check(r, || {
                format!("cublasLt {} {rows}x{n}x{k}", gemm_name(relu_bias))
            });
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
