//! The GEMMs of the device layer: cublasGemmEx, and the cuBLASLt algorithms `tune_gemm` moves a
//! shape to.

use super::{DType, DevSlice, Device, LtGemm, Shape, Tuned};
use anyhow::{anyhow, Context, Result};
use cudarc::cublas::{result as blas_result, sys as blas_sys};
use std::ffi::c_void;

impl Device {
    /// y[rows, n] = x[rows, k] · W[n, k]ᵀ, all row-major, `dt` storage, fp32 accumulation: on the
    /// cuBLASLt algorithm `tune_gemm` chose for this shape, else cublasGemmEx. cuBLASLt's heuristic
    /// assumes 256-byte aligned operands (the forward's are whole allocations); others fall back.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        dt: DType,
        rows: usize,
        n: usize,
        k: usize,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<()> {
        let s = Shape { dt, rows, n, k };
        s.check(x, w, y)?;
        match &self.lt {
            Some(lt)
                if rows > 0
                    && (x.addr() | w.addr() | y.addr()).is_multiple_of(256)
                    && lt.has(s) =>
            {
                self.timed(|| format!("gemm {n}x{k}"), || lt.run(self, s, x, w, y))
            }
            _ => self.gemm_ex(dt, rows, n, k, x, w, y),
        }
    }

    /// Let `tune_gemm` move shapes to cuBLASLt (idempotent).
    pub fn enable_gemm_tuning(&mut self) -> Result<()> {
        if self.lt.is_none() {
            self.lt = Some(LtGemm::new(self)?);
        }
        Ok(())
    }

    /// Time cublasGemmEx against cuBLASLt's candidates for this shape on (x, w, y) (y overwritten)
    /// and run the shape on the fastest from now on. Needs `enable_gemm_tuning` first.
    #[allow(clippy::too_many_arguments)]
    pub fn tune_gemm(
        &mut self,
        dt: DType,
        rows: usize,
        n: usize,
        k: usize,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<Tuned> {
        let mut lt = self
            .lt
            .take()
            .ok_or_else(|| anyhow!("tune_gemm before enable_gemm_tuning"))?;
        let r = lt.tune(self, Shape { dt, rows, n, k }, x, w, y);
        self.lt = Some(lt);
        r
    }

    /// The cuBLASLt side (after `enable_gemm_tuning`).
    pub fn lt_gemm(&self) -> Result<&LtGemm> {
        self.lt
            .as_ref()
            .ok_or_else(|| anyhow!("cuBLASLt used before enable_gemm_tuning"))
    }

    /// This shape has been tuned (to cuBLASLt or to cublasGemmEx); false without tuning.
    pub fn gemm_tuned(&self, dt: DType, rows: usize, n: usize, k: usize) -> bool {
        self.lt
            .as_ref()
            .is_some_and(|l| l.tried(Shape { dt, rows, n, k }))
    }

    /// cublasGemmEx with cuBLAS's default algorithm (what `gemm` runs for an untuned shape).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_ex(
        &self,
        dt: DType,
        rows: usize,
        n: usize,
        k: usize,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<()> {
        Shape { dt, rows, n, k }.check(x, w, y)?;
        if rows == 0 {
            return Ok(());
        }
        // Named by the weight's shape (n × k): one name per projection, whatever the row count.
        self.timed(
            || format!("gemm {n}x{k}"),
            || {
                let (alpha, beta) = (1.0f32, 0.0f32);
                // SAFETY: x, w, y are live device views holding rows·k, n·k and rows·n elements
                // (Shape::check above); cuBLAS reads and writes only those.
                unsafe {
                    blas_result::gemm_ex(
                        *self.blas.handle(),
                        blas_sys::cublasOperation_t::CUBLAS_OP_T,
                        blas_sys::cublasOperation_t::CUBLAS_OP_N,
                        n as i32,
                        rows as i32,
                        k as i32,
                        &alpha as *const f32 as *const c_void,
                        w.addr() as *const c_void,
                        dt.cuda(),
                        k as i32,
                        x.addr() as *const c_void,
                        dt.cuda(),
                        k as i32,
                        &beta as *const f32 as *const c_void,
                        y.addr() as *mut c_void,
                        dt.cuda(),
                        n as i32,
                        blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                        blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                    )
                }
                .with_context(|| format!("cublasGemmEx {rows}x{n}x{k}"))
            },
        )
    }
}
