//! Roofline numbers: parameter count, FLOPs and minimal bytes of a prefill and of one decode step.
//!
//! Conventions (documented because `bench` compares measured times with these floors):
//! - FLOPs count matrix products only, 2 per multiply-add: the projections and FFN of every token,
//!   the attention scores and weighted sum (causal: query i attends to i keys, or to at most the
//!   window on Gemma-2's local layers), and the LM head for one token per sequence (prefill emits
//!   logits for the last prompt token only). Norms, biases, activations, softmax are left out (<1 %).
//! - Bytes are the fewest a perfect engine moves: every weight read once per forward (LM head
//!   matrix included, tied or not), the gathered embedding rows, KV written for new tokens and KV
//!   read once per sequence and layer in decode. Activations between fused stages are left out.

use super::{Ffn, LlmConfig, Norm, Positional};
use serde::Serialize;

/// Bytes per element of the default dtype (bf16).
pub const DEFAULT_DTYPE_BYTES: usize = 2;

/// FLOPs and bytes of one forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

impl LlmConfig {
    /// Matrix weights of one layer (q, k, v, o, FFN).
    pub fn layer_matrix_params(&self) -> usize {
        let h = self.hidden;
        let attn = h * self.q_dim() + 2 * h * self.kv_dim() + self.q_dim() * h;
        let mats = if self.ffn.gated() { 3 } else { 2 };
        attn + mats * h * self.ffn_dim
    }

    /// Biases and norm weights of one layer.
    pub fn layer_small_params(&self) -> usize {
        let h = self.hidden;
        let mut p = 0;
        if self.qkv_bias {
            p += self.q_dim() + 2 * self.kv_dim();
        }
        if self.o_bias {
            p += h;
        }
        if self.mlp_bias {
            p += h + if self.ffn.gated() {
                2 * self.ffn_dim
            } else {
                self.ffn_dim
            };
        }
        let norms = if self.post_norms { 4 } else { 2 };
        p + norms * self.norm_params()
    }

    fn norm_params(&self) -> usize {
        match self.norm {
            Norm::LayerNorm => 2 * self.hidden,
            Norm::RmsNorm | Norm::RmsNormPlusOne => self.hidden,
        }
    }

    /// Rows of the learned position table (OPT), 0 otherwise.
    pub fn position_rows(&self) -> usize {
        match self.positional {
            Positional::Learned { offset } => self.max_positions + offset,
            _ => 0,
        }
    }

    /// Total parameters as stored in a checkpoint (tied LM head counted once).
    pub fn params(&self) -> usize {
        let emb = self.vocab * self.hidden + self.position_rows() * self.hidden;
        let head = if self.tied_embeddings {
            0
        } else {
            self.vocab * self.hidden
        };
        emb + self.layers * (self.layer_matrix_params() + self.layer_small_params())
            + self.norm_params()
            + head
    }

    /// Matrix FLOPs per token excluding attention scores: 2 × (layer matrices + LM head).
    pub fn flops_per_token(&self) -> f64 {
        2.0 * (self.layers * self.layer_matrix_params() + self.vocab * self.hidden) as f64
    }

