//! GEMMs through cuBLASLt with the algorithm picked by timing (`EngineOptions::gemm_tune`), and
//! GEMMs with a fused epilogue (`Epilogue`), which only cuBLASLt runs.
//! cublasGemmEx runs cuBLAS's heuristic pick for each shape. For the skinny GEMMs of decode (rows =
//! batch, ~100–1000) that pick can leave SMs idle: at batch 256, llama-3.1-8b's o and down
//! projections have 64 output tiles of 128 × 128 for 132 SMs and ran at 1.45–1.7× their floor
//! (docs/performance.md), where a split-K or stream-K kernel would fill the machine. Tuning asks
//! cuBLASLt's heuristic for its first CANDIDATES algorithms for one (dtype, rows, n, k), times each
//! against cublasGemmEx on the forward's own buffers, and keeps the fastest; a shape where
//! cublasGemmEx wins (or cannot be beaten by more than the noise margin) keeps cublasGemmEx.
//! A fused-epilogue shape has no cublasGemmEx form: untuned it runs the heuristic's first
//! algorithm, and tuning chooses among the candidates only.

use super::device::{elapsed_ms, DType, DevBuf, Device};
use super::gemm_shape::{Epilogue, Operands, Shape};
use anyhow::{anyhow, bail, Context, Result};
use cudarc::cublaslt::{result as lt, sys as lt_sys};
use std::cell::RefCell;
use std::collections::hash_map::Entry;
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

/// What tuning one shape found (per launch, milliseconds).
#[derive(Clone, Copy, Debug)]
pub struct Tuned {
    /// Time of what the shape runs untuned: cublasGemmEx, or for a fused epilogue (which has no
    /// cublasGemmEx form) the heuristic's first cuBLASLt algorithm.
    pub untuned_ms: f64,
    /// Time of what the shape now runs: the chosen cuBLASLt algorithm's, else `untuned_ms`.
    pub chosen_ms: f64,
    /// The shape now runs on cuBLASLt.
    pub lt_chosen: bool,
}

/// cuBLASLt's descriptors of one shape. In its column-major terms y is D[n × rows] = Wᵀ · X with
/// W stored k × n (transposed by the op) and X stored k × rows, as in `Device::gemm_ex`; a bias
/// runs along D's rows, one per output column of y.
struct Plan {
    desc: lt_sys::cublasLtMatmulDesc_t,
    a: lt_sys::cublasLtMatrixLayout_t,
    b: lt_sys::cublasLtMatrixLayout_t,
    d: lt_sys::cublasLtMatrixLayout_t,
    algo: lt_sys::cublasLtMatmulAlgo_t,
}

