//! Loading a local HF checkpoint directory (config.json + *.safetensors) onto the GPU, converted to
//! the run dtype. Each model_type's tensor names map onto one `LayerWeights` layout: q|k|v fused
//! (falcon's per-head interleaved query_key_value reordered), gate|up fused, biases and norms where
//! the architecture has them. A missing tensor or a shape that disagrees with config.json is an
//! error naming the tensor.

use super::device::{DType, DevBuf, Device};
use super::weights::{LayerWeights, NormWeights, Weights};
use crate::llm::{Arch, LlmConfig, Norm};
use anyhow::{bail, Context, Result};
use safetensors::{Dtype as StDtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// All tensors of the *.safetensors files of a checkpoint directory, as f32 on the host.
struct Checkpoint {
    dir: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Checkpoint {
    fn open(dir: &Path) -> Result<Checkpoint> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("checkpoint directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("checkpoint {}: no *.safetensors file", dir.display());
        }
        let mut tensors = HashMap::new();
        for f in &files {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let st = SafeTensors::deserialize(&bytes)
                .with_context(|| format!("{}: not a valid safetensors file", f.display()))?;
            for (name, view) in st.tensors() {
                let data = view.data();
                let vals: Vec<f32> = match view.dtype() {
                    StDtype::BF16 => data
                        .chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect(),
                    StDtype::F16 => data
                        .chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect(),
                    StDtype::F32 => data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    other => bail!(
                        "{}: tensor {name} has unsupported dtype {other:?} (need bf16, f16 or f32)",
                        f.display()
                    ),
                };
                tensors.insert(name, (view.shape().to_vec(), vals));
            }
        }
        Ok(Checkpoint {
            dir: dir.display().to_string(),
            tensors,
        })
    }

    /// The stored name of `name`: as given, or without its root module (`model.`, `transformer.`)
    /// for checkpoints saved from the base model.
    fn resolve(&self, name: &str) -> Option<String> {
        if self.tensors.contains_key(name) {
            return Some(name.to_string());
        }
        let short = name.split_once('.').map(|(_, rest)| rest)?;
        self.tensors.contains_key(short).then(|| short.to_string())
    }

    fn has(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let key = self.resolve(name).with_context(|| {
            format!(
                "checkpoint {}: tensor `{name}` not found in any *.safetensors",
                self.dir
            )
        })?;
        let (s, v) = self.tensors.remove(&key).expect("resolved above");
        if s != shape {
            bail!(
                "checkpoint {}: tensor `{key}` has shape {s:?}, config.json implies {shape:?}",
                self.dir
            );
        }
        Ok(v)
    }
}

/// Module paths (without `.weight` / `.bias`) of one layer.
struct LayerNames {
    /// q, k, v projections, or one fused query_key_value (falcon).
    qkv: Qkv,
    o: String,
    /// [gate, up] for gated FFNs, [fc1] otherwise.
    up: Vec<String>,
    down: String,
    norm1: String,
    norm2: String,
    post_attn: Option<String>,
    post_ffn: Option<String>,
}

enum Qkv {
    Split([String; 3]),
    /// Falcon: rows per head [q_h | k_h | v_h] (multi_query false) or [q heads | k | v] (multi_query).
    Fused(String),
}

/// Global module paths: embedding, learned positions, final norm.
struct GlobalNames {
    embed: &'static str,
    positions: Option<&'static str>,
    final_norm: &'static str,
}

fn global_names(arch: Arch) -> GlobalNames {
    match arch {
        Arch::Llama | Arch::Qwen2 | Arch::Gemma2 => GlobalNames {
            embed: "model.embed_tokens",
            positions: None,
            final_norm: "model.norm",
        },
        // OPT (do_layer_norm_before, as every catalog size): model.decoder.final_layer_norm follows the
        // last layer; inside a layer, `final_layer_norm` is the norm before fc1.
        Arch::Opt => GlobalNames {
            embed: "model.decoder.embed_tokens",
            positions: Some("model.decoder.embed_positions"),
            final_norm: "model.decoder.final_layer_norm",
        },
        Arch::Falcon => GlobalNames {
            embed: "transformer.word_embeddings",
            positions: None,
            final_norm: "transformer.ln_f",
        },
    }
}

fn layer_names(arch: Arch, i: usize) -> LayerNames {
    let owned = |p: &str, v: &[&str]| v.iter().map(|n| format!("{p}{n}")).collect::<Vec<_>>();
    match arch {
        Arch::Llama | Arch::Qwen2 | Arch::Gemma2 => {
            let p = format!("model.layers.{i}.");
            let [q, k, v]: [String; 3] = owned(
                &p,
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
            )
            .try_into()
            .expect("3 names");
            let gemma = arch == Arch::Gemma2;
            LayerNames {
                qkv: Qkv::Split([q, k, v]),
                o: format!("{p}self_attn.o_proj"),
                up: owned(&p, &["mlp.gate_proj", "mlp.up_proj"]),
                down: format!("{p}mlp.down_proj"),
                norm1: format!("{p}input_layernorm"),
                // Gemma-2's post_attention_layernorm normalises the attention output; its pre-FFN norm
                // is pre_feedforward_layernorm. Llama's post_attention_layernorm is the pre-FFN norm.
                norm2: format!(
                    "{p}{}",
                    if gemma {
                        "pre_feedforward_layernorm"
                    } else {
                        "post_attention_layernorm"
                    }
                ),
                post_attn: gemma.then(|| format!("{p}post_attention_layernorm")),
                post_ffn: gemma.then(|| format!("{p}post_feedforward_layernorm")),
            }
        }
        Arch::Opt => {
            let p = format!("model.decoder.layers.{i}.");
            let [q, k, v]: [String; 3] = owned(
                &p,
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
            )
            .try_into()
            .expect("3 names");
            LayerNames {
                qkv: Qkv::Split([q, k, v]),
                o: format!("{p}self_attn.out_proj"),
                up: owned(&p, &["fc1"]),
                down: format!("{p}fc2"),
                norm1: format!("{p}self_attn_layer_norm"),
                norm2: format!("{p}final_layer_norm"),
                post_attn: None,
                post_ffn: None,
            }
        }
        Arch::Falcon => {
            let p = format!("transformer.h.{i}.");
            LayerNames {
                qkv: Qkv::Fused(format!("{p}self_attention.query_key_value")),
                o: format!("{p}self_attention.dense"),
                up: owned(&p, &["mlp.dense_h_to_4h"]),
                down: format!("{p}mlp.dense_4h_to_h"),
                norm1: format!("{p}input_layernorm"),
                norm2: format!("{p}post_attention_layernorm"),
                post_attn: None,
                post_ffn: None,
            }
        }
    }
}

/// Reorder falcon's fused rows (`row_len` values each; weight rows or single bias values) into
/// [q heads | k heads | v heads]. Without multi_query HF views the output as [heads, 3, head_dim].
fn unfuse_falcon(c: &LlmConfig, fused: Vec<f32>, row_len: usize) -> Vec<f32> {
    if c.kv_heads != c.heads {
        return fused; // multi_query: already [q heads | k | v]
    }
    let (hd, heads) = (c.head_dim, c.heads);
    let mut out = vec![0f32; fused.len()];
    for h in 0..heads {
        for (part, dst0) in [
            (0, h * hd),
            (1, (heads + h) * hd),
            (2, (2 * heads + h) * hd),
        ] {
            let src0 = (h * 3 + part) * hd;
            out[dst0 * row_len..(dst0 + hd) * row_len]
                .copy_from_slice(&fused[src0 * row_len..(src0 + hd) * row_len]);
        }
    }
    out
}

struct Loader<'a> {
    ck: Checkpoint,
    dev: &'a Device,
    dt: DType,
}

