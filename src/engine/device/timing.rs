//! Per-kernel timing for `bench --kernels`: CUDA events around each launch and GEMM while the
//! device's kernel timer is on, summed by name.

use super::Device;
use anyhow::{Context, Result};
use cudarc::driver::{sys as drv_sys, CudaEvent};
use std::collections::HashMap;

/// GPU time of one kernel (or GEMM shape) summed over its launches.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    pub name: String,
    pub ms: f64,
    pub launches: usize,
}

impl Device {
    /// Run `f` (one launch or GEMM), bracketed by events under `name()` when the kernel timer is on.
    pub(super) fn timed(
        &self,
        name: impl FnOnce() -> String,
        f: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
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
}

/// Milliseconds between two recorded events (both complete).
pub fn elapsed_ms(a: &CudaEvent, b: &CudaEvent) -> Result<f64> {
    Ok(a.elapsed_ms(b).context("event elapsed")? as f64)
}
