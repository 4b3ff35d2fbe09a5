//! The forward's GEMMs (cuBLAS, cuBLASLt) as data: shape, epilogue and buffers of each, one list
//! that `launch_all` runs and that `Engine::warm_gemm_shapes` runs at every row count, so the
//! warm-up (and GEMM tuning) cannot miss a shape the forward uses.

use super::device::{DType, DevBuf, Device, Epilogue, Operands, Shape};
use super::forward::Buffers;
use super::weights::{LayerWeights, Weights};
use crate::llm::{Ffn, LlmConfig};
use anyhow::Result;

/// One GEMM of the forward: y[rows × n] = x[rows × k] · w[n × k]ᵀ, then its epilogue, on fixed
/// buffers (16-bit storage; `Device::run_gemm` checks that they hold `rows` rows).
#[derive(Clone, Copy)]
pub struct Gemm<'a> {
    pub n: usize,
    pub k: usize,
    pub ep: Epilogue,
    pub o: Operands<'a>,
}

impl Gemm<'_> {
    pub fn shape(&self, dt: DType, rows: usize) -> Shape {
        Shape {
            dt,
            rows,
            n: self.n,
            k: self.k,
            ep: self.ep,
        }
    }

    pub fn run(&self, dev: &Device, dt: DType, rows: usize) -> Result<()> {
        dev.run_gemm(self.shape(dt, rows), self.o)
    }
}

/// The epilogue the FFN's up projection can take in place of the `ffn_act` launch after it: only
/// where it computes what HF computes, a ReLU FFN with biases (OPT: `fc1` is one addmm, the bias
/// added in fp32 and the sum rounded once, then ReLU; RELU_BIAS applies the ReLU before its one
/// rounding, and rounding commutes with ReLU, so the two agree bit for bit given the same fp32
/// sum). `ffn_act` instead adds the bias to the GEMM's already rounded output and rounds again. Falcon's exact-erf GELU has no cuBLASLt epilogue (cuBLASLt's GELU is the tanh
/// form), and a gated FFN combines two halves, which no epilogue does.
pub fn ffn_epilogue(c: &LlmConfig) -> Epilogue {
    match c.ffn {
        Ffn::Relu if c.mlp_bias => Epilogue::ReluBias,
        _ => Epilogue::None,
    }
}

/// A layer's GEMMs, on the buffers the forward uses.
pub struct LayerGemms<'a> {
    pub qkv: Gemm<'a>,
    pub o: Gemm<'a>,
    pub up: Gemm<'a>,
    pub down: Gemm<'a>,
}

impl LayerGemms<'_> {
    /// The up projection applies the FFN's bias and activation itself, writing `b.act` for the
    /// down projection: no `ffn_act` launch between them.
    pub fn ffn_act_fused(&self) -> bool {
        self.up.ep != Epilogue::None
    }
}

/// The layer's GEMMs; with `fuse` (`Model::ffn_epilogue`) the up projection takes the model's
/// `ffn_epilogue` and writes the activation straight into `b.act` (`b.up` then goes unused).
pub fn layer_gemms<'a>(
    c: &LlmConfig,
    b: &'a Buffers,
    lw: &'a LayerWeights,
    fuse: bool,
) -> LayerGemms<'a> {
    let h = c.hidden;
    let g = |n, k, x: &'a DevBuf, w: &'a DevBuf, y: &'a DevBuf| Gemm {
        n,
        k,
        ep: Epilogue::None,
        o: Operands::plain(x.view(), w.view(), y.view()),
    };
    let up_rows = super::weights::up_rows(c);
    let up = match (ffn_epilogue(c), &lw.up_b) {
        (ep @ Epilogue::ReluBias, Some(bias)) if fuse => {
            let mut u = g(up_rows, h, &b.xn, &lw.up, &b.act);
            u.ep = ep;
            u.o.bias = Some(bias.view());
            u
        }
        _ => g(up_rows, h, &b.xn, &lw.up, &b.up),
    };
    LayerGemms {
        qkv: g(c.q_dim() + 2 * c.kv_dim(), h, &b.xn, &lw.qkv, &b.qkv),
        o: g(h, c.q_dim(), &b.attn, &lw.o, &b.tmp),
        up,
        down: g(h, c.ffn_dim, &b.act, &lw.down, &b.tmp),
    }
}

/// The LM head over the gathered last rows (`b.xs`, at most max_batch_size of them).
pub fn lm_head_gemm<'a>(c: &LlmConfig, b: &'a Buffers, w: &'a Weights) -> Gemm<'a> {
    Gemm {
        n: c.vocab,
        k: c.hidden,
        ep: Epilogue::None,
        o: Operands::plain(b.xs.view(), w.lm_head().view(), b.logits.view()),
    }
}

