//! GEMMs through cuBLASLt with the algorithm picked by timing (`EngineOptions::gemm_tune`).
//! cublasGemmEx runs cuBLAS's heuristic pick for each shape. For the skinny GEMMs of decode (rows =
//! batch, ~100–1000) that pick can leave SMs idle: at batch 256, llama-3.1-8b's o and down
//! projections have 64 output tiles of 128 × 128 for 132 SMs and ran at 1.45–1.7× their floor
//! (docs/performance.md), where a split-K or stream-K kernel would fill the machine. Tuning asks
//! cuBLASLt's heuristic for its first CANDIDATES algorithms for one (dtype, rows, n, k), times each
//! against cublasGemmEx on the forward's own buffers, and keeps the fastest; a shape where
//! cublasGemmEx wins (or cannot be beaten by more than the noise margin) keeps cublasGemmEx.

use super::device::{elapsed_ms, DType, DevBuf, DevSlice, Device};
use anyhow::{anyhow, bail, Context, Result};
use cudarc::cublaslt::{result as lt, sys as lt_sys};
use std::collections::{HashMap, HashSet};
use std::ffi::c_void;

/// Algorithms asked of cuBLASLt's heuristic per shape.
const CANDIDATES: usize = 8;
/// Timed launches per candidate (after one untimed).
const REPS: usize = 3;
/// A cuBLASLt algorithm replaces cublasGemmEx only when at least this much faster (timing noise).
const MARGIN: f64 = 0.97;
/// Workspace for split-K reductions (NVIDIA's Hopper recommendation, as for cublasGemmEx).
const WORKSPACE: usize = 32 << 20;

/// One GEMM shape: y[rows × n] = x[rows × k] · w[n × k]ᵀ, row-major.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Shape {
    pub dt: DType,
    pub rows: usize,
    pub n: usize,
    pub k: usize,
}

