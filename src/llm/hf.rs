//! HF `config.json` → `LlmConfig`, for the model types the engine runs. Errors name the file, the
//! model_type and the missing or bad field. Reads both transformers 4 (`rope_theta`,
//! `rope_scaling`) and transformers 5 (`rope_parameters`) layouts.

use super::{Arch, Ffn, GemmaExtras, LlmConfig, Norm, Positional, RopeScaling};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// Read and parse a config.json file; the LLM is named after its parent directory.
pub fn read_hf_config(path: &Path) -> Result<LlmConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .parent()
        .and_then(|d| d.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    parse_hf_config(&text, &name).with_context(|| format!("parsing {}", path.display()))
}

struct Fields<'a> {
    map: &'a Map<String, Value>,
    model_type: String,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }
    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|x| Some(x as usize)).with_context(|| {
                format!(
                    "model_type {}: field `{key}` must be a non-negative integer, got {v}",
                    self.model_type
                )
            }),
        }
    }
    fn usize(&self, key: &str) -> Result<usize> {
        self.usize_opt(key)?
            .with_context(|| format!("model_type {}: missing field `{key}`", self.model_type))
    }
    fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).with_context(|| {
                format!(
                    "model_type {}: field `{key}` must be a number, got {v}",
                    self.model_type
                )
            }),
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().with_context(|| {
                format!(
                    "model_type {}: field `{key}` must be true/false, got {v}",
                    self.model_type
                )
            }),
        }
    }
    fn str_opt(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.as_str())
    }
}

/// Parse the text of a config.json. `name` labels the resulting config.
pub fn parse_hf_config(text: &str, name: &str) -> Result<LlmConfig> {
    let root: Value = serde_json::from_str(text).context("not valid JSON")?;
    let map = root
        .as_object()
        .context("config.json must be a JSON object")?;
    let model_type = map
        .get("model_type")
        .and_then(|v| v.as_str())
        .context("missing field `model_type`")?
        .to_string();
    let f = Fields {
        map,
        model_type: model_type.clone(),
    };
    let cfg = match model_type.as_str() {
        "llama" | "qwen2" | "granite_llama" => llama_like(&f, name)?,
        "opt" => opt(&f, name)?,
        "falcon" | "RefinedWeb" | "RefinedWebModel" => falcon(&f, name)?,
        "gemma2" => gemma2(&f, name)?,
        other => {
            bail!("unsupported model_type `{other}` (supported: llama, qwen2, opt, falcon, gemma2)")
        }
    };
    cfg.validate()?;
    Ok(cfg)
}

fn heads_and_dims(f: &Fields, name: &str, arch: Arch) -> Result<LlmConfig> {
    let hidden = f.usize("hidden_size")?;
    let heads = f.usize("num_attention_heads")?;
    anyhow::ensure!(
        heads > 0,
        "model_type {}: num_attention_heads must be > 0",
        f.model_type
    );
    let kv_heads = f.usize_opt("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = match f.usize_opt("head_dim")? {
        Some(d) => d,
        None => whole_head_dim(f, hidden, heads)?,
    };
    Ok(LlmConfig {
        name: name.to_string(),
        arch,
        hidden,
        layers: f.usize("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        ffn_dim: 0,
        vocab: f.usize("vocab_size")?,
        max_positions: f.usize("max_position_embeddings")?,
        norm: Norm::RmsNorm,
        norm_eps: 1e-5,
        ffn: Ffn::SwiGlu,
        positional: Positional::Alibi,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        tied_embeddings: false,
        embed_scale: false,
        post_norms: false,
        gemma: None,
    })
}

/// hidden_size / num_attention_heads, refused where it is not whole: truncating it would give a
/// model of another shape than the checkpoint's. (Configs whose heads are not hidden_size wide
/// state `head_dim` explicitly.)
fn whole_head_dim(f: &Fields, hidden: usize, heads: usize) -> Result<usize> {
    anyhow::ensure!(
        heads > 0 && hidden.is_multiple_of(heads),
        "model_type {}: field `num_attention_heads` ({heads}) does not divide field `hidden_size` ({hidden}) and no `head_dim` is given",
        f.model_type
    );
    Ok(hidden / heads)
}

/// RoPE θ and scaling from `rope_theta`/`rope_scaling` or transformers 5 `rope_parameters`.
fn rope(f: &Fields) -> Result<Positional> {
    let params = f.get("rope_parameters").and_then(|v| v.as_object());
    let scaling = f.get("rope_scaling").and_then(|v| v.as_object()).or(params);
    let theta = match f.f64_opt("rope_theta")? {
        Some(t) => t,
        None => params
            .and_then(|p| p.get("rope_theta"))
            .and_then(|v| v.as_f64())
            .unwrap_or(10_000.0),
    };
    let mut out = None;
    if let Some(s) = scaling {
        let kind = s
            .get("rope_type")
            .or_else(|| s.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let num = |k: &str| -> Result<f64> {
            s.get(k).and_then(|v| v.as_f64()).with_context(|| {
                format!(
                    "model_type {}: rope scaling `{kind}` lacks numeric `{k}`",
                    f.model_type
                )
            })
        };
        out = match kind {
            "default" => None,
            "linear" => Some(RopeScaling::Linear {
                factor: num("factor")?,
            }),
            "llama3" => Some(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_positions: num("original_max_position_embeddings")? as usize,
            }),
            other => bail!(
                "model_type {}: unsupported rope scaling type `{other}`",
                f.model_type
            ),
        };
    }
    Ok(Positional::Rope {
        theta,
        scaling: out,
    })
}

fn llama_like(f: &Fields, name: &str) -> Result<LlmConfig> {
    let qwen = f.model_type == "qwen2";
    let mut c = heads_and_dims(f, name, if qwen { Arch::Qwen2 } else { Arch::Llama })?;
    c.ffn_dim = f.usize("intermediate_size")?;
    c.norm_eps = f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6);
    c.positional = rope(f)?;
    let act = f.str_opt("hidden_act").unwrap_or("silu");
    anyhow::ensure!(
        act == "silu",
        "model_type {}: hidden_act `{act}` unsupported (need silu)",
        f.model_type
    );
    if qwen {
        c.qkv_bias = true;
    } else {
        let ab = f.bool_or("attention_bias", false)?;
        c.qkv_bias = ab;
        c.o_bias = ab;
        c.mlp_bias = f.bool_or("mlp_bias", false)?;
    }
    c.tied_embeddings = f.bool_or("tie_word_embeddings", false)?;
    Ok(c)
}

