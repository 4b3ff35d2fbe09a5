//! One typed argument struct per kernel of kernels/*.cu: named fields in the kernel's parameter
//! order (the struct's field order *is* the launch order, by construction of `kernel_args!`), device
//! pointers as `DevPtr<T>` of the element type the kernel reads, scalars as the kernel's C types.
//! A launch is `unsafe` (the pointers must cover what the kernel touches for the grid, which only
//! the caller knows) and each call site says why in a `// SAFETY:` comment. The test below checks
//! every struct against its kernel's signature in the source: the number of parameters and the
//! kind (pointer, int, long long, unsigned long long, float) of each, in order.

use super::attn_item::AttnItem;
use super::device::{Arg, DevPtr, Device};
use anyhow::{bail, Result};

/// A kernel parameter: its `Arg` and its kind in the signature check (`p` pointer, `i` int, `l`
/// long long, `u` unsigned long long, `f` float).
pub trait KernelParam: Copy {
    const KIND: char;
    fn arg(self) -> Arg;
}
impl KernelParam for i32 {
    const KIND: char = 'i';
    fn arg(self) -> Arg {
        Arg::I(self)
    }
}
impl KernelParam for i64 {
    const KIND: char = 'l';
    fn arg(self) -> Arg {
        Arg::L(self)
    }
}
impl KernelParam for u64 {
    const KIND: char = 'u';
    fn arg(self) -> Arg {
        Arg::U(self)
    }
}
impl KernelParam for f32 {
    const KIND: char = 'f';
    fn arg(self) -> Arg {
        Arg::F(self)
    }
}
impl<T> KernelParam for DevPtr<T> {
    const KIND: char = 'p';
    fn arg(self) -> Arg {
        Arg::P(self.addr())
    }
}

/// 16-bit storage (bf16 or fp16, as the run's dtype): the kernels' `T`.
pub type Half = u16;

/// Declares a kernel's argument struct: its fields in parameter order, the kernel-name prefixes it
/// serves (the full name adds `_{dtype}` and, for attention, `_{hd}`), its parameter kinds and its
/// launch.
macro_rules! kernel_args {
    ($(#[$m:meta])* $name:ident => [$($kernel:literal),+] { $($(#[$fm:meta])* $f:ident : $t:ty),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t),+
        }
        impl $name {
            /// Kernel-name prefixes this struct launches.
            pub const KERNELS: &'static [&'static str] = &[$($kernel),+];
            /// Parameter kinds in order (checked against the kernel source by the tests).
            pub const KINDS: &'static [char] = &[$(<$t as KernelParam>::KIND),+];

            /// The arguments in the kernel's parameter order.
            pub fn args(&self) -> Vec<Arg> {
                vec![$(KernelParam::arg(self.$f)),+]
            }

            /// Launch kernel `name` (one of `KERNELS`, with its suffixes) with these arguments.
            ///
            /// # Safety
            /// Every pointer is null where the kernel allows it, else points into a live device
            /// allocation of its element type that holds everything the kernel reads and writes
            /// through it for this grid and these scalars.
            pub unsafe fn launch(
                &self,
                dev: &mut Device,
                name: &str,
                grid: (u32, u32, u32),
                block: u32,
                smem: u32,
            ) -> Result<()> {
                check_name(name, Self::KERNELS)?;
                // SAFETY: the argument list is this struct's, in the kernel's order (tests below);
                // the pointers' coverage is the caller's contract.
                unsafe { dev.launch(name, grid, block, smem, &self.args()) }
            }
        }
    };
}

/// `name` is `prefix_suffix…` for one of the prefixes (no other kernel's arguments reach it).
fn check_name(name: &str, prefixes: &[&str]) -> Result<()> {
    let ok = prefixes.iter().any(|p| {
        name.strip_prefix(p)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|rest| rest.starts_with("bf16") || rest.starts_with("f16"))
    });
    if !ok {
        bail!("kernel {name} launched with the arguments of {prefixes:?}");
    }
    Ok(())
}

kernel_args! {
    /// fill_uniform (common.cu): o[i] = offset + scale · uniform(−1, 1) from (seed, i).
    FillUniform => ["fill_uniform"] {
        out: DevPtr<Half>,
        n: i64,
        seed: u64,
        scale: f32,
        offset: f32,
    }
}

