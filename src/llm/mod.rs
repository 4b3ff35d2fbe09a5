//! Architecture description of the LLMs the engine runs: the catalog of the published study's 13 LLMs, HF `config.json`
//! parsing, and the roofline numbers (parameters, FLOPs and bytes of prefill and decode).
//!
//! One `LlmConfig` carries every switch the engine needs for all five architectures (llama, qwen2,
//! opt, falcon, gemma2), so part 2 adds kernels, not a second config type.

mod catalog;
pub mod concurrency;
mod cost;
mod hf;

pub use catalog::{catalog, catalog_names, resolve_llm};
pub use cost::{Cost, DEFAULT_DTYPE_BYTES};
pub use hf::{parse_hf_config, read_hf_config};

use serde::{Deserialize, Serialize};

/// Architecture family (HF `model_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
    Opt,
    Falcon,
    Gemma2,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Opt => "opt",
            Arch::Falcon => "falcon",
            Arch::Gemma2 => "gemma2",
        }
    }
}

/// Normalisation layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    /// `x / rms(x) * w`.
    RmsNorm,
    /// Gemma's RMSNorm: `x / rms(x) * (1 + w)`.
    RmsNormPlusOne,
    /// `(x - mean) / std * w + b`.
    LayerNorm,
}

/// Feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ffn {
    /// `down(silu(gate(x)) * up(x))` (llama, qwen2).
    SwiGlu,
    /// `down(gelu_tanh(gate(x)) * up(x))` (gemma2).
    GeGluTanh,
    /// `fc2(relu(fc1(x)))` (opt).
    Relu,
    /// `fc2(gelu(fc1(x)))`, exact erf GELU (falcon).
    Gelu,
}

impl Ffn {
    /// Gated FFNs have three matrices (gate, up, down), plain ones two.
    pub fn gated(self) -> bool {
        matches!(self, Ffn::SwiGlu | Ffn::GeGluTanh)
    }
}

/// RoPE frequency scaling (HF `rope_scaling`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// Llama 3 piecewise scaling of the inverse frequencies.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: usize,
    },
    /// Positions divided by `factor`.
    Linear { factor: f64 },
}

/// How positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Positional {
    /// Rotary, rotate-half convention, on the full head dimension.
    Rope {
        theta: f64,
        scaling: Option<RopeScaling>,
    },
    /// Learned absolute position table, looked up at `position + offset` (OPT: offset 2).
    Learned { offset: usize },
    /// ALiBi attention bias (falcon-rw).
    Alibi,
}

/// Gemma-2 extras.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GemmaExtras {
    /// Attention logits: `cap * tanh(s / cap)` (50).
    pub attn_softcap: f32,
    /// Final logits: `cap * tanh(z / cap)` (30).
    pub final_softcap: f32,
    /// Sliding window on alternating layers (even layers 0, 2, ... are local, as in HF).
    pub sliding_window: usize,
    /// Query scale is `query_pre_attn_scalar^-0.5` instead of `head_dim^-0.5`.
    pub query_pre_attn_scalar: f64,
}

/// Everything the engine and the roofline counts need about one LLM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    pub name: String,
    pub arch: Arch,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    /// Longest sequence (n + m) the engine accepts.
    pub max_positions: usize,
    pub norm: Norm,
    pub norm_eps: f64,
    pub ffn: Ffn,
    pub positional: Positional,
    /// Bias on q, k, v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Bias on the FFN matrices.
    pub mlp_bias: bool,
    /// LM head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Embeddings multiplied by sqrt(hidden) (gemma).
    pub embed_scale: bool,
    /// Extra norms after attention and after the FFN (gemma2: 4 norms per layer).
    pub post_norms: bool,
    pub gemma: Option<GemmaExtras>,
}

/// Upper bounds on the sizes of an `LlmConfig` (from a config.json or the catalog). Each is
/// many times the largest published LLM's, and together they keep the parameter count below
/// 2^60 so every product in `cost` is exact.
pub const MAX_HIDDEN: usize = 1 << 20;
pub const MAX_LAYERS: usize = 4096;
pub const MAX_HEADS: usize = 1 << 14;
pub const MAX_HEAD_DIM: usize = 1 << 14;
pub const MAX_FFN: usize = 1 << 22;
pub const MAX_VOCAB: usize = 1 << 24;
pub const MAX_POSITIONS: usize = 1 << 24;

