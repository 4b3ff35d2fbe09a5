//! Model weights on the GPU: random (seeded, generated on the device, scaled so activations stay
//! O(1) through every layer) or loaded from a local HF checkpoint directory (config.json +
//! *.safetensors), converted to the run dtype. Projections are fused on load: q|k|v into one
//! matrix, gate|up into one, so each block is one GEMM.

use super::device::{grid_for, Arg, DType, DevBuf, Device};
use crate::llm::{LlmConfig, Norm};
use anyhow::{bail, Context, Result};
use safetensors::{Dtype as StDtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

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
    pub norm1: (DevBuf, Option<DevBuf>),
    pub norm2: (DevBuf, Option<DevBuf>),
}

pub struct Weights {
    pub embed: DevBuf,
    pub positions: Option<DevBuf>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: (DevBuf, Option<DevBuf>),
    /// None: tied to `embed`.
    pub lm_head: Option<DevBuf>,
}

impl Weights {
    pub fn lm_head_ptr(&self) -> u64 {
        self.lm_head.as_ref().map_or(self.embed.ptr, |b| b.ptr)
    }
}

fn up_rows(c: &LlmConfig) -> usize {
    if c.ffn.gated() { 2 * c.ffn_dim } else { c.ffn_dim }
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
        let s = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(self.counter);
        let a = std * 3f32.sqrt();
        let args = [Arg::P(b.ptr), Arg::L(n as i64), Arg::U(s), Arg::F(a), Arg::F(offset)];
        dev.launch(&format!("fill_uniform_{}", self.dt.suffix()), grid_for(n, 256), 256, 0, &args)?;
        Ok(b)
    }
    fn bias(&mut self, dev: &mut Device, on: bool, n: usize) -> Result<Option<DevBuf>> {
        if on { Ok(Some(self.fill(dev, n, 0.05, 0.0)?)) } else { Ok(None) }
    }
    fn norm(&mut self, dev: &mut Device, h: usize, ln: bool) -> Result<(DevBuf, Option<DevBuf>)> {
        let w = self.fill(dev, h, 0.1 / 3f32.sqrt(), 1.0)?;
        Ok((w, self.bias(dev, ln, h)?))
    }
}

/// Random weights: matrices uniform with std 1/sqrt(fan_in), embeddings std 1, norm weights 1 ± 0.1,
/// biases std 0.05. The norm before every block keeps the residual stream O(sqrt(layers)).
pub fn random(dev: &mut Device, c: &LlmConfig, dt: DType, seed: u64) -> Result<Weights> {
    let mut r = Rng { seed, counter: 0, dt };
    let h = c.hidden;
    let qkv_rows = c.q_dim() + 2 * c.kv_dim();
    let ln = c.norm == Norm::LayerNorm;
    let mut layers = Vec::with_capacity(c.layers);
    for _ in 0..c.layers {
        let norm1 = r.norm(dev, h, ln)?;
        let norm2 = r.norm(dev, h, ln)?;
        let qkv = r.fill(dev, qkv_rows * h, 1.0 / (h as f32).sqrt(), 0.0)?;
        let qkv_b = r.bias(dev, c.qkv_bias, qkv_rows)?;
        let o = r.fill(dev, h * c.q_dim(), 1.0 / (c.q_dim() as f32).sqrt(), 0.0)?;
        let o_b = r.bias(dev, c.o_bias, h)?;
        let up = r.fill(dev, up_rows(c) * h, 1.0 / (h as f32).sqrt(), 0.0)?;
        let up_b = r.bias(dev, c.mlp_bias, up_rows(c))?;
        let down = r.fill(dev, h * c.ffn_dim, 1.0 / (c.ffn_dim as f32).sqrt(), 0.0)?;
        let down_b = r.bias(dev, c.mlp_bias, h)?;
        layers.push(LayerWeights { qkv, qkv_b, o, o_b, up, up_b, down, down_b, norm1, norm2 });
    }
    let embed = r.fill(dev, c.vocab * h, 1.0, 0.0)?;
    let positions = if c.position_rows() > 0 { Some(r.fill(dev, c.position_rows() * h, 1.0, 0.0)?) } else { None };
    let final_norm = r.norm(dev, h, ln)?;
    let lm_head = if c.tied_embeddings { None } else { Some(r.fill(dev, c.vocab * h, 1.0, 0.0)?) };
    dev.sync().context("generating random weights")?;
    Ok(Weights { embed, positions, layers, final_norm, lm_head })
}

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
            let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a valid safetensors file", f.display()))?;
            for (name, view) in st.tensors() {
                let data = view.data();
                let vals: Vec<f32> = match view.dtype() {
                    StDtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                    StDtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                    StDtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                    other => bail!("{}: tensor {name} has unsupported dtype {other:?} (need bf16, f16 or f32)", f.display()),
                };
                tensors.insert(name, (view.shape().to_vec(), vals));
            }
        }
        Ok(Checkpoint { dir: dir.display().to_string(), tensors })
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (s, v) = self
            .tensors
            .remove(name)
            .with_context(|| format!("checkpoint {}: tensor `{name}` not found in any *.safetensors", self.dir))?;
        if s != shape {
            bail!("checkpoint {}: tensor `{name}` has shape {s:?}, config.json implies {shape:?}", self.dir);
        }
        Ok(v)
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

