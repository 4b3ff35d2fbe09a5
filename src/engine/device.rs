//! Device layer over cudarc: finds the CUDA libraries at run time (never panics when they are
//! missing), creates the context, compiles the embedded kernels with NVRTC for the GPU present,
//! owns device buffers (handed out as typed, bounds-checked views) and wraps kernel launches (the
//! typed structs of `launches.rs` call `launch`) and cuBLAS GEMMs. Every CUDA call is checked.

pub use super::lt_gemm::{LtGemm, Shape, Tuned};
use anyhow::{anyhow, bail, Context, Result};
use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaStream,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

/// The kernel sources, compiled as one NVRTC program in this order (scripts/check_kernels.py reads
/// the list from here).
const KERNEL_SOURCES: [&str; 7] = [
    include_str!("kernels/common.cu"),
    include_str!("kernels/attention.cu"),
    include_str!("kernels/attention_tc.cu"),
    include_str!("kernels/attention_wg.cu"),
    include_str!("kernels/attention_ws.cu"),
    include_str!("kernels/attention_prefill.cu"),
    include_str!("kernels/attention_tcd.cu"),
];

/// Storage type of weights, activations and the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    Bf16,
    F16,
}

impl DType {
    pub fn bytes(self) -> usize {
        2
    }
    /// Unit roundoff (half an ulp at 1): 2^-8 for bf16's 8-bit significand, 2^-11 for fp16's 11.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            DType::Bf16 => 2f64.powi(-8),
            DType::F16 => 2f64.powi(-11),
        }
    }
    /// Kernel-name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            DType::Bf16 => "bf16",
            DType::F16 => "f16",
        }
    }
    pub fn parse(s: &str) -> Result<DType> {
        match s.to_ascii_lowercase().as_str() {
            "bf16" | "bfloat16" => Ok(DType::Bf16),
            "fp16" | "f16" | "float16" | "half" => Ok(DType::F16),
            other => bail!("--dtype {other}: supported dtypes are bf16 and fp16"),
        }
    }
    fn cuda(self) -> blas_sys::cudaDataType {
        match self {
            DType::Bf16 => blas_sys::cudaDataType::CUDA_R_16BF,
            DType::F16 => blas_sys::cudaDataType::CUDA_R_16F,
        }
    }
    /// Host f32 → storage bits.
    pub fn encode(self, x: f32) -> u16 {
        match self {
            DType::Bf16 => half::bf16::from_f32(x).to_bits(),
            DType::F16 => half::f16::from_f32(x).to_bits(),
        }
    }
    pub fn decode(self, b: u16) -> f32 {
        match self {
            DType::Bf16 => half::bf16::from_bits(b).to_f32(),
            DType::F16 => half::f16::from_bits(b).to_f32(),
        }
    }
}

/// Kernel argument (passed by value to cuLaunchKernel).
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// Device pointer (0 = null).
    P(u64),
    I(i32),
    L(i64),
    U(u64),
    F(f32),
}

/// A device allocation of `bytes` bytes, freed on drop. Only `Device::alloc` makes one (its fields
/// are private, so no address that was not allocated can be freed); its memory reaches copies and
/// GEMMs only as a typed, bounds-checked `DevSlice`, and kernels through `ptr` in a launch.
pub struct DevBuf {
    ptr: u64,
    bytes: usize,
}

impl DevBuf {
    /// A buffer of no bytes (address 0, a null kernel argument): a placeholder before allocation.
    pub fn empty() -> DevBuf {
        DevBuf { ptr: 0, bytes: 0 }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The address, for kernel arguments (`Arg::P`) and pointer arithmetic inside a launch's
    /// argument list; the launch is where the kernel's use of it is checked (the selftest).
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// The whole buffer as `bytes / size_of::<T>()` elements of T.
    pub fn view<T: Copy>(&self) -> DevSlice<'_, T> {
        DevSlice {
            addr: self.ptr,
            len: self.bytes / std::mem::size_of::<T>().max(1),
            _buf: PhantomData,
        }
    }

    /// `n` elements of T from element `at`; an error if they run past the allocation.
    pub fn slice<T: Copy>(&self, at: usize, n: usize) -> Result<DevSlice<'_, T>> {
        self.view().slice(at, n)
    }
}

