//! The forward's GEMMs (cuBLAS) as data: shape and buffers of each, one list that `launch_all`
//! runs and that `Engine::warm_gemm_shapes` runs at every row count, so the warm-up cannot miss a
//! shape the forward uses.

use super::device::{DType, DevBuf, DevSlice, Device};
use super::forward::Buffers;
use super::weights::{LayerWeights, Weights};
use crate::llm::LlmConfig;
use anyhow::Result;

/// One GEMM of the forward: y[rows × n] = x[rows × k] · w[n × k]ᵀ on fixed buffers (16-bit
/// storage; `Device::gemm` checks that they hold `rows` rows).
#[derive(Clone, Copy)]
pub struct Gemm<'a> {
    pub n: usize,
    pub k: usize,
    pub x: DevSlice<'a, u16>,
    pub w: DevSlice<'a, u16>,
    pub y: DevSlice<'a, u16>,
}

impl Gemm<'_> {
    pub fn run(&self, dev: &Device, dt: DType, rows: usize) -> Result<()> {
        dev.gemm(dt, rows, self.n, self.k, self.x, self.w, self.y)
    }
}

/// A layer's GEMMs, on the buffers the forward uses.
pub struct LayerGemms<'a> {
    pub qkv: Gemm<'a>,
    pub o: Gemm<'a>,
    pub up: Gemm<'a>,
    pub down: Gemm<'a>,
}

pub fn layer_gemms<'a>(c: &LlmConfig, b: &'a Buffers, lw: &'a LayerWeights) -> LayerGemms<'a> {
    let h = c.hidden;
    let g = |n, k, x: &'a DevBuf, w: &'a DevBuf, y: &'a DevBuf| Gemm {
        n,
        k,
        x: x.view(),
        w: w.view(),
        y: y.view(),
    };
    LayerGemms {
        qkv: g(c.q_dim() + 2 * c.kv_dim(), h, &b.xn, &lw.qkv, &b.qkv),
        o: g(h, c.q_dim(), &b.attn, &lw.o, &b.tmp),
        up: g(super::weights::up_rows(c), h, &b.xn, &lw.up, &b.up),
        down: g(h, c.ffn_dim, &b.act, &lw.down, &b.tmp),
    }
}

/// The LM head over the gathered last rows (`b.xs`, at most max_batch_size of them).
pub fn lm_head_gemm<'a>(c: &LlmConfig, b: &'a Buffers, w: &'a Weights) -> Gemm<'a> {
    Gemm {
        n: c.vocab,
        k: c.hidden,
        x: b.xs.view(),
        w: w.lm_head().view(),
        y: b.logits.view(),
    }
}