/// Set a 4-byte attribute (an enum or an int32) of a matmul descriptor.
fn set_attr_u32(
    desc: lt_sys::cublasLtMatmulDesc_t,
    attr: lt_sys::cublasLtMatmulDescAttributes_t,
    v: u32,
) -> Result<()> {
    // SAFETY: desc is a live descriptor (its Plan owns it); the attributes passed here are 4-byte
    // enums or int32s, and v lives through the call (cuBLASLt copies it).
    unsafe { lt::set_matmul_desc_attribute(desc, attr, &v as *const u32 as *const c_void, 4) }
        .with_context(|| format!("cuBLASLt attribute {attr:?}"))
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
        use lt_sys::cublasLtEpilogue_t as E;
        use lt_sys::cublasLtMatmulDescAttributes_t as A;
        let (op_t, op_n) = (
            cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T as u32,
            cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N as u32,
        );
        set_attr_u32(p.desc, A::CUBLASLT_MATMUL_DESC_TRANSA, op_t)?;
        set_attr_u32(p.desc, A::CUBLASLT_MATMUL_DESC_TRANSB, op_n)?;
        let ty = lt_type(s.dt);
        if s.ep == Epilogue::ReluBias {
            set_attr_u32(
                p.desc,
                A::CUBLASLT_MATMUL_DESC_EPILOGUE,
                E::CUBLASLT_EPILOGUE_RELU_BIAS as u32,
            )?;
            // The bias in the storage type, as the weights hold it (cuBLASLt's default for a 16-bit
            // D too; said here so no library default decides it). Its pointer is set per launch.
            set_attr_u32(p.desc, A::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, ty as u32)?;
        }
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

/// The cuBLASLt handle, its workspace and the plans of the shapes it runs: those tuned to a
/// cuBLASLt algorithm, and the fused-epilogue shapes (tuned or not).
pub struct LtGemm {
    handle: lt_sys::cublasLtHandle_t,
    ws: DevBuf,
    /// In a RefCell: a fused-epilogue shape gets its plan on first use, from `Device::gemm`'s
    /// shared borrow (a forward's prefill row counts are not known ahead). The launches also set
    /// each plan's bias pointer; LtGemm is neither Send nor Sync (raw handles), so one thread does.
    plans: RefCell<HashMap<Shape, Plan>>,
    /// Every shape tuned so far, whichever won.
    tried: HashSet<Shape>,
}

impl Drop for LtGemm {
    fn drop(&mut self) {
        self.plans.get_mut().clear();
        // SAFETY: created once in LtGemm::new; no plan outlives it (cleared above).
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

impl LtGemm {
    pub fn new(dev: &Device) -> Result<LtGemm> {
        // SAFETY: only tries dlopen on candidate names (a missing library would panic on first call).
        if !unsafe { lt_sys::is_culib_present() } {
            bail!("GEMM tuning and fused GEMM epilogues need libcublasLt.so (CUDA 12 or 13), which could not be loaded");
        }
        let handle = lt::create_handle().context("cuBLASLt init")?;
        Ok(LtGemm {
            handle,
            ws: dev.alloc(WORKSPACE)?,
            plans: RefCell::new(HashMap::new()),
            tried: HashSet::new(),
        })
    }

    /// The shape has been tuned, whichever won.
    pub fn tried(&self, s: Shape) -> bool {
        self.tried.contains(&s)
    }

    /// The shape runs on a cuBLASLt algorithm.
    pub fn has(&self, s: Shape) -> bool {
        self.plans.borrow().contains_key(&s)
    }

    /// Run `s` with its algorithm: the tuned one, else for a fused epilogue the heuristic's first
    /// (planned now); an error for a plain shape without one (see `has`).
    pub fn run(&self, dev: &Device, s: Shape, o: Operands<'_>) -> Result<()> {
        let mut plans = self.plans.borrow_mut();
        let p: &Plan = match plans.entry(s) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if s.ep == Epilogue::None => bail!(
                "GEMM {}x{}x{} has no tuned cuBLASLt algorithm",
                s.rows,
                s.n,
                s.k
            ),
            Entry::Vacant(v) => {
                let mut p = Plan::new(s)?;
                p.algo = first_of(&self.candidates(&p)?, s)?;
                v.insert(p)
            }
        };
        self.launch(dev, p, s, &p.algo, o)
    }

    fn launch(
        &self,
        dev: &Device,
        p: &Plan,
        s: Shape,
        algo: &lt_sys::cublasLtMatmulAlgo_t,
        o: Operands<'_>,
    ) -> Result<()> {
        s.check(&o)?;
        if let Some(b) = o.bias {
            let addr = b.addr();
            // SAFETY: the plan's descriptor is live; the attribute is a device pointer (8 bytes),
            // read by cuBLASLt at the matmul call below (a captured graph keeps this value).
            unsafe {
                lt::set_matmul_desc_attribute(
                    p.desc,
                    lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                    &addr as *const u64 as *const c_void,
                    8,
                )
            }
            .context("cuBLASLt bias pointer")?;
        }
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: x, w, y (and the bias, set above, n elements) are live device views of at least
        // the shape's sizes (checked above); the workspace lives as long as self; C = D (beta = 0,
        // so C is not read).
        unsafe {
            lt::matmul(
                self.handle,
                p.desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                o.w.addr() as *const c_void,
                p.a,
                o.x.addr() as *const c_void,
                p.b,
                o.y.addr() as *const c_void,
                p.d,
                o.y.addr() as *mut c_void,
                p.d,
                algo,
                self.ws.view::<u8>().addr() as *mut c_void,
                self.ws.bytes(),
                dev.stream.cu_stream() as lt_sys::cudaStream_t,
            )
        }
        .with_context(|| format!("cublasLtMatmul {}x{}x{} {:?}", s.rows, s.n, s.k, s.ep))
    }

    /// How many algorithms tuning would time for `s` (the selftest checks each one's result).
    pub fn candidate_count(&self, s: Shape) -> Result<usize> {
        Ok(self.candidates(&Plan::new(s)?)?.len())
    }

    /// Run the `i`-th of those algorithms once.
    pub fn run_candidate(&self, dev: &Device, s: Shape, i: usize, o: Operands<'_>) -> Result<()> {
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
        self.launch(dev, &p, s, algo, o)
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

    /// Time what `s` runs untuned (`Tuned::untuned_ms`) and each candidate on the operands, keep
    /// the fastest. y is overwritten. A fused epilogue stays on cuBLASLt whatever the times.
    pub fn tune(&mut self, dev: &Device, s: Shape, o: Operands<'_>) -> Result<Tuned> {
        let mut p = Plan::new(s)?;
        let cands = self.candidates(&p)?;
        let untuned_ms = if s.ep == Epilogue::None {
            time_per_launch(dev, || dev.gemm_ex(s.dt, s.rows, s.n, s.k, o.x, o.w, o.y))?
        } else {
            let first = first_of(&cands, s)?;
            time_per_launch(dev, || self.launch(dev, &p, s, &first, o))?
        };
        let mut best: Option<(f64, lt_sys::cublasLtMatmulAlgo_t)> = None;
        for algo in &cands {
            // A candidate that fails to launch is skipped, not fatal: the heuristic may offer one
            // this shape's alignment rejects.
            let Ok(ms) = time_per_launch(dev, || self.launch(dev, &p, s, algo, o)) else {
                continue;
            };
            if best.is_none_or(|(b, _)| ms < b) {
                best = Some((ms, *algo));
            }
        }
        self.tried.insert(s);
        let plans = self.plans.get_mut();
        match (best.filter(|&(ms, _)| ms < MARGIN * untuned_ms), s.ep) {
            (Some((ms, algo)), _) => {
                p.algo = algo;
                plans.insert(s, p);
                Ok(Tuned {
                    untuned_ms,
                    chosen_ms: ms,
                    lt_chosen: true,
                })
            }
            (None, Epilogue::None) => {
                plans.remove(&s);
                Ok(Tuned {
                    untuned_ms,
                    chosen_ms: untuned_ms,
                    lt_chosen: false,
                })
            }
            // No cublasGemmEx form: keep the heuristic's first, which the untuned time is of.
            (None, _) => {
                p.algo = first_of(&cands, s)?;
                plans.insert(s, p);
                Ok(Tuned {
                    untuned_ms,
                    chosen_ms: untuned_ms,
                    lt_chosen: true,
                })
            }
        }
    }
}

/// The first of the heuristic's candidates for `s`, or an error naming the shape where it offers
/// none.
fn first_of(
    cands: &[lt_sys::cublasLtMatmulAlgo_t],
    s: Shape,
) -> Result<lt_sys::cublasLtMatmulAlgo_t> {
    cands.first().copied().ok_or_else(|| {
        anyhow!(
            "GEMM {}x{}x{} with epilogue {:?}: cuBLASLt offers no algorithm",
            s.rows,
            s.n,
            s.k,
            s.ep
        )
    })
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