/// `len` elements of T in a live device allocation, borrowed from its `DevBuf` (so the memory
/// outlives the view). Copies and GEMMs take these and check their lengths, so a device address
/// never crosses a safe function as a bare integer.
pub struct DevSlice<'a, T> {
    addr: u64,
    len: usize,
    _buf: PhantomData<&'a [T]>,
}

impl<T> Clone for DevSlice<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DevSlice<'_, T> {}

impl<'a, T: Copy> DevSlice<'a, T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements `at .. at + n` of this view; an error if they run past its end.
    pub fn slice(self, at: usize, n: usize) -> Result<DevSlice<'a, T>> {
        match at.checked_add(n) {
            Some(end) if end <= self.len => Ok(DevSlice {
                addr: self.addr + (at * std::mem::size_of::<T>()) as u64,
                len: n,
                _buf: PhantomData,
            }),
            _ => bail!(
                "device view of {} elements: elements {at}..{at}+{n} out of range",
                self.len
            ),
        }
    }

    /// The first address, for the device layer's own FFI calls (cuBLAS, cuBLASLt).
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }
}

/// A device address passed as a kernel's `T*` parameter (`launches.rs`): typed, so that a launch's
/// argument struct says which buffer of which element type each parameter takes. It carries no
/// length; the `unsafe` launch is where the caller states that it covers what the kernel touches.
pub struct DevPtr<T> {
    addr: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DevPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DevPtr<T> {}
impl<T> Default for DevPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> DevPtr<T> {
    /// The null pointer (an absent optional input, as the kernels test it).
    pub const fn null() -> Self {
        DevPtr {
            addr: 0,
            _t: PhantomData,
        }
    }

    /// An address inside a live allocation holding elements of T (a buffer's start plus a byte
    /// offset computed by the caller, such as one layer's part of the KV cache).
    pub fn from_addr(addr: u64) -> Self {
        DevPtr {
            addr,
            _t: PhantomData,
        }
    }

    pub fn addr(self) -> u64 {
        self.addr
    }
}

impl DevBuf {
    /// The buffer's start as a kernel pointer parameter of element type T.
    pub fn dptr<T>(&self) -> DevPtr<T> {
        DevPtr::from_addr(self.ptr)
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // SAFETY: ptr came from malloc_sync and is freed once.
            let _ = unsafe { drv::free_sync(self.ptr) };
        }
    }
}

/// Directory holding cuda_bf16.h: CUDA_HOME, CUDA_PATH, then /usr/local/cuda.
pub fn cuda_include_dir() -> Result<PathBuf> {
    let mut tried = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(v) = std::env::var(var) {
            tried.push(PathBuf::from(&v).join("include"));
        }
    }
    tried.push(PathBuf::from("/usr/local/cuda/include"));
    for d in &tried {
        if d.join("cuda_bf16.h").exists() {
            return Ok(d.clone());
        }
    }
    bail!(
        "CUDA headers not found: cuda_bf16.h is in none of {:?}; install the CUDA toolkit headers and set CUDA_HOME",
        tried
    )
}