impl Loader<'_> {
    fn up(&self, v: &[f32]) -> Result<DevBuf> {
        let bits: Vec<u16> = v.iter().map(|&x| self.dt.encode(x)).collect();
        let b = self.dev.alloc(bits.len() * 2)?;
        self.dev.upload(b.view(), &bits)?;
        Ok(b)
    }
    /// Concatenate `<module>.weight` (rows × cols each) or, with cols = 0, `<module>.bias` vectors.
    fn cat(&mut self, modules: &[(&str, usize)], cols: usize) -> Result<Vec<f32>> {
        let mut v = Vec::new();
        for (m, rows) in modules {
            v.extend(if cols == 0 {
                self.ck.take(&format!("{m}.bias"), &[*rows])?
            } else {
                self.ck.take(&format!("{m}.weight"), &[*rows, cols])?
            });
        }
        Ok(v)
    }
    fn mat(&mut self, modules: &[(&str, usize)], cols: usize) -> Result<DevBuf> {
        let v = self.cat(modules, cols)?;
        self.up(&v)
    }
    fn bias(&mut self, on: bool, modules: &[(&str, usize)]) -> Result<Option<DevBuf>> {
        if !on {
            return Ok(None);
        }
        let v = self.cat(modules, 0)?;
        Ok(Some(self.up(&v)?))
    }
    fn norm(&mut self, c: &LlmConfig, module: &str) -> Result<NormWeights> {
        let w = self.ck.take(&format!("{module}.weight"), &[c.hidden])?;
        let b = if c.norm == Norm::LayerNorm {
            let v = self.ck.take(&format!("{module}.bias"), &[c.hidden])?;
            Some(self.up(&v)?)
        } else {
            None
        };
        Ok((self.up(&w)?, b))
    }
}

