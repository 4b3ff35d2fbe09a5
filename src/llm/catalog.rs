//! The 13 LLMs of the published study (docs/method.md), as `LlmConfig`s, and name-or-path resolution for `--llm`.
//!
//! Shapes follow the public HF config.json files. `max_positions` is raised to at least 8192 for the
//! entries whose checkpoints stop short of the published grid (n + m up to 8192: OPT's learned
//! table, falcon-rw, granite-3b): the engine runs them with random weights there, like the paper.

use super::{Arch, Ffn, GemmaExtras, LlmConfig, Norm, Positional, RopeScaling};
use anyhow::{Context, Result};
use std::path::Path;

/// Longest sequence of the published grid (4096 + 4096).
const GRID_MAX: usize = 8192;

fn llama3(factor: f64) -> Positional {
    Positional::Rope {
        theta: 500_000.0,
        scaling: Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_positions: 8192,
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn base(
    name: &str,
    arch: Arch,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    hd: usize,
    ffn: usize,
    vocab: usize,
) -> LlmConfig {
    LlmConfig {
        name: name.to_string(),
        arch,
        hidden,
        layers,
        heads,
        kv_heads: kv,
        head_dim: hd,
        ffn_dim: ffn,
        vocab,
        max_positions: GRID_MAX,
        norm: Norm::RmsNorm,
        norm_eps: 1e-5,
        ffn: Ffn::SwiGlu,
        positional: Positional::Rope {
            theta: 10_000.0,
            scaling: None,
        },
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        tied_embeddings: false,
        embed_scale: false,
        post_norms: false,
        gemma: None,
    }
}

/// OPT: the HF checkpoints have 2048 + 2 learned positions (offset 2), too few for the grid's
/// 8192-token sequences; with random weights the table gets `GRID_MAX + 2` rows (`position_rows`).
/// Lengths are enforced against `max_positions` by `Engine::run_requests` and the measure plan
/// (`measure::cost`); a real checkpoint keeps its own 2048.
fn opt(name: &str, hidden: usize, layers: usize, heads: usize) -> LlmConfig {
    LlmConfig {
        norm: Norm::LayerNorm,
        ffn: Ffn::Relu,
        positional: Positional::Learned { offset: 2 },
        qkv_bias: true,
        o_bias: true,
        mlp_bias: true,
        tied_embeddings: true,
        ..base(
            name,
            Arch::Opt,
            hidden,
            layers,
            heads,
            heads,
            hidden / heads,
            4 * hidden,
            50272,
        )
    }
}

fn gemma2(
    name: &str,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    ffn: usize,
) -> LlmConfig {
    LlmConfig {
        norm: Norm::RmsNormPlusOne,
        norm_eps: 1e-6,
        ffn: Ffn::GeGluTanh,
        tied_embeddings: true,
        embed_scale: true,
        post_norms: true,
        gemma: Some(GemmaExtras {
            attn_softcap: 50.0,
            final_softcap: 30.0,
            sliding_window: 4096,
            query_pre_attn_scalar: 256.0,
        }),
        ..base(
            name,
            Arch::Gemma2,
            hidden,
            layers,
            heads,
            kv,
            256,
            ffn,
            256000,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn qwen2(
    name: &str,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    ffn: usize,
    vocab: usize,
    tied: bool,
) -> LlmConfig {
    LlmConfig {
        norm_eps: 1e-6,
        max_positions: 131072,
        positional: Positional::Rope {
            theta: 1_000_000.0,
            scaling: None,
        },
        qkv_bias: true,
        tied_embeddings: tied,
        ..base(
            name,
            Arch::Qwen2,
            hidden,
            layers,
            heads,
            kv,
            hidden / heads,
            ffn,
            vocab,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn granite(
    name: &str,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    ffn: usize,
    theta: f64,
    max_pos: usize,
) -> LlmConfig {
    LlmConfig {
        positional: Positional::Rope {
            theta,
            scaling: None,
        },
        max_positions: max_pos.max(GRID_MAX),
        qkv_bias: true,
        o_bias: true,
        mlp_bias: true,
        tied_embeddings: true,
        ..base(
            name,
            Arch::Llama,
            hidden,
            layers,
            heads,
            kv,
            hidden / heads,
            ffn,
            49152,
        )
    }
}

/// All 13 catalog LLMs, in the study's order (by size).
pub fn catalog() -> Vec<LlmConfig> {
    let llama = |name: &str, hidden, layers, heads, kv, ffn, tied, factor| LlmConfig {
        positional: llama3(factor),
        max_positions: 131072,
        tied_embeddings: tied,
        ..base(
            name,
            Arch::Llama,
            hidden,
            layers,
            heads,
            kv,
            hidden / heads,
            ffn,
            128256,
        )
    };
    vec![
        llama("llama-3.2-1b", 2048, 16, 32, 8, 8192, true, 32.0),
        opt("opt-1.3b", 2048, 24, 32),
        qwen2("qwen2-1.5b", 1536, 28, 12, 2, 8960, 151936, true),
        gemma2("gemma-2-2b", 2304, 26, 8, 4, 9216),
        opt("opt-2.7b", 2560, 32, 32),
        llama("llama-3.2-3b", 3072, 28, 24, 8, 8192, true, 32.0),
        granite("granite-3b", 2560, 32, 32, 32, 10240, 10_000.0, 2048),
        opt("opt-6.7b", 4096, 32, 32),
        qwen2("qwen2-7b", 3584, 28, 28, 4, 18944, 152064, false),
        // falcon-rw-7b (rw-style config: alibi, bias, multi_query false, parallel_attn false,
        // new_decoder_architecture false): ALiBi has no position table, so 8192 costs nothing.
        LlmConfig {
            norm: Norm::LayerNorm,
            ffn: Ffn::Gelu,
            positional: Positional::Alibi,
            qkv_bias: true,
            o_bias: true,
            mlp_bias: true,
            tied_embeddings: true,
            ..base(
                "falcon-rw-7b",
                Arch::Falcon,
                4096,
                36,
                64,
                64,
                64,
                16384,
                65024,
            )
        },
        granite("granite-8b", 4096, 36, 32, 8, 14336, 10_000_000.0, 4096),
        llama("llama-3.1-8b", 4096, 32, 32, 8, 14336, false, 8.0),
        gemma2("gemma-2-9b", 3584, 42, 16, 8, 14336),
    ]
}

pub fn catalog_names() -> Vec<String> {
    catalog().into_iter().map(|c| c.name).collect()
}

/// `--llm` value: a catalog name, a `config.json` file, or a checkpoint directory holding one.
pub fn resolve_llm(spec: &str) -> Result<LlmConfig> {
    if let Some(c) = catalog()
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(spec))
    {
        return Ok(c);
    }
    let p = Path::new(spec);
    let file = if p.is_dir() {
        p.join("config.json")
    } else {
        p.to_path_buf()
    };
    if file.exists() {
        return super::read_hf_config(&file).with_context(|| format!("--llm {spec}"));
    }
    anyhow::bail!(
        "--llm {spec}: not a catalog LLM ({}) and no config.json at {}",
        catalog_names().join(", "),
        file.display()
    )
}