/// Extra NVRTC options from `ENERGY_FIT_NVRTC_OPTS` (whitespace-separated, e.g.
/// `--gpu-architecture=sm_90` or `-lineinfo`), passed through as given: an A/B of one binary on
/// the GPU machine without rebuilding it. The kernels have one code path per case; what an option
/// can change is the architecture they are built for.
pub(crate) fn extra_nvrtc_options() -> Vec<String> {
    std::env::var("ENERGY_FIT_NVRTC_OPTS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The architecture the kernels compile for: the device's, unless `ENERGY_FIT_NVRTC_OPTS` names
/// one (NVRTC takes the last `--gpu-architecture`). Hopper (9.0) compiles for sm_90a, whose wgmma
/// and setmaxnreg the prefill kernel attention_ws.cu needs; `--gpu-architecture=sm_90` there gives
/// attention_tc at every head dim.
fn nvrtc_arch(extra: &[String], maj: i32, min: i32) -> Result<String> {
    match extra.iter().rev().find_map(|o| o.strip_prefix("--gpu-architecture=")) {
        Some("") => Err(anyhow!("ENERGY_FIT_NVRTC_OPTS: --gpu-architecture= names no architecture (e.g. --gpu-architecture=sm_90a)")),
        Some(a) => Ok(a.to_string()),
        None if (maj, min) == (9, 0) => Ok("sm_90a".into()),
        None => Ok(format!("sm_{maj}{min}")),
    }
}

/// Check that the driver, NVRTC and cuBLAS libraries can be loaded, without panicking.
pub fn check_cuda_libraries() -> Result<()> {
    // SAFETY: these only try dlopen on candidate names.
    unsafe {
        if !drv_sys::is_culib_present() {
            bail!("no CUDA driver found: libcuda.so could not be loaded (is an NVIDIA driver installed and on LD_LIBRARY_PATH?)");
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            bail!("no CUDA driver found: the driver is present but libnvrtc.so (CUDA 12 or 13) could not be loaded");
        }
        if !blas_sys::is_culib_present() {
            bail!("no CUDA driver found: the driver is present but libcublas.so (CUDA 12 or 13) could not be loaded");
        }
    }
    Ok(())
}

/// One GPU, one stream, the compiled kernels and a cuBLAS handle.
pub struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub blas: CudaBlas,
    _module: Arc<CudaModule>,
    funcs: HashMap<String, CudaFunction>,
    pub name: String,
    pub arch: String,
    /// Streaming multiprocessors (grid-stride launches size their grids by it).
    pub sms: usize,
    pub nvrtc_ms: f64,
    /// GEMMs tuned to a cuBLASLt algorithm (`enable_gemm_tuning`, `tune_gemm`); None: all cublasGemmEx.
    lt: Option<LtGemm>,
    _blas_ws: DevBuf,
    /// Per-kernel timing (`bench --kernels`): while Some, every launch and GEMM is bracketed by CUDA
    /// events kept by name until `take_kernel_times`. Not for graph capture (bench turns graphs off).
    pub kernel_timer: Option<RefCell<Vec<(String, CudaEvent, CudaEvent)>>>,
}

/// GPU time of one kernel (or GEMM shape) summed over its launches.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    pub name: String,
    pub ms: f64,
    pub launches: usize,
}

/// cuBLAS workspace (NVIDIA recommends 32 MiB on Hopper).
const BLAS_WORKSPACE: usize = 32 << 20;

impl Device {
    pub fn new(ordinal: usize) -> Result<Device> {
        check_cuda_libraries()?;
        let include = cuda_include_dir()?;
        let ctx = CudaContext::new(ordinal)
            .with_context(|| format!("no usable CUDA device {ordinal}"))?;
        // SAFETY: the engine uses one stream; we order work ourselves.
        unsafe { ctx.disable_event_tracking() };
        let (maj, min) = ctx.compute_capability().context("compute capability")?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .context("device attribute multiprocessor count")? as usize;
        let t0 = std::time::Instant::now();
        let src = KERNEL_SOURCES.join("\n");
        let extra = extra_nvrtc_options();
        let arch = nvrtc_arch(&extra, maj, min)?;
        let opts = cudarc::nvrtc::CompileOptions {
            include_paths: vec![include.to_string_lossy().into_owned()],
            options: [format!("--gpu-architecture={arch}"), "-std=c++17".into()]
                .into_iter()
                .chain(extra.iter().cloned())
                .collect(),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(&src, opts).with_context(|| {
            let with = if extra.is_empty() {
                String::new()
            } else {
                format!(" with ENERGY_FIT_NVRTC_OPTS {extra:?}")
            };
            format!("NVRTC failed to compile the engine kernels for {arch}{with}")
        })?;
        let nvrtc_ms = t0.elapsed().as_secs_f64() * 1e3;
        let module = ctx.load_module(ptx).context("loading kernels")?;
        // A real stream (not the legacy default one): CUDA graphs can be captured only on such.
        let stream = ctx.new_stream().context("creating a stream")?;
        let blas = CudaBlas::new(stream.clone()).context("cuBLAS init")?;
        let mut dev = Device {
            ctx,
            stream,
            blas,
            _module: module,
            funcs: HashMap::new(),
            name,
            arch,
            sms,
            nvrtc_ms,
            lt: None,
            _blas_ws: DevBuf::empty(),
            kernel_timer: None,
        };
        // An explicit cuBLAS workspace: captured GEMMs must not allocate.
        let ws = dev.alloc(BLAS_WORKSPACE)?;
        // SAFETY: ws outlives the handle's use of it (both live in Device; the handle is not used after drop).
        let st = unsafe {
            blas_sys::cublasSetWorkspace_v2(*dev.blas.handle(), ws.ptr as *mut c_void, ws.bytes)
        };
        if st != blas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            bail!("cublasSetWorkspace: {st:?}");
        }
        dev._blas_ws = ws;
        Ok(dev)
    }

