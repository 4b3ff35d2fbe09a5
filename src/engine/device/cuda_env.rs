//! The CUDA toolkit as found on this machine: the driver, NVRTC and cuBLAS libraries (loaded at
//! run time, so a missing one is an error rather than a panic), the headers NVRTC compiles
//! against, and the architecture the kernels are built for.

use anyhow::{anyhow, bail, Result};
use cudarc::cublas::sys as blas_sys;
use cudarc::driver::sys as drv_sys;
use std::path::PathBuf;

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
/// and setmaxnreg the prefill kernels attention_ws.cu and attention_ws256.cu need; `--gpu-architecture=sm_90` there gives
/// attention_tc at every head dim.
pub(super) fn nvrtc_arch(extra: &[String], maj: i32, min: i32) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::nvrtc_arch;

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
}