    /// KV-cache bytes one token occupies (all layers, K and V).
    pub fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        2 * self.layers * self.kv_dim() * dtype_bytes
    }

    /// Bytes of every weight a forward pass reads once (LM head matrix included, embedding excluded
    /// unless it is the tied LM head).
    pub fn weight_read_bytes(&self, dtype_bytes: usize) -> f64 {
        let p = self.layers * (self.layer_matrix_params() + self.layer_small_params())
            + self.norm_params()
            + self.vocab * self.hidden;
        (p * dtype_bytes) as f64
    }

    /// Keys a query at 1-based position `pos` attends to in `layer` (sliding window on Gemma-2's
    /// even layers).
    pub fn keys_attended(&self, layer: usize, pos: usize) -> usize {
        self.sliding_window(layer).map_or(pos, |w| pos.min(w))
    }

    /// Layers with a sliding window (Gemma-2's even layers) and with global attention: closed
    /// form, so no count loops over the layers.
    fn window_layers(&self) -> (f64, f64) {
        let windowed = match self.gemma {
            Some(g) if g.sliding_window < self.max_positions => self.layers.div_ceil(2),
            _ => 0,
        };
        (windowed as f64, (self.layers - windowed) as f64)
    }

    /// Σ over queries 1..=n of keys attended, summed over layers.
    fn causal_pairs(&self, n: usize) -> f64 {
        let (windowed, global) = self.window_layers();
        let nf = n as f64;
        let full = nf * (nf + 1.0) / 2.0;
        let local = match self.gemma.map(|g| g.sliding_window) {
            Some(w) if n > w && windowed > 0.0 => {
                let w = w as f64;
                w * (w + 1.0) / 2.0 + (nf - w) * w
            }
            _ => full,
        };
        global * full + windowed * local
    }

    /// Prefill of `batch` sequences of `n` tokens each.
    pub fn prefill_cost(&self, batch: usize, n: usize, dtype_bytes: usize) -> Cost {
        let (b, nf) = (batch as f64, n as f64);
        let per_pair = 4.0 * self.q_dim() as f64; // QKᵀ and PV, 2 FLOPs per MAC each
        let lin = 2.0 * (self.layers * self.layer_matrix_params()) as f64;
        let flops = b
            * (nf * lin
                + per_pair * self.causal_pairs(n)
                + 2.0 * (self.vocab * self.hidden) as f64);
        let tokens = b * nf;
        let rows = tokens
            * (self.hidden * dtype_bytes) as f64
            * if self.position_rows() > 0 { 2.0 } else { 1.0 };
        let bytes = self.weight_read_bytes(dtype_bytes)
            + rows
            + tokens * self.kv_bytes_per_token(dtype_bytes) as f64;
        Cost { flops, bytes }
    }

    /// One decode step of `batch` sequences, each attending to `context` keys (its prompt, the
    /// tokens generated so far and the new one).
    pub fn decode_cost(&self, batch: usize, context: usize, dtype_bytes: usize) -> Cost {
        let attn = self.decode_attention_cost(batch, context, dtype_bytes);
        let b = batch as f64;
        let rows = b
            * (self.hidden * dtype_bytes) as f64
            * if self.position_rows() > 0 { 2.0 } else { 1.0 };
        Cost {
            flops: b * self.flops_per_token() + attn.flops,
            bytes: self.weight_read_bytes(dtype_bytes) + rows + attn.bytes,
        }
    }

    /// The attention part of `decode_cost`: scores and weighted sums over the attended keys, the
    /// keys and values of every layer read and the new token's written. A step runs attention
    /// between its matrix products, not beside them, so `bench` also reports the floor of the two
    /// parts one after the other.
    pub fn decode_attention_cost(&self, batch: usize, context: usize, dtype_bytes: usize) -> Cost {
        let b = batch as f64;
        let (windowed, global) = self.window_layers();
        let local = match self.gemma.map(|g| g.sliding_window) {
            Some(w) if windowed > 0.0 => context.min(w),
            _ => context,
        };
        let keys = global * context as f64 + windowed * local as f64;
        let kv_layer_token = (2 * self.kv_dim() * dtype_bytes) as f64;
        Cost {
            flops: b * 4.0 * self.q_dim() as f64 * keys,
            bytes: b * kv_layer_token * (keys + self.layers as f64),
        }
    }
}

impl Ffn {
    /// HF activation name, for display.
    pub fn label(self) -> &'static str {
        match self {
            Ffn::SwiGlu => "swiglu",
            Ffn::GeGluTanh => "geglu",
            Ffn::Relu => "relu",
            Ffn::Gelu => "gelu",
        }
    }
}
