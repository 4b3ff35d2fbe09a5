//! Self-test of the GEMMs: cublasGemmEx, and every cuBLASLt algorithm GEMM tuning may pick,
//! against the CPU.

use super::device::Shape;
use super::selftest::{Check, Tester};
use anyhow::Result;

impl Tester {
    pub(crate) fn gemm(&mut self, rows: usize, n: usize, k: usize) -> Result<()> {
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
    pub(crate) fn lt_gemm_candidates(&mut self, rows: usize, n: usize, k: usize) -> Result<()> {
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
}