fn opt(f: &Fields, name: &str) -> Result<LlmConfig> {
    let mut c = heads_and_dims(f, name, Arch::Opt)?;
    c.kv_heads = c.heads;
    c.head_dim = whole_head_dim(f, c.hidden, c.heads)?;
    c.ffn_dim = f.usize("ffn_dim")?;
    anyhow::ensure!(
        f.bool_or("do_layer_norm_before", true)?,
        "model_type opt: do_layer_norm_before=false (opt-350m style) is unsupported"
    );
    if let Some(p) = f.usize_opt("word_embed_proj_dim")? {
        anyhow::ensure!(
            p == c.hidden,
            "model_type opt: word_embed_proj_dim {p} != hidden_size {} is unsupported",
            c.hidden
        );
    }
    let act = f.str_opt("activation_function").unwrap_or("relu");
    anyhow::ensure!(
        act == "relu",
        "model_type opt: activation_function `{act}` unsupported (need relu)"
    );
    anyhow::ensure!(
        f.bool_or("layer_norm_elementwise_affine", true)?,
        "model_type opt: layer_norm_elementwise_affine=false is unsupported"
    );
    anyhow::ensure!(
        !f.bool_or("_remove_final_layer_norm", false)?,
        "model_type opt: _remove_final_layer_norm=true is unsupported"
    );
    let bias = f.bool_or("enable_bias", true)?;
    c.norm = Norm::LayerNorm;
    c.ffn = Ffn::Relu;
    c.positional = Positional::Learned { offset: 2 };
    (c.qkv_bias, c.o_bias, c.mlp_bias) = (bias, bias, bias);
    c.tied_embeddings = f.bool_or("tie_word_embeddings", true)?;
    Ok(c)
}