fn upload(dev: &Device, dt: DType, vals: &[f32]) -> Result<DevBuf> {
    let bits: Vec<u16> = vals.iter().map(|&x| dt.encode(x)).collect();
    let b = dev.alloc(bits.len() * 2)?;
    dev.upload(b.ptr, &bits)?;
    Ok(b)
}

/// Load a llama/qwen2-layout HF checkpoint. (OPT, Falcon and Gemma-2 names come with part 2.)
pub fn load(dev: &Device, c: &LlmConfig, dt: DType, dir: &Path) -> Result<Weights> {
    use crate::llm::Arch;
    if !matches!(c.arch, Arch::Llama | Arch::Qwen2) {
        bail!("loading {} checkpoints is not implemented yet (llama and qwen2 only)", c.arch.as_str());
    }
    let mut ck = Checkpoint::open(dir)?;
    let h = c.hidden;
    let (qd, kvd) = (c.q_dim(), c.kv_dim());
    let mut layers = Vec::with_capacity(c.layers);
    for i in 0..c.layers {
        let p = format!("model.layers.{i}.");
        let mut cat = |names: &[(&str, usize)], cols: usize| -> Result<Vec<f32>> {
            let mut v = Vec::new();
            for (n, rows) in names {
                let shape: Vec<usize> = if cols == 0 { vec![*rows] } else { vec![*rows, cols] };
                v.extend(ck.take(&format!("{p}{n}"), &shape)?);
            }
            Ok(v)
        };
        let qkv = cat(&[("self_attn.q_proj.weight", qd), ("self_attn.k_proj.weight", kvd), ("self_attn.v_proj.weight", kvd)], h)?;
        let qkv_b = if c.qkv_bias {
            Some(cat(&[("self_attn.q_proj.bias", qd), ("self_attn.k_proj.bias", kvd), ("self_attn.v_proj.bias", kvd)], 0)?)
        } else {
            None
        };
        let o = cat(&[("self_attn.o_proj.weight", h)], qd)?;
        let o_b = if c.o_bias { Some(cat(&[("self_attn.o_proj.bias", h)], 0)?) } else { None };
        let up = cat(&[("mlp.gate_proj.weight", c.ffn_dim), ("mlp.up_proj.weight", c.ffn_dim)], h)?;
        let up_b = if c.mlp_bias { Some(cat(&[("mlp.gate_proj.bias", c.ffn_dim), ("mlp.up_proj.bias", c.ffn_dim)], 0)?) } else { None };
        let down = cat(&[("mlp.down_proj.weight", h)], c.ffn_dim)?;
        let down_b = if c.mlp_bias { Some(cat(&[("mlp.down_proj.bias", h)], 0)?) } else { None };
        let n1 = cat(&[("input_layernorm.weight", h)], 0)?;
        let n2 = cat(&[("post_attention_layernorm.weight", h)], 0)?;
        let opt = |v: Option<Vec<f32>>| -> Result<Option<DevBuf>> { v.map(|v| upload(dev, dt, &v)).transpose() };
        layers.push(LayerWeights {
            qkv: upload(dev, dt, &qkv)?,
            qkv_b: opt(qkv_b)?,
            o: upload(dev, dt, &o)?,
            o_b: opt(o_b)?,
            up: upload(dev, dt, &up)?,
            up_b: opt(up_b)?,
            down: upload(dev, dt, &down)?,
            down_b: opt(down_b)?,
            norm1: (upload(dev, dt, &n1)?, None),
            norm2: (upload(dev, dt, &n2)?, None),
        });
    }
    let embed = upload(dev, dt, &ck.take("model.embed_tokens.weight", &[c.vocab, h])?)?;
    let final_norm = (upload(dev, dt, &ck.take("model.norm.weight", &[h])?)?, None);
    let lm_head = if c.tied_embeddings && !ck.has("lm_head.weight") {
        None
    } else {
        Some(upload(dev, dt, &ck.take("lm_head.weight", &[c.vocab, h])?)?)
    };
    dev.sync()?;
    Ok(Weights { embed, positions: None, layers, final_norm, lm_head })
}