    /// (free, total) device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().context("cuMemGetInfo")
    }

    pub fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        if bytes == 0 {
            return Ok(DevBuf::empty());
        }
        // SAFETY: plain cuMemAlloc; the context is current on this thread.
        let ptr = unsafe { drv::malloc_sync(bytes) }
            .with_context(|| format!("cuMemAlloc of {:.1} MiB failed", bytes as f64 / 1048576.0))?;
        Ok(DevBuf { ptr, bytes })
    }

    /// Zero a buffer (stream ordered); zero bits are 0.0 in bf16 and fp16.
    pub fn zero(&self, b: &DevBuf) -> Result<()> {
        // SAFETY: b is a live allocation of b.bytes bytes.
        unsafe { drv::memset_d8_async(b.ptr, 0, b.bytes, self.stream.cu_stream()) }
            .with_context(|| format!("memset of {} bytes", b.bytes))
    }

    /// Copy `src` to the start of `dst` (stream ordered; the host slice may be reused at once); an
    /// error if `dst` is shorter.
    pub fn upload<T: Copy>(&self, dst: DevSlice<'_, T>, src: &[T]) -> Result<()> {
        if src.len() > dst.len() {
            bail!(
                "copy to device: {} elements into a view of {}",
                src.len(),
                dst.len()
            );
        }
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: dst is a live allocation (borrowed from its DevBuf) of at least src.len()
        // elements of T, checked above.
        unsafe { drv::memcpy_htod_async(dst.addr(), src, self.stream.cu_stream()) }
            .context("copy to device")
    }

    /// Copy the elements of `src` to the host and wait for them.
    pub fn download<T: Copy + Default>(&self, src: DevSlice<'_, T>) -> Result<Vec<T>> {
        let mut v = vec![T::default(); src.len()];
        if v.is_empty() {
            return Ok(v);
        }
        // SAFETY: src is a live allocation (borrowed from its DevBuf) of v.len() elements of T.
        unsafe { drv::memcpy_dtoh_async(&mut v[..], src.addr(), self.stream.cu_stream()) }
            .context("copy to host")?;
        self.sync()?;
        Ok(v)
    }

    pub fn sync(&self) -> Result<()> {
        self.stream
            .synchronize()
            .context("CUDA error (stream synchronize)")
    }

    /// Run `f` (one launch or GEMM), bracketed by events under `name()` when the kernel timer is on.
    fn timed(&self, name: impl FnOnce() -> String, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let Some(t) = &self.kernel_timer else {
            return f();
        };
        let a = self.recorded_event()?;
        f()?;
        let b = self.recorded_event()?;
        t.borrow_mut().push((name(), a, b));
        Ok(())
    }

    /// A timing event recorded on the stream now (after the work queued so far).
    pub fn recorded_event(&self) -> Result<CudaEvent> {
        let ev = self
            .ctx
            .new_event(Some(drv_sys::CUevent_flags::CU_EVENT_DEFAULT))
            .context("event")?;
        ev.record(&self.stream).context("event record")?;
        Ok(ev)
    }

    /// Synchronise and sum the timed launches by name, largest total first; clears them.
    pub fn take_kernel_times(&self) -> Result<Vec<KernelTime>> {
        self.sync()?;
        let Some(t) = &self.kernel_timer else {
            return Ok(Vec::new());
        };
        let mut by: HashMap<String, KernelTime> = HashMap::new();
        for (name, a, b) in t.borrow_mut().drain(..) {
            let ms = elapsed_ms(&a, &b)?;
            let k = by.entry(name.clone()).or_insert(KernelTime {
                name,
                ms: 0.0,
                launches: 0,
            });
            k.ms += ms;
            k.launches += 1;
        }
        let mut v: Vec<KernelTime> = by.into_values().collect();
        v.sort_by(|x, y| y.ms.total_cmp(&x.ms));
        Ok(v)
    }

    /// A `__constant__ int` of the kernel module: a shape the host must agree on (a prefill
    /// attention block's rows), which depends on the architecture the kernels were built for.
    pub fn const_i32(&self, name: &str) -> Result<i32> {
        let v = self
            ._module
            .get_global(name, &self.stream)
            .with_context(|| format!("constant {name} not found in the kernels"))?;
        let b: Vec<u8> = self
            .stream
            .clone_dtoh(&v)
            .with_context(|| format!("reading constant {name}"))?;
        let a: [u8; 4] = b
            .get(..4)
            .and_then(|x| x.try_into().ok())
            .ok_or_else(|| anyhow!("constant {name}: {} bytes, expected 4", b.len()))?;
        Ok(i32::from_le_bytes(a))
    }

    /// Write `bytes` at the start of the kernels' global `name` (stream ordered).
    pub fn write_global(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut g = self
            ._module
            .get_global(name, &self.stream)
            .with_context(|| format!("global {name} not found in the kernels"))?;
        if g.len() < bytes.len() {
            bail!("global {name}: {} bytes, {} to write", g.len(), bytes.len());
        }
        let mut head = g.slice_mut(..bytes.len());
        self.stream
            .memcpy_htod(bytes, &mut head)
            .with_context(|| format!("writing global {name}"))
    }

    /// Rows per block of the tensor-core prefill attention kernel for `hd` as compiled.
    pub fn tc_rows(&self, sx: &str, hd: usize) -> Result<usize> {
        self.tc_multiple_of(&format!("attention_tc_rows_{sx}_{hd}"), 16)
    }

    /// Threads per block of the tensor-core prefill attention kernel for `hd` as compiled.
    pub fn tc_threads(&self, sx: &str, hd: usize) -> Result<usize> {
        self.tc_multiple_of(&format!("attention_tc_threads_{sx}_{hd}"), 32)
    }

    /// Dynamic shared memory of the tensor-core prefill attention kernel for `hd` as compiled.
    pub fn tc_smem(&self, sx: &str, hd: usize) -> Result<usize> {
        self.tc_multiple_of(&format!("attention_tc_smem_{sx}_{hd}"), 16)
    }

    /// Dynamic shared memory of the tensor-core decode attention kernel for `hd` as compiled.
    pub fn tcd_smem(&self, sx: &str, hd: usize) -> Result<usize> {
        self.tc_multiple_of(&format!("attention_tcd_smem_{sx}_{hd}"), 16)
    }

    fn tc_multiple_of(&self, name: &str, k: i32) -> Result<usize> {
        let r = self.const_i32(name)?;
        usize::try_from(r)
            .ok()
            .filter(|_| r > 0 && r % k == 0)
            .ok_or_else(|| anyhow!("{name} = {r}: not a positive multiple of {k}"))
    }

    fn func(&mut self, name: &str) -> Result<CudaFunction> {
        if let Some(f) = self.funcs.get(name) {
            return Ok(f.clone());
        }
        let f = self
            ._module
            .load_function(name)
            .with_context(|| format!("kernel {name} not found"))?;
        self.funcs.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// Launch kernel `name` and check the launch. The typed structs of `launches.rs` call this;
    /// nothing else does.
    ///
    /// # Safety
    /// `args` match the kernel's parameters in number, order and type, and every pointer among
    /// them covers what the kernel reads and writes for this grid.
    pub unsafe fn launch(
        &mut self,
        name: &str,
        grid: (u32, u32, u32),
        block: u32,
        smem: u32,
        args: &[Arg],
    ) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(());
        }
        let f = self.func(name)?;
        if smem > 48 << 10 {
            // Dynamic shared memory above 48 KiB must be opted into per kernel (idempotent).
            f.set_attribute(
                drv_sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem as i32,
            )
            .with_context(|| format!("{name}: {smem} bytes of shared memory"))?;
        }
        let mut vals: Vec<Arg> = args.to_vec();
        let mut ptrs: Vec<*mut c_void> = vals
            .iter_mut()
            .map(|a| match a {
                Arg::P(v) | Arg::U(v) => v as *mut u64 as *mut c_void,
                Arg::I(v) => v as *mut i32 as *mut c_void,
                Arg::L(v) => v as *mut i64 as *mut c_void,
                Arg::F(v) => v as *mut f32 as *mut c_void,
            })
            .collect();
        self.timed(
            || name.to_string(),
            // SAFETY: the caller's contract (above) for the arguments; `vals` outlives the call.
            || {
                unsafe {
                    drv::launch_kernel(
                        f.cu_function(),
                        grid,
                        (block, 1, 1),
                        smem,
                        self.stream.cu_stream(),
                        &mut ptrs,
                    )
                }
                .with_context(|| {
                    format!("launch of {name} (grid {grid:?}, block {block}, smem {smem})")
                })
            },
        )
    }

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

