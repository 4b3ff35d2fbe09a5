//! Device layer over cudarc: finds the CUDA libraries at run time (never panics when they are
//! missing), creates the context, compiles the embedded kernels with NVRTC for the GPU present,
//! owns device buffers (handed out as typed, bounds-checked views) and wraps kernel launches (the
//! typed structs of `launches.rs` call `launch`) and cuBLAS GEMMs. Every CUDA call is checked.
//! The buffers and their views are in `device/buffers.rs`, the GEMMs in `device/blas.rs`, the
//! per-kernel timer in `device/timing.rs`, the finding of the CUDA toolkit in `device/cuda_env.rs`.

mod blas;
mod buffers;
mod cuda_env;
mod timing;

pub use super::gemm_shape::{Epilogue, Operands, Shape};
pub use super::lt_gemm::{LtGemm, Tuned};
use anyhow::{anyhow, bail, Context, Result};
#[cfg(test)]
pub(crate) use buffers::{fake_buf, fake_buf_at};
pub use buffers::{DevBuf, DevPtr, DevSlice};
pub(crate) use cuda_env::extra_nvrtc_options;
use cuda_env::nvrtc_arch;
pub use cuda_env::{check_cuda_libraries, cuda_include_dir};
use cudarc::cublas::{sys as blas_sys, CudaBlas};
use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaStream,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;
pub use timing::{elapsed_ms, KernelTime};

/// The kernel sources, compiled as one NVRTC program in this order (scripts/check_kernels.py reads
/// the list from here).
const KERNEL_SOURCES: [&str; 8] = [
    include_str!("kernels/common.cu"),
    include_str!("kernels/attention.cu"),
    include_str!("kernels/attention_tc.cu"),
    include_str!("kernels/attention_wg.cu"),
    include_str!("kernels/attention_ws.cu"),
    include_str!("kernels/attention_ws256.cu"),
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
    /// cuBLASLt (`enable_lt`): the GEMMs tuned to one of its algorithms (`tune_gemm`) and those with
    /// a fused epilogue; None: all cublasGemmEx.
    lt: Option<LtGemm>,
    _blas_ws: DevBuf,
    /// Per-kernel timing (`bench --kernels`): while Some, every launch and GEMM is bracketed by CUDA
    /// events kept by name until `take_kernel_times`. Not for graph capture (bench turns graphs off).
    pub kernel_timer: Option<RefCell<Vec<(String, CudaEvent, CudaEvent)>>>,
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

    /// Threads per block of the tensor-core prefill attention kernel for `hd` as compiled. A kernel
    /// whose warpgroups trade registers (attention_ws256.cu: setmaxnreg, `attn_shapes::ws_regs_fit`)
    /// must have been assembled with enough registers a thread for the consumers' share, or their
    /// setmaxnreg.inc would wait forever: checked here, before the host plans any launch.
    pub fn tc_threads(&self, sx: &str, hd: usize) -> Result<usize> {
        let threads = self.tc_multiple_of(&format!("attention_tc_threads_{sx}_{hd}"), 32)?;
        if threads == super::attn_shapes::WS_REGS_THREADS {
            let name = format!("attention_tc_{sx}_{hd}");
            let regs = self
                ._module
                .load_function(&name)
                .with_context(|| format!("kernel {name} not found"))?
                .num_regs()
                .with_context(|| format!("registers of {name}"))?;
            if !super::attn_shapes::ws_regs_fit(threads, regs as usize) {
                bail!("{name} was assembled with {regs} registers a thread for {threads} threads: too few for its warpgroups' setmaxnreg (attention_ws256.cu)");
            }
        }
        Ok(threads)
    }

    /// Dynamic shared memory of the tensor-core prefill attention kernel for `hd` as compiled.
    pub fn tc_smem(&self, sx: &str, hd: usize) -> Result<usize> {
        self.tc_multiple_of(&format!("attention_tc_smem_{sx}_{hd}"), 16)
    }

    /// Threads per block of the tensor-core decode attention kernel for `hd` as compiled.
    pub fn tcd_threads(&self, sx: &str, hd: usize) -> Result<usize> {
        self.tc_multiple_of(&format!("attention_tcd_threads_{sx}_{hd}"), 32)
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

/// Threads and shared-memory bytes of a `norm_residual` (common.cu) block, one block per row of
/// `cols`. Each thread takes one chunk of 8 columns (1 when `cols % 8 != 0`) where 1024 threads
/// allow, so all of a row's loads are issued at once and no thread waits for a second round after
/// the rest are done (256 threads over Gemma-2-2B's 288 chunks left 32 threads doing two, one more
/// memory latency per row). The shared memory stages the row, and in the post-norm path the residual
/// beside it, as 2-byte values.
pub fn norm_residual_block(cols: usize) -> (u32, u32) {
    let chunks = norm_residual_chunks(cols).max(1);
    let per_thread = chunks.div_ceil(1024);
    let threads = chunks.div_ceil(per_thread).div_ceil(32) * 32;
    (threads as u32, (cols * 4) as u32)
}

/// The column chunks of a `norm_residual` row: 16-byte vectors of 8 where `cols % 8 == 0` (every
/// catalog hidden size), else single columns (norm_residual's V in common.cu).
fn norm_residual_chunks(cols: usize) -> usize {
    if cols.is_multiple_of(8) {
        cols / 8
    } else {
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::{norm_residual_block, norm_residual_chunks, DType};

    /// 1 + x rounds to 1 below the unit roundoff and away from 1 above it (round to nearest).
    #[test]
    fn unit_roundoff_is_half_an_ulp_at_one() {
        for dt in [DType::Bf16, DType::F16] {
            let u = dt.unit_roundoff() as f32;
            assert_eq!(dt.decode(dt.encode(1.0 + 0.9 * u)), 1.0, "{dt:?}");
            assert!(dt.decode(dt.encode(1.0 + 1.1 * u)) > 1.0, "{dt:?}");
        }
    }

    /// The catalog's hidden sizes get one chunk of 8 columns per thread, whole warps, every chunk
    /// covered; rows wider than 1024 chunks share them out evenly.
    #[test]
    fn norm_residual_blocks_balance_the_row() {
        for (cols, threads) in [
            (1536, 192),
            (2048, 256),
            (2304, 288),
            (2560, 320),
            (3072, 384),
            (3584, 448),
            (4096, 512),
            (8192, 1024),
            (16384, 1024),
            (1000, 128),
            (1001, 1024),
            (2049, 704),
            (64, 32),
            (8, 32),
        ] {
            assert_eq!(
                norm_residual_block(cols),
                (threads, cols as u32 * 4),
                "{cols}"
            );
        }
        for cols in (8..40000).step_by(8).chain(1..3000) {
            let (t, _) = norm_residual_block(cols);
            let chunks = norm_residual_chunks(cols);
            let per = chunks.div_ceil(t as usize);
            assert!(t % 32 == 0 && (32..=1024).contains(&t), "{cols}: {t}");
            assert_eq!(per, chunks.div_ceil(1024), "{cols}: {t} threads");
        }
    }
}