fn falcon(f: &Fields, name: &str) -> Result<LlmConfig> {
    // Old RW configs use n_embed / n_layer / n_head.
    let alias = |new: &str, old: &str| -> Result<usize> {
        match f.usize_opt(new)? {
            Some(v) => Ok(v),
            None => f
                .usize_opt(old)?
                .with_context(|| format!("model_type {}: missing field `{new}`", f.model_type)),
        }
    };
    let hidden = alias("hidden_size", "n_embed")?;
    let heads = alias("num_attention_heads", "n_head")?;
    let layers = alias("num_hidden_layers", "n_layer")?;
    let mt = &f.model_type;
    anyhow::ensure!(
        heads > 0,
        "model_type {mt}: num_attention_heads must be > 0"
    );
    // "RefinedWeb" is the old name of the falcon-40b layout.
    let new_arch = f.bool_or("new_decoder_architecture", mt == "RefinedWeb")?;
    anyhow::ensure!(
        !new_arch,
        "model_type {mt}: new_decoder_architecture (falcon-40b style) is unsupported"
    );
    anyhow::ensure!(
        !f.bool_or("parallel_attn", true)?,
        "model_type {mt}: parallel_attn=true is unsupported (rw-style sequential blocks only)"
    );
    anyhow::ensure!(
        !f.bool_or("apply_residual_connection_post_layernorm", false)?,
        "model_type {mt}: apply_residual_connection_post_layernorm=true is unsupported"
    );
    let act = f.str_opt("activation").unwrap_or("gelu");
    anyhow::ensure!(
        act == "gelu",
        "model_type {mt}: activation `{act}` unsupported (need gelu)"
    );
    // HF: one shared K/V head when multi_query (default true for "falcon"; the old RW code
    // defaulted to false), else one per query head; `num_kv_heads` only counts for the new layout.
    let kv = if f.bool_or("multi_query", mt == "falcon")? {
        1
    } else {
        heads
    };
    let bias = f.bool_or("bias", false)?;
    Ok(LlmConfig {
        name: name.to_string(),
        arch: Arch::Falcon,
        hidden,
        layers,
        heads,
        kv_heads: kv,
        head_dim: whole_head_dim(f, hidden, heads)?,
        ffn_dim: match f.usize_opt("ffn_hidden_size")? {
            Some(d) => d,
            // Falcon's default FFN is 4 × hidden; a hidden_size that large is no LLM.
            None => hidden.checked_mul(4).with_context(|| {
                format!("model_type falcon: hidden_size {hidden} is too large (4 × hidden_size overflows)")
            })?,
        },
        vocab: f.usize("vocab_size")?,
        max_positions: f.usize_opt("max_position_embeddings")?.unwrap_or(2048),
        norm: Norm::LayerNorm,
        norm_eps: f.f64_opt("layer_norm_epsilon")?.unwrap_or(1e-5),
        ffn: Ffn::Gelu,
        positional: if f.bool_or("alibi", false)? {
            Positional::Alibi
        } else {
            rope(f)?
        },
        qkv_bias: bias,
        o_bias: bias,
        mlp_bias: bias,
        tied_embeddings: f.bool_or("tie_word_embeddings", true)?,
        embed_scale: false,
        post_norms: false,
        gemma: None,
    })
}

fn gemma2(f: &Fields, name: &str) -> Result<LlmConfig> {
    let mut c = heads_and_dims(f, name, Arch::Gemma2)?;
    c.ffn_dim = f.usize("intermediate_size")?;
    c.norm = Norm::RmsNormPlusOne;
    c.norm_eps = f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6);
    c.ffn = Ffn::GeGluTanh;
    let act = f
        .str_opt("hidden_activation")
        .or(f.str_opt("hidden_act"))
        .unwrap_or("gelu_pytorch_tanh");
    anyhow::ensure!(
        matches!(act, "gelu_pytorch_tanh" | "gelu_tanh" | "gelu_new"),
        "model_type gemma2: hidden_activation `{act}` unsupported (need gelu_pytorch_tanh)"
    );
    c.positional = rope(f)?;
    c.tied_embeddings = f.bool_or("tie_word_embeddings", true)?;
    let ab = f.bool_or("attention_bias", false)?;
    (c.qkv_bias, c.o_bias) = (ab, ab);
    anyhow::ensure!(
        !f.bool_or("use_bidirectional_attention", false)?,
        "model_type gemma2: use_bidirectional_attention=true is unsupported"
    );
    c.embed_scale = true;
    c.post_norms = true;
    let window = f.usize_opt("sliding_window")?.unwrap_or(usize::MAX);
    if let Some(types) = f.get("layer_types") {
        let types = types
            .as_array()
            .context("model_type gemma2: field `layer_types` must be a list")?;
        anyhow::ensure!(
            types.len() == c.layers,
            "model_type gemma2: layer_types has {} entries for {} layers",
            types.len(),
            c.layers
        );
        for (i, t) in types.iter().enumerate() {
            let want = if i % 2 == 0 {
                "sliding_attention"
            } else {
                "full_attention"
            };
            anyhow::ensure!(
                t.as_str() == Some(want),
                "model_type gemma2: layer_types[{i}] is {t}, only the alternating pattern (even layers sliding_attention) is supported"
            );
        }
    }
    let qpas = f
        .f64_opt("query_pre_attn_scalar")?
        .unwrap_or(c.head_dim as f64);
    c.gemma = Some(GemmaExtras {
        attn_softcap: f.f64_opt("attn_logit_softcapping")?.unwrap_or(0.0) as f32,
        final_softcap: f.f64_opt("final_logit_softcapping")?.unwrap_or(0.0) as f32,
        sliding_window: window,
        query_pre_attn_scalar: qpas,
    });
    Ok(c)
}
