//! The GEMMs of the device layer: cublasGemmEx, and cuBLASLt for the shapes `tune_gemm` moves to
//! it and for GEMMs with a fused epilogue.

use super::{DType, DevSlice, Device, Epilogue, LtGemm, Operands, Shape, Tuned};
use anyhow::{anyhow, bail, Context, Result};
use cudarc::cublas::{result as blas_result, sys as blas_sys};
use std::ffi::c_void;

impl Device {
    /// y[rows, n] = x[rows, k] · W[n, k]ᵀ, all row-major, `dt` storage, fp32 accumulation, without
    /// an epilogue (`run_gemm`).
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
        self.run_gemm(Shape::plain(dt, rows, n, k), Operands::plain(x, w, y))
    }

    /// The GEMM `s` on `o`: on the cuBLASLt algorithm `tune_gemm` chose for this shape, else
    /// cublasGemmEx. cuBLASLt's heuristic assumes 256-byte aligned operands (the forward's are
    /// whole allocations); others fall back. A fused epilogue has no cublasGemmEx form: it runs on
    /// cuBLASLt (`enable_lt` first) with aligned operands, or fails.
    pub fn run_gemm(&self, s: Shape, o: Operands<'_>) -> Result<()> {
        s.check(&o)?;
        if s.ep != Epilogue::None {
            if s.rows == 0 {
                return Ok(());
            }
            if !o.aligned() {
                bail!(
                    "GEMM {}x{}x{} with epilogue {:?}: operands not 256-byte aligned",
                    s.rows,
                    s.n,
                    s.k,
                    s.ep
                );
            }
            let lt = self.lt_gemm()?;
            return self.timed(|| s.label(), || lt.run(self, s, o));
        }
        match &self.lt {
            Some(lt) if s.rows > 0 && o.aligned() && lt.has(s) => {
                self.timed(|| s.label(), || lt.run(self, s, o))
            }
            _ => self.gemm_ex(s.dt, s.rows, s.n, s.k, o.x, o.w, o.y),
        }
    }

    /// cuBLASLt on: `tune_gemm` may move shapes to it, and GEMMs with a fused epilogue run on it
    /// (idempotent).
    pub fn enable_lt(&mut self) -> Result<()> {
        if self.lt.is_none() {
            self.lt = Some(LtGemm::new(self)?);
        }
        Ok(())
    }

    /// Time what shape `s` runs untuned against cuBLASLt's candidates on `o` (y overwritten) and
    /// run the shape on the fastest from now on. Needs `enable_lt` first.
    pub fn tune_gemm(&mut self, s: Shape, o: Operands<'_>) -> Result<Tuned> {
        let mut lt = self
            .lt
            .take()
            .ok_or_else(|| anyhow!("tune_gemm before enable_lt"))?;
        let r = lt.tune(self, s, o);
        self.lt = Some(lt);
        r
    }

    /// The cuBLASLt side (after `enable_lt`).
    pub fn lt_gemm(&self) -> Result<&LtGemm> {
        self.lt
            .as_ref()
            .ok_or_else(|| anyhow!("cuBLASLt used before enable_lt"))
    }

    /// This shape has been tuned (to cuBLASLt or to cublasGemmEx); false without tuning.
    pub fn gemm_tuned(&self, s: Shape) -> bool {
        self.lt.as_ref().is_some_and(|l| l.tried(s))
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
        let s = Shape::plain(dt, rows, n, k);
        s.check(&Operands::plain(x, w, y))?;
        if rows == 0 {
            return Ok(());
        }
        self.timed(
            || s.label(),
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
