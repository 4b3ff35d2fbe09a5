//! The forward's GEMMs (cuBLAS) as data: shape and buffers of each, one list that `launch_all`
//! runs and that `Engine::warm_gemm_shapes` runs at every row count, so the warm-up cannot miss a
//! shape the forward uses.

use super::device::{DType, DevBuf, Device};
use super::forward::Buffers;
use super::weights::{LayerWeights, Weights};
use crate::llm::LlmConfig;
use anyhow::Result;

/// One GEMM of the forward: y[rows × n] = x[rows × k] · w[n × k]ᵀ on fixed buffers.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub n: usize,
    pub k: usize,
    pub x: u64,
    pub w: u64,
    pub y: u64,
}

impl Gemm {
    pub fn run(&self, dev: &Device, dt: DType, rows: usize) -> Result<()> {
        dev.gemm(dt, rows, self.n, self.k, self.x, self.w, self.y)
    }
}

/// A layer's GEMMs, on the buffers the forward uses.
pub struct LayerGemms {
    pub qkv: Gemm,
    pub o: Gemm,
    pub up: Gemm,
    pub down: Gemm,
}

pub fn layer_gemms(c: &LlmConfig, b: &Buffers, lw: &LayerWeights) -> LayerGemms {
    let h = c.hidden;
    let g = |n, k, x: &DevBuf, w: &DevBuf, y: &DevBuf| Gemm {
        n,
        k,
        x: x.ptr,
        w: w.ptr,
        y: y.ptr,
    };
    LayerGemms {
        qkv: g(c.q_dim() + 2 * c.kv_dim(), h, &b.xn, &lw.qkv, &b.qkv),
        o: g(h, c.q_dim(), &b.attn, &lw.o, &b.tmp),
        up: g(super::weights::up_rows(c), h, &b.xn, &lw.up, &b.up),
        down: g(h, c.ffn_dim, &b.act, &lw.down, &b.tmp),
    }
}

/// The LM head over the gathered last rows (`b.xs`, at most max_batch_size of them).
pub fn lm_head_gemm(c: &LlmConfig, b: &Buffers, w: &Weights) -> Gemm {
    Gemm {
        n: c.vocab,
        k: c.hidden,
        x: b.xs.ptr,
        w: w.lm_head_ptr(),
        y: b.logits.ptr,
    }
}