kernel_args! {
    /// embed (common.cu): token rows of the embedding table into the residual stream.
    Embed => ["embed"] {
        out: DevPtr<Half>,
        table: DevPtr<Half>,
        /// Token ids, or −(slot + 1) for the slot's last sampled token in `next_tok`.
        src: DevPtr<i32>,
        next_tok: DevPtr<i32>,
        hidden: i32,
        scale: f32,
        /// Learned position table (OPT), or null.
        positions: DevPtr<Half>,
        tok_pos: DevPtr<i32>,
        pos_offset: i32,
    }
}

kernel_args! {
    /// gather_rows (common.cu): out[i] = src[rows[i]].
    GatherRows => ["gather_rows"] {
        out: DevPtr<Half>,
        src: DevPtr<Half>,
        rows: DevPtr<i32>,
        cols: i32,
    }
}

kernel_args! {
    /// norm_residual (common.cu): resid += add (+ bias, post-norm), then out = norm(resid).
    NormResidual => ["norm_residual"] {
        resid: DevPtr<Half>,
        add: DevPtr<Half>,
        add_bias: DevPtr<Half>,
        add_post_w: DevPtr<Half>,
        w: DevPtr<Half>,
        b: DevPtr<Half>,
        out: DevPtr<Half>,
        cols: i32,
        eps: f32,
        mode: i32,
    }
}

kernel_args! {
    /// ffn_act (common.cu): the FFN activation (gated or not) of the up projection.
    FfnAct => ["ffn_act"] {
        out: DevPtr<Half>,
        gate_up: DevPtr<Half>,
        bias: DevPtr<Half>,
        rows: i64,
        ffn: i32,
        act: i32,
    }
}

kernel_args! {
    /// softcap (common.cu): x = cap · tanh(x / cap) in place.
    Softcap => ["softcap"] {
        x: DevPtr<Half>,
        n: i64,
        cap: f32,
    }
}

kernel_args! {
    /// qkv_post (common.cu): bias, RoPE, q out and k, v into the paged cache.
    QkvPost => ["qkv_post"] {
        qkv: DevPtr<Half>,
        bias: DevPtr<Half>,
        q_out: DevPtr<Half>,
        kc: DevPtr<Half>,
        vc: DevPtr<Half>,
        tok_pos: DevPtr<i32>,
        tok_slot: DevPtr<i32>,
        block_table: DevPtr<i32>,
        max_pages: i32,
        inv_freq: DevPtr<f32>,
        heads: i32,
        kv_heads: i32,
        hd: i32,
        page_size: i32,
        rope: i32,
    }
}

kernel_args! {
    /// argmax (common.cu): greedy token per row into out_tok[dst[row]] (and next_tok[slot[row]]).
    Argmax => ["argmax"] {
        logits: DevPtr<Half>,
        vocab: i32,
        out_tok: DevPtr<i32>,
        dst: DevPtr<i32>,
        next_tok: DevPtr<i32>,
        slot: DevPtr<i32>,
    }
}

kernel_args! {
    /// attention (attention.cu, the fp32 scalar reference) and attention_tcd (decode): one block per
    /// work item × KV head.
    Attention => ["attention", "attention_tcd"] {
        q: DevPtr<Half>,
        out: DevPtr<Half>,
        kc: DevPtr<Half>,
        vc: DevPtr<Half>,
        items: DevPtr<AttnItem>,
        tok_pos: DevPtr<i32>,
        block_table: DevPtr<i32>,
        max_pages: i32,
        heads: i32,
        kv_heads: i32,
        scale: f32,
        softcap: f32,
        window: i32,
        /// ALiBi slopes per head, or null.
        alibi: DevPtr<f32>,
        part_o: DevPtr<f32>,
        part_ml: DevPtr<f32>,
    }
}

kernel_args! {
    /// attention_tc (attention_prefill.cu: attention_ws or attention_tc): prefill items only, so
    /// without the split partials.
    AttentionPrefill => ["attention_tc"] {
        q: DevPtr<Half>,
        out: DevPtr<Half>,
        kc: DevPtr<Half>,
        vc: DevPtr<Half>,
        items: DevPtr<AttnItem>,
        tok_pos: DevPtr<i32>,
        block_table: DevPtr<i32>,
        max_pages: i32,
        heads: i32,
        kv_heads: i32,
        scale: f32,
        softcap: f32,
        window: i32,
        alibi: DevPtr<f32>,
    }
}

impl Attention {
    /// The same launch for the prefill kernel, which takes no partials.
    pub fn prefill(&self) -> AttentionPrefill {
        AttentionPrefill {
            q: self.q,
            out: self.out,
            kc: self.kc,
            vc: self.vc,
            items: self.items,
            tok_pos: self.tok_pos,
            block_table: self.block_table,
            max_pages: self.max_pages,
            heads: self.heads,
            kv_heads: self.kv_heads,
            scale: self.scale,
            softcap: self.softcap,
            window: self.window,
            alibi: self.alibi,
        }
    }
}