/// Load a checkpoint of any supported model_type with the shapes of `c` (its config.json).
pub fn load(dev: &Device, c: &LlmConfig, dt: DType, dir: &Path) -> Result<Weights> {
    let mut ld = Loader {
        ck: Checkpoint::open(dir)?,
        dev,
        dt,
    };
    let h = c.hidden;
    let (qd, kvd) = (c.q_dim(), c.kv_dim());
    let qkv_rows = qd + 2 * kvd;
    let ffn = c.ffn_dim;
    let mut layers = Vec::with_capacity(c.layers);
    for i in 0..c.layers {
        let n = layer_names(c.arch, i);
        let (qkv, qkv_b) = match &n.qkv {
            Qkv::Split([q, k, v]) => {
                let parts = [(q.as_str(), qd), (k.as_str(), kvd), (v.as_str(), kvd)];
                (ld.mat(&parts, h)?, ld.bias(c.qkv_bias, &parts)?)
            }
            Qkv::Fused(m) => {
                let w = unfuse_falcon(c, ld.cat(&[(m, qkv_rows)], h)?, h);
                let b = if c.qkv_bias {
                    let v = unfuse_falcon(c, ld.cat(&[(m, qkv_rows)], 0)?, 1);
                    Some(ld.up(&v)?)
                } else {
                    None
                };
                (ld.up(&w)?, b)
            }
        };
        let o = ld.mat(&[(&n.o, h)], qd)?;
        let o_b = ld.bias(c.o_bias, &[(&n.o, h)])?;
        let ups: Vec<(&str, usize)> = n.up.iter().map(|m| (m.as_str(), ffn)).collect();
        let up = ld.mat(&ups, h)?;
        let up_b = ld.bias(c.mlp_bias, &ups)?;
        let down = ld.mat(&[(&n.down, h)], ffn)?;
        let down_b = ld.bias(c.mlp_bias, &[(&n.down, h)])?;
        let norm1 = ld.norm(c, &n.norm1)?;
        let norm2 = ld.norm(c, &n.norm2)?;
        let post_attn = n.post_attn.as_deref().map(|m| ld.norm(c, m)).transpose()?;
        let post_ffn = n.post_ffn.as_deref().map(|m| ld.norm(c, m)).transpose()?;
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
    let g = global_names(c.arch);
    let embed = ld.mat(&[(g.embed, c.vocab)], h)?;
    let positions = match g.positions {
        Some(m) => Some(ld.mat(&[(m, c.position_rows())], h)?),
        None => None,
    };
    let final_norm = ld.norm(c, g.final_norm)?;
    let lm_head = if c.tied_embeddings && !ld.ck.has("lm_head.weight") {
        None
    } else {
        Some(ld.mat(&[("lm_head", c.vocab)], h)?)
    };
    dev.sync()?;
    Ok(Weights {
        embed,
        positions,
        layers,
        final_norm,
        lm_head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falcon_rows_are_regrouped_by_kind() {
        let mut c = crate::llm::resolve_llm("falcon-rw-7b").unwrap();
        (c.heads, c.kv_heads, c.head_dim) = (2, 2, 2);
        // rows: h0 q q k k v v, h1 q q k k v v (values name them)
        let fused: Vec<f32> = vec![
            0., 1., 10., 11., 20., 21., 100., 101., 110., 111., 120., 121.,
        ];
        let out = unfuse_falcon(&c, fused.clone(), 1);
        assert_eq!(
            out,
            vec![0., 1., 100., 101., 10., 11., 110., 111., 20., 21., 120., 121.]
        );
        // two columns per row move together
        let wide: Vec<f32> = fused.iter().flat_map(|&x| [x, x + 0.5]).collect();
        let out2 = unfuse_falcon(&c, wide, 2);
        assert_eq!(&out2[..4], &[0., 0.5, 1., 1.5]);
        assert_eq!(&out2[4..8], &[100., 100.5, 101., 101.5]);
        c.kv_heads = 1;
        assert_eq!(unfuse_falcon(&c, fused.clone(), 1), fused);
    }

    #[test]
    fn layer_names_per_arch() {
        let g = layer_names(Arch::Gemma2, 3);
        assert_eq!(g.norm2, "model.layers.3.pre_feedforward_layernorm");
        assert_eq!(
            g.post_attn.as_deref(),
            Some("model.layers.3.post_attention_layernorm")
        );
        let l = layer_names(Arch::Llama, 0);
        assert_eq!(l.norm2, "model.layers.0.post_attention_layernorm");
        assert!(l.post_ffn.is_none());
        let o = layer_names(Arch::Opt, 1);
        assert_eq!(
            (o.o.as_str(), o.up.len()),
            ("model.decoder.layers.1.self_attn.out_proj", 1)
        );
        assert!(
            matches!(layer_names(Arch::Falcon, 0).qkv, Qkv::Fused(ref m) if m == "transformer.h.0.self_attention.query_key_value")
        );
    }
}
