//! What keeps the host off the GPU's critical path: a pinned staging ring for the per-iteration
//! metadata (copies from pageable memory synchronise the stream, pinned ones do not, so the host
//! plans iteration k+1 while the GPU runs k) and a cache of CUDA graphs for decode iterations
//! (one graph replays the ~10 launches per layer with one driver call).

use super::device::DevSlice;
use anyhow::{anyhow, bail, Context, Result};
use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaEvent, CudaGraph, CudaStream, PinnedHostSlice,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Slots in the staging ring: how many uploads the host may run ahead of the GPU.
const STAGE_SLOTS: usize = 8;

pub struct Stager {
    slots: Vec<(PinnedHostSlice<i32>, CudaEvent)>,
    next: usize,
    cap: usize,
}

impl Stager {
    pub fn new(ctx: &Arc<CudaContext>, cap_ints: usize) -> Result<Stager> {
        let mut slots = Vec::with_capacity(STAGE_SLOTS);
        for _ in 0..STAGE_SLOTS {
            // SAFETY: the memory is written before any copy reads it.
            let host =
                unsafe { ctx.alloc_pinned::<i32>(cap_ints) }.context("pinned host buffer")?;
            let ev = ctx.new_event(None).context("event")?;
            slots.push((host, ev));
        }
        Ok(Stager {
            slots,
            next: 0,
            cap: cap_ints,
        })
    }

    /// Ints one upload may carry.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Queue copies of `parts` (device view, ints to its start) through one pinned slot. The slot
    /// is reused only after the GPU has consumed its previous copies (event wait), so this blocks
    /// the host only when it is a whole ring ahead.
    pub fn upload(
        &mut self,
        stream: &CudaStream,
        parts: &[(DevSlice<'_, i32>, &[i32])],
    ) -> Result<()> {
        if let Some((d, s)) = parts.iter().find(|(d, s)| s.len() > d.len()) {
            bail!(
                "staged upload of {} ints into a view of {}",
                s.len(),
                d.len()
            );
        }
        let total: usize = parts.iter().map(|p| p.1.len()).sum();
        if total > self.cap {
            bail!(
                "staged upload of {total} ints exceeds the staging buffer ({})",
                self.cap
            );
        }
        let (host, ev) = &mut self.slots[self.next];
        self.next = (self.next + 1) % STAGE_SLOTS;
        ev.synchronize().context("waiting for a staging slot")?;
        let buf = host.as_mut_slice().context("pinned buffer")?;
        let mut o = 0;
        for (dst, src) in parts {
            if src.is_empty() {
                continue;
            }
            buf[o..o + src.len()].copy_from_slice(src);
            // SAFETY: dst is a live view of at least src.len() ints (checked above); the pinned
            // source stays untouched until `ev` (recorded below) has completed.
            unsafe {
                drv::memcpy_htod_async(dst.addr(), &buf[o..o + src.len()], stream.cu_stream())
            }
            .context("staged copy to device")?;
            o += src.len();
        }
        ev.record(stream).context("event record")
    }
}

/// Shape of a decode iteration: everything a captured graph bakes in besides fixed buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GraphKey {
    pub tokens: usize,
    pub samples: usize,
    pub decode_items: usize,
    pub combines: usize,
}

/// Decode graphs of the current run. A shape is captured the second time it is seen (shapes seen
/// once, as while a batch fills, are launched directly), so capture cost is paid only for shapes that
/// repeat, which in a grid point is nearly every decode iteration.
#[derive(Default)]
pub struct GraphCache {
    graphs: HashMap<GraphKey, CudaGraph>,
    seen: HashMap<GraphKey, u32>,
    pub captures: usize,
    pub replays: usize,
}

/// Most graphs kept; beyond it the cache is cleared (shapes change slowly in a grid point).
const MAX_GRAPHS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphUse {
    /// Launch the kernels directly.
    Direct,
    /// Capture the launches, then call `finish_capture`.
    Capture,
    /// Replay the cached graph (`replay`).
    Replay,
}

impl GraphCache {
    pub fn clear(&mut self) {
        self.graphs.clear();
        self.seen.clear();
    }

    pub fn lookup(&mut self, key: GraphKey) -> GraphUse {
        if self.graphs.contains_key(&key) {
            return GraphUse::Replay;
        }
        let n = self.seen.entry(key).or_insert(0);
        *n += 1;
        if *n >= 2 {
            GraphUse::Capture
        } else {
            GraphUse::Direct
        }
    }

    pub fn begin_capture(stream: &CudaStream) -> Result<()> {
        stream
            .begin_capture(drv_sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .context("begin graph capture")
    }

    /// End the capture begun for `key`, store and launch the graph.
    pub fn finish_capture(&mut self, stream: &Arc<CudaStream>, key: GraphKey) -> Result<()> {
        let g = stream
            .end_capture(drv_sys::CUgraphInstantiate_flags(0))
            .context("end graph capture")?
            .ok_or_else(|| anyhow!("graph capture recorded nothing"))?;
        g.launch().context("graph launch")?;
        if self.graphs.len() >= MAX_GRAPHS {
            self.graphs.clear();
        }
        self.graphs.insert(key, g);
        self.captures += 1;
        Ok(())
    }

    pub fn replay(&mut self, key: GraphKey) -> Result<()> {
        let g = self
            .graphs
            .get(&key)
            .ok_or_else(|| anyhow!("no graph for {key:?}"))?;
        g.launch().context("graph launch")?;
        self.replays += 1;
        Ok(())
    }

    /// Abandon a capture after an error so the stream is usable again.
    pub fn abort_capture(stream: &Arc<CudaStream>) {
        let _ = stream.end_capture(drv_sys::CUgraphInstantiate_flags(0));
    }
}