#[cfg(test)]
mod tests {
    use super::{ffn_epilogue, layer_gemms, Epilogue};
    use crate::engine::device::{fake_buf_at, DevBuf};
    use crate::engine::forward::Buffers;
    use crate::engine::weights::LayerWeights;
    use crate::llm::{catalog, Ffn, LlmConfig};
    use std::mem::ManuallyDrop;

    fn llm(name: &str) -> LlmConfig {
        catalog().into_iter().find(|c| c.name == name).unwrap()
    }

    /// Of the catalog, exactly the OPT LLMs (ReLU FFN with biases) fuse fc1's bias and ReLU into
    /// the GEMM; Falcon (GELU with biases) and the gated FFNs keep `ffn_act`.
    #[test]
    fn only_relu_with_bias_takes_the_epilogue() {
        let fused: Vec<String> = catalog()
            .into_iter()
            .filter(|c| ffn_epilogue(c) == Epilogue::ReluBias)
            .map(|c| c.name)
            .collect();
        assert_eq!(fused, ["opt-1.3b", "opt-2.7b", "opt-6.7b"]);
        let falcon = llm("falcon-rw-7b");
        assert!(falcon.mlp_bias && falcon.ffn == Ffn::Gelu);
        assert_eq!(ffn_epilogue(&falcon), Epilogue::None);
    }

    /// An OPT config without FFN biases (`enable_bias: false`) keeps `ffn_act`: the fused path is
    /// RELU_BIAS only.
    #[test]
    fn relu_without_bias_keeps_ffn_act() {
        let mut c = llm("opt-1.3b");
        c.mlp_bias = false;
        assert_eq!(ffn_epilogue(&c), Epilogue::None);
    }

    /// Buffers and one layer's weights at distinct made-up addresses (nothing is allocated or
    /// freed: `ManuallyDrop`), every bias present.
    fn fakes() -> (ManuallyDrop<Buffers>, ManuallyDrop<LayerWeights>) {
        let mut next = 0u64;
        let mut f = || -> DevBuf {
            next += 1;
            ManuallyDrop::into_inner(fake_buf_at(0x7f00_0000_0000 + (next << 28), 1 << 20))
        };
        let b = Buffers {
            resid: f(),
            xn: f(),
            qkv: f(),
            q: f(),
            attn: f(),
            tmp: f(),
            up: f(),
            act: f(),
            xs: f(),
            logits: f(),
            meta: f(),
            next_tok: f(),
            part_o: f(),
            part_ml: f(),
            inv_freq: f(),
            block_table: f(),
            kv: f(),
        };
        let lw = LayerWeights {
            qkv: f(),
            qkv_b: Some(f()),
            o: f(),
            o_b: Some(f()),
            up: f(),
            up_b: Some(f()),
            down: f(),
            down_b: Some(f()),
            norm1: (f(), Some(f())),
            norm2: (f(), Some(f())),
            post_attn: None,
            post_ffn: None,
        };
        (ManuallyDrop::new(b), ManuallyDrop::new(lw))
    }

    /// Fused (OPT, `fuse` on), the up GEMM takes the epilogue with fc1's bias and writes `b.act`,
    /// which the down GEMM reads; `b.up` is not used. Off, or on any other model, the up GEMM is
    /// plain into `b.up` for `ffn_act`.
    #[test]
    fn the_fused_up_gemm_writes_the_activation_buffer() {
        let (b, lw) = fakes();
        let at = |d: &DevBuf| d.view::<u16>().addr();
        let c = llm("opt-1.3b");
        let g = layer_gemms(&c, &b, &lw, true);
        assert!(g.ffn_act_fused());
        assert_eq!(g.up.ep, Epilogue::ReluBias);
        assert_eq!(g.up.o.y.addr(), at(&b.act));
        assert_eq!(g.up.o.bias.map(|x| x.addr()), lw.up_b.as_ref().map(at));
        assert_eq!((g.up.n, g.up.k), (c.ffn_dim, c.hidden));
        assert_eq!(g.down.o.x.addr(), at(&b.act));
        for gm in [g.qkv, g.o, g.down] {
            assert_eq!(gm.ep, Epilogue::None);
            assert!(gm.o.bias.is_none());
        }
        for (name, fuse) in [
            ("opt-1.3b", false),
            ("falcon-rw-7b", true),
            ("llama-3.2-1b", true),
        ] {
            let g = layer_gemms(&llm(name), &b, &lw, fuse);
            assert!(!g.ffn_act_fused(), "{name}");
            assert_eq!(g.up.ep, Epilogue::None, "{name}");
            assert!(g.up.o.bias.is_none(), "{name}");
            assert_eq!(g.up.o.y.addr(), at(&b.up), "{name}");
            assert_eq!(g.down.o.x.addr(), at(&b.act), "{name}");
        }
    }
}
