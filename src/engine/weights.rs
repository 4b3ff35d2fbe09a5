//! Model weights on the GPU: random (seeded, generated on the device, scaled so activations stay
//! O(1) through every layer) or loaded from a local HF checkpoint directory (`checkpoint.rs`),
//! converted to the run dtype. Projections are fused: q|k|v into one matrix, gate|up into one, so
//! each block is one GEMM.

use super::device::{grid_for, DType, DevBuf, Device};
use super::launches::FillUniform;
use crate::llm::{LlmConfig, Norm};
use anyhow::{Context, Result};

pub use super::checkpoint::load;

/// A norm's weight and, for LayerNorm, its bias.
pub type NormWeights = (DevBuf, Option<DevBuf>);

/// One layer's device weights. Row-major [out, in] like HF.
pub struct LayerWeights {
    pub qkv: DevBuf,
    pub qkv_b: Option<DevBuf>,
    pub o: DevBuf,
    pub o_b: Option<DevBuf>,
    /// [2·ffn, hidden] (gate|up) for gated FFNs, [ffn, hidden] otherwise.
    pub up: DevBuf,
    pub up_b: Option<DevBuf>,
    pub down: DevBuf,
    pub down_b: Option<DevBuf>,
    /// Norm before attention and before the FFN.
    pub norm1: NormWeights,
    pub norm2: NormWeights,
    /// Gemma-2: norms of the attention output and of the FFN output, before the residual add.
    pub post_attn: Option<NormWeights>,
    pub post_ffn: Option<NormWeights>,
}

pub struct Weights {
    pub embed: DevBuf,
    pub positions: Option<DevBuf>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: NormWeights,
    /// None: tied to `embed`.
    pub lm_head: Option<DevBuf>,
}

impl Weights {
    /// The LM head's matrix: its own, else the tied embedding.
    pub fn lm_head(&self) -> &DevBuf {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }
}

pub(crate) fn up_rows(c: &LlmConfig) -> usize {
    if c.ffn.gated() {
        2 * c.ffn_dim
    } else {
        c.ffn_dim
    }
}

struct Rng {
    seed: u64,
    counter: u64,
    dt: DType,
}

impl Rng {
    fn fill(&mut self, dev: &mut Device, n: usize, std: f32, offset: f32) -> Result<DevBuf> {
        let b = dev.alloc(n * self.dt.bytes())?;
        self.counter += 1;
        let s = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(self.counter);
        let a = std * 3f32.sqrt();
        let f = FillUniform {
            out: b.dptr(),
            n: n as i64,
            seed: s,
            scale: a,
            offset,
        };
        let grid = grid_for(n, 256, dev.sms);
        let name = format!("fill_uniform_{}", self.dt.suffix());
        // SAFETY: b holds the n elements written.
        unsafe { f.launch(dev, &name, grid, 256, 0)? };
        Ok(b)
    }
    fn bias(&mut self, dev: &mut Device, on: bool, n: usize) -> Result<Option<DevBuf>> {
        if on {
            Ok(Some(self.fill(dev, n, 0.05, 0.0)?))
        } else {
            Ok(None)
        }
    }
    /// Norm weights with effective scale 1 ± 0.1 (`1 + w` on Gemma's RMSNorm), LayerNorm biases.
    fn norm(&mut self, dev: &mut Device, c: &LlmConfig) -> Result<NormWeights> {
        let offset = if c.norm == Norm::RmsNormPlusOne {
            0.0
        } else {
            1.0
        };
        let w = self.fill(dev, c.hidden, 0.1 / 3f32.sqrt(), offset)?;
        Ok((w, self.bias(dev, c.norm == Norm::LayerNorm, c.hidden)?))
    }
}

/// Random weights: matrices uniform with std 1/sqrt(fan_in), norm weights 1 ± 0.1, biases std 0.05,
/// embeddings (and OPT's positions) std 1 — std 1/sqrt(hidden) where the embedding is scaled by
/// sqrt(hidden) (Gemma), so the residual stream starts O(1) and the tied LM head gives O(1) logits
/// under the final soft-cap. The norm before every block (and Gemma's norms after) keep the
/// residual stream O(sqrt(layers)).
pub fn random(dev: &mut Device, c: &LlmConfig, dt: DType, seed: u64) -> Result<Weights> {
    let mut r = Rng {
        seed,
        counter: 0,
        dt,
    };
    let h = c.hidden;
    let qkv_rows = c.q_dim() + 2 * c.kv_dim();
    let mut layers = Vec::with_capacity(c.layers);
    for _ in 0..c.layers {
        let norm1 = r.norm(dev, c)?;
        let norm2 = r.norm(dev, c)?;
        let (post_attn, post_ffn) = if c.post_norms {
            (Some(r.norm(dev, c)?), Some(r.norm(dev, c)?))
        } else {
            (None, None)
        };
        let qkv = r.fill(dev, qkv_rows * h, 1.0 / (h as f32).sqrt(), 0.0)?;
        let qkv_b = r.bias(dev, c.qkv_bias, qkv_rows)?;
        let o = r.fill(dev, h * c.q_dim(), 1.0 / (c.q_dim() as f32).sqrt(), 0.0)?;
        let o_b = r.bias(dev, c.o_bias, h)?;
        let up = r.fill(dev, up_rows(c) * h, 1.0 / (h as f32).sqrt(), 0.0)?;
        let up_b = r.bias(dev, c.mlp_bias, up_rows(c))?;
        let down = r.fill(dev, h * c.ffn_dim, 1.0 / (c.ffn_dim as f32).sqrt(), 0.0)?;
        let down_b = r.bias(dev, c.mlp_bias, h)?;
        layers.push(LayerWeights {
            qkv,
            qkv_b,
            o,
            o_b,
            up,
            up_b,
            down,
            down_b,
            norm1,
            norm2,
            post_attn,
            post_ffn,
        });
    }
    let emb_std = if c.embed_scale {
        1.0 / (h as f32).sqrt()
    } else {
        1.0
    };
    let embed = r.fill(dev, c.vocab * h, emb_std, 0.0)?;
    let positions = if c.position_rows() > 0 {
        Some(r.fill(dev, c.position_rows() * h, 1.0, 0.0)?)
    } else {
        None
    };
    let final_norm = r.norm(dev, c)?;
    let lm_head = if c.tied_embeddings {
        None
    } else {
        Some(r.fill(dev, c.vocab * h, emb_std, 0.0)?)
    };
    dev.sync().context("generating random weights")?;
    Ok(Weights {
        embed,
        positions,
        layers,
        final_norm,
        lm_head,
    })
}
