//! Shapes of the attention kernels that the host must agree on: rows per block, query tokens per
//! prefill item and the decode kernel's threads and dynamic shared memory (attention_tcd.cu) as
//! the kernels compile; the kernels export theirs (`Device::tc_smem`, `Device::tcd_threads`,
//! `Device::tcd_smem`). They take every head dim and query group that `Model::check_supported`
//! admits (HEAD_DIMS, at most MAX_GROUP query heads per KV head), as the test below checks.

/// Rows (query tokens × group heads) of one tensor-core prefill attention block (TcShape in
/// attention_tc.cu: 4 warps of two 16-row tiles up to hd 64 and at hd 128, of one otherwise;
/// WsShape in attention_ws.cu: 2 warpgroups of 64 rows). The engine uses the compiled value
/// (`Device::tc_rows`); the selftest checks the two agree.
pub fn tc_rows(hd: usize) -> usize {
    if hd <= 64 || hd == 128 {
        128
    } else {
        64
    }
}
/// Rows of one scalar prefill attention block.
pub const SCALAR_ROWS: usize = 16;
/// Rows of one tensor-core decode attention block: one mma tile holding the query group.
pub const TCD_ROWS: usize = 16;
const _: () = assert!(
    super::forward::MAX_GROUP <= TCD_ROWS,
    "the decode kernel's rows must hold every admitted query group"
);

/// Warps of one tensor-core decode attention block (TcdShape in attention_tcd.cu), each taking 16
/// keys of a tile: 4, and 2 at hd 256, whose 32-key tiles let 3 blocks share an SM's shared
/// memory. The engine launches with the compiled threads (`Device::tcd_threads`); the selftest checks
/// the two agree.
pub fn tcd_warps(hd: usize) -> usize {
    if hd == 256 {
        2
    } else {
        4
    }
}

/// Dynamic shared memory of attention_tcd_*_{hd} (TcdShape in attention_tcd.cu): two stages of K
/// and V [keys][hd+8] (16 keys per warp) and Q [16][hd+8]; with `tma` (sm_90a at hd 64 and 128)
/// the stages unpadded [keys][hd], one mbarrier each and 1 KB to align them. The engine launches
/// with the compiled value (`Device::tcd_smem`); the selftest checks the two agree.
pub fn tcd_smem(hd: usize, tma: bool) -> usize {
    let stage = 2 * 16 * tcd_warps(hd) * if tma { hd } else { hd + 8 } * 2;
    2 * stage + TCD_ROWS * (hd + 8) * 2 + if tma { 2 * 8 + 1024 } else { 0 }
}

/// Query tokens per prefill item of a block of `rows` (SCALAR_ROWS, or a tensor-core block's).
pub fn prefill_bq(group: usize, rows: usize) -> usize {
    (rows / group).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::forward::{HEAD_DIMS, MAX_GROUP};
    use super::*;

    #[test]
    fn tc_attention_shapes() {
        for hd in HEAD_DIMS {
            assert_eq!(
                hd % 16,
                0,
                "the tensor-core kernel needs head_dim % 16 == 0"
            );
            for tma in [false, true] {
                assert!(
                    tcd_smem(hd, tma) <= 227 << 10,
                    "hd {hd}: {} bytes of shared memory (decode)",
                    tcd_smem(hd, tma)
                );
            }
        }
        assert_eq!(tcd_smem(64, false), 39168);
        assert_eq!(tcd_smem(64, true), 2 * 16384 + 2304 + 16 + 1024);
        // hd 256: two stages of 32 padded keys and Q; 3 blocks fit in an H100 SM's 228 KiB with the
        // 1 KiB each block reserves (two stages of 64 keys, 143,616 bytes, fit one).
        assert_eq!(tcd_smem(256, false), 76032);
        assert!(3 * (tcd_smem(256, false) + 1024) <= 228 << 10);
        for hd in HEAD_DIMS {
            for g in 1..=MAX_GROUP {
                assert!(
                    prefill_bq(g, tc_rows(hd)) * g <= tc_rows(hd)
                        && prefill_bq(g, SCALAR_ROWS) * g <= SCALAR_ROWS
                );
            }
        }
        assert_eq!(prefill_bq(4, tc_rows(64)), 32);
        assert_eq!(prefill_bq(4, tc_rows(128)), 32);
        assert_eq!(prefill_bq(4, 64), 16);
    }

    /// Prefill items of two prompts (5 and 3 tokens, 2 queries per item) come out longest key range
    /// first; equal ranges keep their order (stable sort), and no item is lost.
    #[test]
    fn prefill_items_longest_first() {
        let tok_pos = [0, 1, 2, 3, 4, 0, 1, 2];
        let item = |q: i32, n: i32| super::super::attn_item::AttnItem {
            q_tok: q,
            q_cnt: n,
            slot: 0,
            key_begin: 0,
            key_end: i32::MAX,
            part: -1,
        };
        let mut items = vec![item(0, 2), item(2, 2), item(4, 1), item(5, 2), item(7, 1)];
        super::super::forward::longest_first(&mut items, &tok_pos);
        let firsts: Vec<i32> = items.iter().map(|x| x.q_tok).collect();
        assert_eq!(firsts, vec![4, 2, 7, 0, 5]);
    }

    /// The limits the kernels rely on are enforced before any kernel runs, with the LLM named.
    #[test]
    fn unsupported_shapes_are_refused_by_name() {
        let mut cfg = crate::llm::resolve_llm("llama-3.2-1b").unwrap();
        cfg.heads = cfg.kv_heads * (MAX_GROUP + 1);
        let e = super::super::forward::Model::check_supported(&cfg)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("llama-3.2-1b")
                && e.contains("17 query heads per KV head")
                && e.contains("at most 16"),
            "{e}"
        );
        let mut cfg = crate::llm::resolve_llm("llama-3.2-1b").unwrap();
        cfg.head_dim = 72;
        let e = super::super::forward::Model::check_supported(&cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("head_dim 72 has no attention kernel"), "{e}");
    }
}
