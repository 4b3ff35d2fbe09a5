//! Self-test of the GEMMs: cublasGemmEx, the fused bias + ReLU epilogue (OPT's fc1) on cuBLASLt's
//! default pick, and every cuBLASLt algorithm GEMM tuning may pick, with and without the epilogue,
//! against the CPU.

use super::device::{DevBuf, Epilogue, Operands, Shape};
use super::selftest::{Check, Tester};
use anyhow::Result;

/// Random operands of one GEMM and its CPU result.
struct Case {
    x: DevBuf,
    w: DevBuf,
    bias: Option<DevBuf>,
    want: Vec<f64>,
}

impl Case {
    fn operands<'a>(&'a self, y: &'a DevBuf) -> Operands<'a> {
        Operands {
            x: self.x.view(),
            w: self.w.view(),
            y: y.view(),
            bias: self.bias.as_ref().map(|b| b.view()),
        }
    }
}

/// The checks' name of a GEMM with epilogue `ep`.
pub(crate) fn gemm_name(ep: Epilogue) -> String {
    format!("gemm{}", ep.suffix())
}

impl Tester {
    /// x, w uniform in [-1, 1] and, for a bias epilogue, a bias as large as a dot product's spread
    /// (√k / 3), so that it moves the ReLU's threshold: a bias on the wrong axis, missing, or added
    /// after the ReLU fails the check. The reference is exact (f64, no rounding).
    fn case(&mut self, rows: usize, n: usize, k: usize, ep: Epilogue) -> Case {
        let (x, xh) = self.rand(rows * k, 1.0);
        let (w, wh) = self.rand(n * k, 1.0);
        let (bias, bh) = match ep {
            Epilogue::None => (None, vec![0.0; n]),
            Epilogue::ReluBias => {
                let (b, bh) = self.rand(n, (k as f32).sqrt() / 3.0);
                (Some(b), bh)
            }
        };
        let want = (0..rows * n)
            .map(|i| {
                let (r, c) = (i / n, i % n);
                let dot: f64 = (0..k).map(|j| xh[r * k + j] * wh[c * k + j]).sum();
                match ep {
                    Epilogue::None => dot,
                    Epilogue::ReluBias => (dot + bh[c]).max(0.0),
                }
            })
            .collect();
        Case { x, w, bias, want }
    }

    pub(crate) fn gemm(&mut self, rows: usize, n: usize, k: usize) -> Result<()> {
        let c = self.case(rows, n, k, Epilogue::None);
        let y = self.poisoned(rows * n);
        self.dev
            .gemm(self.dt, rows, n, k, c.x.view(), c.w.view(), y.view())?;
        let got = self.get(&y, rows * n)?;
        let tol = self.tol();
        self.record(format!("cublas gemm {rows}x{n}x{k}"), &got, &c.want, tol);
        Ok(())
    }

    /// cuBLASLt on, a random case and its shape (this run's dtype, as plans and tuning key it).
    fn lt_case(&mut self, rows: usize, n: usize, k: usize, ep: Epilogue) -> Result<(Case, Shape)> {
        self.dev.enable_lt()?;
        let s = Shape {
            dt: self.dt,
            rows,
            n,
            k,
            ep,
        };
        Ok((self.case(rows, n, k, ep), s))
    }

    /// A GEMM with epilogue `ep` as the forward runs it (`Device::run_gemm`, untuned: cuBLASLt's
    /// default algorithm, planned on first use), against the CPU.
    pub(crate) fn gemm_epilogue(
        &mut self,
        rows: usize,
        n: usize,
        k: usize,
        ep: Epilogue,
    ) -> Result<()> {
        let (c, s) = self.lt_case(rows, n, k, ep)?;
        let y = self.poisoned(rows * n);
        self.dev.run_gemm(s, c.operands(&y))?;
        let got = self.get(&y, rows * n)?;
        let tol = self.tol();
        let name = format!(
            "cublasLt {} {rows}x{n}x{k} (default algorithm)",
            gemm_name(ep)
        );
        self.record(name, &got, &c.want, tol);
        Ok(())
    }

    /// Every algorithm GEMM tuning (lt_gemm.rs) may pick for this shape and epilogue, against the
    /// CPU.
    pub(crate) fn lt_gemm_candidates(
        &mut self,
        rows: usize,
        n: usize,
        k: usize,
        ep: Epilogue,
    ) -> Result<()> {
        let (c, s) = self.lt_case(rows, n, k, ep)?;
        let count = self.dev.lt_gemm()?.candidate_count(s)?;
        let what = gemm_name(ep);
        // No candidate would leave tuning nothing to choose: a failed check, not a silent pass.
        self.checks.push(Check {
            name: format!(
                "cublasLt {what} {rows}x{n}x{k}: {count} algorithms offered (fails at none)"
            ),
            rel_err: (count == 0) as u8 as f64,
            tol: 0.0,
            ok: count > 0,
        });
        for i in 0..count {
            let y = self.poisoned(rows * n);
            self.dev
                .lt_gemm()?
                .run_candidate(&self.dev, s, i, c.operands(&y))?;
            let got = self.get(&y, rows * n)?;
            let tol = self.tol();
            self.record(
                format!(
                    "cublasLt {what} {rows}x{n}x{k} algorithm {} of {count}",
                    i + 1
                ),
                &got,
                &c.want,
                tol,
            );
        }
        Ok(())
    }
}