kernel_args! {
    /// attn_combine (attention.cu): merges a decode query's split partials.
    AttnCombine => ["attn_combine"] {
        out: DevPtr<Half>,
        /// Per split query: (token, first part, parts), three ints.
        comb: DevPtr<i32>,
        part_o: DevPtr<f32>,
        part_ml: DevPtr<f32>,
        heads: i32,
        hd: i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: [&str; 4] = [
        include_str!("kernels/common.cu"),
        include_str!("kernels/attention.cu"),
        include_str!("kernels/attention_prefill.cu"),
        include_str!("kernels/attention_tcd.cu"),
    ];

    /// The parameter kinds of the `extern "C"` kernel named `prefix_##S…` in the sources.
    fn kinds_in_source(prefix: &str) -> Vec<char> {
        let key = format!(" {prefix}_##S");
        let src = SOURCES
            .iter()
            .find(|s| s.contains(&key))
            .unwrap_or_else(|| panic!("kernel {prefix} not in the sources"));
        let at = src.find(&key).unwrap();
        let open = at + src[at..].find('(').unwrap();
        let close = open + src[open..].find(')').unwrap();
        src[open + 1..close]
            .split(',')
            .map(|p| {
                let p = p.trim();
                if p.contains('*') {
                    return 'p';
                }
                let ty = p.rsplit_once(' ').map_or(p, |(t, _)| t).trim();
                match ty {
                    "int" => 'i',
                    "long long" => 'l',
                    "unsigned long long" => 'u',
                    "float" => 'f',
                    other => panic!("{prefix}: parameter type {other} in {p}"),
                }
            })
            .collect()
    }

    #[test]
    fn every_struct_matches_its_kernels_signature() {
        let all: [(&[&str], &[char]); 11] = [
            (FillUniform::KERNELS, FillUniform::KINDS),
            (Embed::KERNELS, Embed::KINDS),
            (GatherRows::KERNELS, GatherRows::KINDS),
            (NormResidual::KERNELS, NormResidual::KINDS),
            (FfnAct::KERNELS, FfnAct::KINDS),
            (Softcap::KERNELS, Softcap::KINDS),
            (QkvPost::KERNELS, QkvPost::KINDS),
            (Argmax::KERNELS, Argmax::KINDS),
            (Attention::KERNELS, Attention::KINDS),
            (AttentionPrefill::KERNELS, AttentionPrefill::KINDS),
            (AttnCombine::KERNELS, AttnCombine::KINDS),
        ];
        for (kernels, kinds) in all {
            for k in kernels {
                assert_eq!(kinds_in_source(k), kinds, "{k}");
            }
        }
    }

    /// Every `extern "C"` kernel of the sources has a struct (no launch without one).
    #[test]
    fn every_kernel_has_a_struct() {
        let covered = [
            FillUniform::KERNELS,
            Embed::KERNELS,
            GatherRows::KERNELS,
            NormResidual::KERNELS,
            FfnAct::KERNELS,
            Softcap::KERNELS,
            QkvPost::KERNELS,
            Argmax::KERNELS,
            Attention::KERNELS,
            AttentionPrefill::KERNELS,
            AttnCombine::KERNELS,
        ]
        .concat();
        let mut found = 0;
        for src in SOURCES {
            for part in src.split("extern \"C\" __global__ void ").skip(1) {
                let name = part
                    .split_whitespace()
                    .find(|w| w.contains("_##S"))
                    .and_then(|w| w.split("_##S").next())
                    .expect("kernel name");
                assert!(
                    covered.contains(&name),
                    "kernel {name} has no argument struct"
                );
                found += 1;
            }
        }
        assert_eq!(found, covered.len());
    }

    /// A struct launches only its own kernels, whatever their dtype and head-dim suffixes.
    #[test]
    fn names_are_checked_against_the_struct() {
        assert!(check_name("attention_tcd_bf16_128", Attention::KERNELS).is_ok());
        assert!(check_name("attention_f16_64", Attention::KERNELS).is_ok());
        assert!(check_name("attention_tc_bf16_128", Attention::KERNELS).is_err());
        assert!(check_name("attention_tc_bf16_128", AttentionPrefill::KERNELS).is_ok());
        assert!(check_name("embed_bf16", QkvPost::KERNELS).is_err());
    }
}