/// Milliseconds between two recorded events (both complete).
pub fn elapsed_ms(a: &CudaEvent, b: &CudaEvent) -> Result<f64> {
    Ok(a.elapsed_ms(b).context("event elapsed")? as f64)
}

/// Grid-stride launch size for `n` elements on `sms` multiprocessors: one block per `block`
/// elements, at most 16 per multiprocessor (the kernels stride over the rest).
pub fn grid_for(n: usize, block: u32, sms: usize) -> (u32, u32, u32) {
    let blocks = n.div_ceil(block as usize).clamp(1, sms.max(1) * 16);
    (blocks as u32, 1, 1)
}

/// Launch grid of `ffn_act` (common.cu): blocks of `block` threads over the columns, 8 per thread
/// when `f % 8 == 0`, and `rows` (at most 65535, the kernel walks the rest) along y.
pub fn ffn_act_grid(rows: usize, f: usize, block: u32) -> (u32, u32, u32) {
    let per_thread = if f.is_multiple_of(8) { 8 } else { 1 };
    let x = f.div_ceil(per_thread).div_ceil(block as usize).max(1);
    (x as u32, rows.clamp(1, 65535) as u32, 1)
}

#[cfg(test)]
mod tests {
    use super::{nvrtc_arch, DType};

    fn opts(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// The device's architecture (Hopper's with its wgmma features, sm_90a) unless
    /// ENERGY_FIT_NVRTC_OPTS names one; the last one named wins, as in NVRTC; an empty one is an
    /// error that says which option.
    #[test]
    fn nvrtc_arch_from_options() {
        assert_eq!(nvrtc_arch(&opts("-lineinfo"), 9, 0).unwrap(), "sm_90a");
        assert_eq!(nvrtc_arch(&[], 8, 0).unwrap(), "sm_80");
        assert_eq!(nvrtc_arch(&[], 10, 0).unwrap(), "sm_100");
        assert_eq!(
            nvrtc_arch(&opts("--gpu-architecture=sm_90 -lineinfo"), 9, 0).unwrap(),
            "sm_90"
        );
        assert_eq!(
            nvrtc_arch(
                &opts("--gpu-architecture=sm_80 --gpu-architecture=sm_90a"),
                9,
                0
            )
            .unwrap(),
            "sm_90a"
        );
        let e = nvrtc_arch(&opts("-lineinfo --gpu-architecture="), 9, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ENERGY_FIT_NVRTC_OPTS") && e.contains("--gpu-architecture="),
            "{e}"
        );
    }

    /// 1 + x rounds to 1 below the unit roundoff and away from 1 above it (round to nearest).
    #[test]
    fn unit_roundoff_is_half_an_ulp_at_one() {
        for dt in [DType::Bf16, DType::F16] {
            let u = dt.unit_roundoff() as f32;
            assert_eq!(dt.decode(dt.encode(1.0 + 0.9 * u)), 1.0, "{dt:?}");
            assert!(dt.decode(dt.encode(1.0 + 1.1 * u)) > 1.0, "{dt:?}");
        }
    }
}