impl LlmConfig {
    /// Query heads per KV head (GQA group size).
    pub fn group_size(&self) -> usize {
        self.heads / self.kv_heads.max(1)
    }
    /// Width of the attention projection outputs.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    /// Sliding-window width of `layer`, None for global attention. Gemma-2 alternates, starting
    /// with a local layer: HF's default `layer_types` is "sliding_attention" for even indices
    /// (`bool((i + 1) % 2)`); config.json files with any other pattern are refused by the parser.
    pub fn sliding_window(&self, layer: usize) -> Option<usize> {
        match self.gemma {
            Some(g) if layer.is_multiple_of(2) && g.sliding_window < self.max_positions => {
                Some(g.sliding_window)
            }
            _ => None,
        }
    }
    /// Factor on q·k: `head_dim^-0.5`, or Gemma-2's `query_pre_attn_scalar^-0.5`. (HF OPT multiplies
    /// q by `head_dim^-0.5` right after its biased projection: the same factor on the scores.)
    pub fn attn_scale(&self) -> f64 {
        match self.gemma {
            Some(g) => g.query_pre_attn_scalar.powf(-0.5),
            None => (self.head_dim as f64).powf(-0.5),
        }
    }
    /// Shape checks shared by the catalog and config.json parsing.
    pub fn validate(&self) -> anyhow::Result<()> {
        let n = &self.name;
        // Stated bounds, far above any real LLM: they catch typos and unit slips, and keep every
        // size product (parameters, bytes, FLOPs) exact in 64 bits, so no count wraps and no
        // estimate under-reports.
        for (field, v, max) in [
            ("hidden_size", self.hidden, MAX_HIDDEN),
            ("num_hidden_layers", self.layers, MAX_LAYERS),
            ("num_attention_heads", self.heads, MAX_HEADS),
            ("num_key_value_heads", self.kv_heads, MAX_HEADS),
            ("head_dim", self.head_dim, MAX_HEAD_DIM),
            ("intermediate_size", self.ffn_dim, MAX_FFN),
            ("vocab_size", self.vocab, MAX_VOCAB),
            ("max_position_embeddings", self.max_positions, MAX_POSITIONS),
        ] {
            anyhow::ensure!(v > 0, "LLM {n}: {field} must be > 0, got {v}");
            anyhow::ensure!(
                v <= max,
                "LLM {n}: {field} {v} is implausibly large, above the supported bound {max}"
            );
        }
        anyhow::ensure!(
            self.heads * self.head_dim <= MAX_HIDDEN,
            "LLM {n}: num_attention_heads × head_dim = {} is above the supported bound {MAX_HIDDEN}",
            self.heads * self.head_dim
        );
        anyhow::ensure!(
            self.heads.is_multiple_of(self.kv_heads),
            "LLM {n}: num_attention_heads {} is not a multiple of num_key_value_heads {}",
            self.heads,
            self.kv_heads
        );
        anyhow::ensure!(
            self.head_dim.is_multiple_of(2),
            "LLM {n}: head_dim {} must be even",
            self.head_dim
        );
        Ok(())
    }
}

/// ALiBi slopes of `heads` heads (Press et al.; HF falcon/bloom `build_alibi_tensor`): for the
/// largest power of two p <= heads, slope_h = b^h (h = 1..p) with b = 2^(-8/p); the remaining heads
/// take the odd powers 1, 3, 5, ... of 2^(-4/p) (the series of 2p heads, every other one).
pub fn alibi_slopes(heads: usize) -> Vec<f64> {
    if heads == 0 {
        return Vec::new();
    }
    let p = 1usize << (usize::BITS - 1 - heads.leading_zeros());
    let base = 2f64.powf(-8.0 / p as f64);
    let mut s: Vec<f64> = (1..=p).map(|h| base.powi(h as i32)).collect();
    if p < heads {
        let extra = 2f64.powf(-4.0 / p as f64);
        s.extend((0..(heads - p).min(p)).map(|k| extra.powi(2 * k as i32 + 1)));
    }
    s
}