impl Shape {
    /// The operands hold the shape: x rows·k, w n·k, y rows·n elements (16-bit storage).
    pub fn check(
        &self,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<()> {
        let (rows, n, k) = (self.rows, self.n, self.k);
        for (what, have, need) in [
            ("x", x.len(), rows * k),
            ("w", w.len(), n * k),
            ("y", y.len(), rows * n),
        ] {
            if have < need {
                bail!("GEMM {rows}x{n}x{k}: operand {what} holds {have} elements, {need} needed");
            }
        }
        Ok(())
    }
}

/// What tuning one shape found (per launch, milliseconds).
#[derive(Clone, Copy, Debug)]
pub struct Tuned {
    pub gemm_ex_ms: f64,
    /// Time of what the shape now runs: the chosen cuBLASLt algorithm's, else `gemm_ex_ms`.
    pub chosen_ms: f64,
    /// The shape now runs on cuBLASLt.
    pub lt_chosen: bool,
}

/// cuBLASLt's descriptors of one shape. In its column-major terms y is D[n × rows] = Wᵀ · X with
/// W stored k × n (transposed by the op) and X stored k × rows, as in `Device::gemm_ex`.
struct Plan {
    desc: lt_sys::cublasLtMatmulDesc_t,
    a: lt_sys::cublasLtMatrixLayout_t,
    b: lt_sys::cublasLtMatrixLayout_t,
    d: lt_sys::cublasLtMatrixLayout_t,
    algo: lt_sys::cublasLtMatmulAlgo_t,
}

impl Plan {
    fn new(s: Shape) -> Result<Plan> {
        let e =
            |what: &'static str| move || format!("cuBLASLt {what} for {}x{}x{}", s.rows, s.n, s.k);
        let desc = lt::create_matmul_desc(
            lt_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            lt_sys::cudaDataType::CUDA_R_32F,
        )
        .with_context(e("matmul descriptor"))?;
        let mut p = Plan {
            desc,
            a: std::ptr::null_mut(),
            b: std::ptr::null_mut(),
            d: std::ptr::null_mut(),
            algo: lt_sys::cublasLtMatmulAlgo_t { data: [0; 8] },
        };
        let (op_t, op_n) = (
            cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T as i32,
            cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N as i32,
        );
        for (attr, v) in [
            (
                lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                op_t,
            ),
            (
                lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                op_n,
            ),
        ] {
            // SAFETY: desc is live; the attribute is an i32 (cublasOperation_t).
            unsafe {
                lt::set_matmul_desc_attribute(p.desc, attr, &v as *const i32 as *const c_void, 4)
            }
            .with_context(e("transpose attribute"))?;
        }
        let ty = lt_type(s.dt);
        p.a = lt::create_matrix_layout(ty, s.k as u64, s.n as u64, s.k as i64)
            .with_context(e("layout of W"))?;
        p.b = lt::create_matrix_layout(ty, s.k as u64, s.rows as u64, s.k as i64)
            .with_context(e("layout of x"))?;
        p.d = lt::create_matrix_layout(ty, s.n as u64, s.rows as u64, s.n as i64)
            .with_context(e("layout of y"))?;
        Ok(p)
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created once by Plan::new (null ones were never created).
        unsafe {
            for l in [self.a, self.b, self.d] {
                if !l.is_null() {
                    let _ = lt::destroy_matrix_layout(l);
                }
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

fn lt_type(dt: DType) -> lt_sys::cudaDataType {
    match dt {
        DType::Bf16 => lt_sys::cudaDataType::CUDA_R_16BF,
        DType::F16 => lt_sys::cudaDataType::CUDA_R_16F,
    }
}

/// The cuBLASLt handle, its workspace and the shapes tuned to a cuBLASLt algorithm.
pub struct LtGemm {
    handle: lt_sys::cublasLtHandle_t,
    ws: DevBuf,
    plans: HashMap<Shape, Plan>,
    /// Every shape tuned so far, whichever won.
    tried: HashSet<Shape>,
}

impl Drop for LtGemm {
    fn drop(&mut self) {
        self.plans.clear();
        // SAFETY: created once in LtGemm::new; no plan outlives it (cleared above).
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

impl LtGemm {
    pub fn new(dev: &Device) -> Result<LtGemm> {
        // SAFETY: only tries dlopen on candidate names (a missing library would panic on first call).
        if !unsafe { lt_sys::is_culib_present() } {
            bail!("GEMM tuning needs libcublasLt.so (CUDA 12 or 13), which could not be loaded");
        }
        let handle = lt::create_handle().context("cuBLASLt init")?;
        Ok(LtGemm {
            handle,
            ws: dev.alloc(WORKSPACE)?,
            plans: HashMap::new(),
            tried: HashSet::new(),
        })
    }

    /// The shape has been tuned, whichever won.
    pub fn tried(&self, s: Shape) -> bool {
        self.tried.contains(&s)
    }

    /// The shape runs on a cuBLASLt algorithm.
    pub fn has(&self, s: Shape) -> bool {
        self.plans.contains_key(&s)
    }

    /// Run `s` with its tuned algorithm (an error for a shape without one: see `has`).
    pub fn run(
        &self,
        dev: &Device,
        s: Shape,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<()> {
        let p = self.plans.get(&s).ok_or_else(|| {
            anyhow!(
                "GEMM {}x{}x{} has no tuned cuBLASLt algorithm",
                s.rows,
                s.n,
                s.k
            )
        })?;
        self.launch(dev, p, s, &p.algo, x, w, y)
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        dev: &Device,
        p: &Plan,
        s: Shape,
        algo: &lt_sys::cublasLtMatmulAlgo_t,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<()> {
        s.check(x, w, y)?;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: x, w, y are live device views of at least the shape's sizes (checked above); the
        // workspace lives as long as self; C = D (beta = 0, so C is not read).
        unsafe {
            lt::matmul(
                self.handle,
                p.desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                w.addr() as *const c_void,
                p.a,
                x.addr() as *const c_void,
                p.b,
                y.addr() as *const c_void,
                p.d,
                y.addr() as *mut c_void,
                p.d,
                algo,
                self.ws.view::<u8>().addr() as *mut c_void,
                self.ws.bytes(),
                dev.stream.cu_stream() as lt_sys::cudaStream_t,
            )
        }
        .with_context(|| format!("cublasLtMatmul {}x{}x{}", s.rows, s.n, s.k))
    }

    /// How many algorithms tuning would time for `s` (the selftest checks each one's result).
    pub fn candidate_count(&self, s: Shape) -> Result<usize> {
        Ok(self.candidates(&Plan::new(s)?)?.len())
    }

    /// Run the `i`-th of those algorithms once.
    pub fn run_candidate(
        &self,
        dev: &Device,
        s: Shape,
        i: usize,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<()> {
        let p = Plan::new(s)?;
        let c = self.candidates(&p)?;
        let algo = c.get(i).ok_or_else(|| {
            anyhow!(
                "GEMM {}x{}x{}: candidate {i} of {}",
                s.rows,
                s.n,
                s.k,
                c.len()
            )
        })?;
        self.launch(dev, &p, s, algo, x, w, y)
    }

    /// The heuristic's first CANDIDATES algorithms for the plan's shape that fit the workspace.
    fn candidates(&self, p: &Plan) -> Result<Vec<lt_sys::cublasLtMatmulAlgo_t>> {
        let pref = lt::create_matmul_pref().context("cuBLASLt preference")?;
        let ws = self.ws.bytes() as u64;
        let mut got = [lt_sys::cublasLtMatmulHeuristicResult_t {
            algo: lt_sys::cublasLtMatmulAlgo_t { data: [0; 8] },
            workspaceSize: 0,
            state: lt_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS,
            wavesCount: 0.0,
            reserved: [0; 4],
        }; CANDIDATES];
        let mut count = 0i32;
        // SAFETY: pref and the plan's descriptors are live; `got` holds CANDIDATES results.
        let st = unsafe {
            lt::set_matmul_pref_attribute(pref, lt_sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws as *const u64 as *const c_void, 8)
                .map(|_| lt_sys::cublasLtMatmulAlgoGetHeuristic(self.handle, p.desc, p.a, p.b, p.d, p.d, pref, CANDIDATES as i32, got.as_mut_ptr(), &mut count))
        };
        // SAFETY: created above, destroyed once.
        let _ = unsafe { lt::destroy_matmul_pref(pref) };
        let st = st.context("cuBLASLt workspace preference")?;
        if st != lt_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            bail!("cublasLtMatmulAlgoGetHeuristic: {st:?}");
        }
        Ok(got[..count.clamp(0, CANDIDATES as i32) as usize]
            .iter()
            .filter(|r| {
                r.state == lt_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS
                    && r.workspaceSize <= self.ws.bytes()
            })
            .map(|r| r.algo)
            .collect())
    }

    /// Time cublasGemmEx and each candidate on (x, w, y), keep the fastest. y is overwritten.
    pub fn tune(
        &mut self,
        dev: &Device,
        s: Shape,
        x: DevSlice<'_, u16>,
        w: DevSlice<'_, u16>,
        y: DevSlice<'_, u16>,
    ) -> Result<Tuned> {
        let mut p = Plan::new(s)?;
        let cands = self.candidates(&p)?;
        let gemm_ex_ms = time_per_launch(dev, || dev.gemm_ex(s.dt, s.rows, s.n, s.k, x, w, y))?;
        let mut best: Option<(f64, lt_sys::cublasLtMatmulAlgo_t)> = None;
        for algo in &cands {
            // A candidate that fails to launch is skipped, not fatal: the heuristic may offer one
            // this shape's alignment rejects.
            let Ok(ms) = time_per_launch(dev, || self.launch(dev, &p, s, algo, x, w, y)) else {
                continue;
            };
            if best.is_none_or(|(b, _)| ms < b) {
                best = Some((ms, *algo));
            }
        }
        self.tried.insert(s);
        match best.filter(|&(ms, _)| ms < MARGIN * gemm_ex_ms) {
            Some((ms, algo)) => {
                p.algo = algo;
                self.plans.insert(s, p);
                Ok(Tuned {
                    gemm_ex_ms,
                    chosen_ms: ms,
                    lt_chosen: true,
                })
            }
            None => {
                self.plans.remove(&s);
                Ok(Tuned {
                    gemm_ex_ms,
                    chosen_ms: gemm_ex_ms,
                    lt_chosen: false,
                })
            }
        }
    }
}

/// GPU time per launch of `f`: one untimed launch, then REPS between two events.
fn time_per_launch(dev: &Device, f: impl Fn() -> Result<()>) -> Result<f64> {
    f()?;
    let a = dev.recorded_event()?;
    for _ in 0..REPS {
        f()?;
    }
    let b = dev.recorded_event()?;
    dev.sync()?;
    Ok(elapsed_ms(&a, &b)? / REPS as f64)
}
