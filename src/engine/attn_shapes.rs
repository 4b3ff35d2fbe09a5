//! Shapes of the attention kernels that the host must agree on: rows per block, query tokens per
//! prefill item and the decode kernel's threads and dynamic shared memory (attention_tcd.cu) as
//! the kernels compile; the kernels export theirs (`Device::tc_smem`, `Device::tcd_threads`,
//! `Device::tcd_smem`). They take every head dim and query group that `Model::check_supported`
//! admits (HEAD_DIMS, at most MAX_GROUP query heads per KV head), as the test below checks.

/// Whether the tensor-core prefill attention for `hd` is a warp-specialized wgmma kernel (a TMA
/// producer and two consumer warpgroups): on sm_90a (`sm90a`) at hd 64, 80 and 128
/// (attention_ws.cu) and 256 (attention_ws256.cu); attention_tc (mma.sync) otherwise. TcEntry in
/// attention_prefill.cu. Hd 80 (opt-2.7b, granite-3b) is computed as `ws_hd` = 128 with zero
/// columns: the copies and wgmma's swizzled V tiles come in whole 64-column blocks, and the copy
/// engine zero-fills a box's columns past the cache's 80, so the padding costs 1.3x the tensor
/// work (S over the real 80 columns, P·V over 128) and no extra memory traffic; on an H100
/// attention_tc ran hd 80 at about 155 TFLOP/s, attention_ws hd 128 at about 322.
pub fn prefill_ws(hd: usize, sm90a: bool) -> bool {
    sm90a && matches!(hd, 64 | 80 | 128 | 256)
}

/// The head dim a warp-specialized prefill block computes and stores in shared memory with
/// (WsShape::PD in attention_ws.cu): `hd` rounded up to whole 64-column TMA boxes.
pub fn ws_hd(hd: usize) -> usize {
    hd.next_multiple_of(64)
}

/// Whether the decode kernel for `hd` loads through TMA (TcdShape in attention_tcd.cu): on sm_90a
/// at the head dims whose rows are whole 64-column boxes (64, 128 and 256), since its copies keep
/// L2 less loaded and HBM busier than every thread's cp.async (measured at hd 64 and 128: DRAM
/// 84 % → 89 % of peak). Hd 80 keeps cp.async: TMA there means the maps' padded boxes into stages
/// of 128 columns, which on an H100 made the kernel 5–19 % slower (it fits one block fewer per SM
/// and copies a second box per page for 32 bytes a row; docs/performance.md, "What was tried").
pub fn tcd_tma(hd: usize, sm90a: bool) -> bool {
    sm90a && matches!(hd, 64 | 128 | 256)
}

/// Consumer warpgroups of 64 rows in a warp-specialized prefill block (WsShape::CWG in
/// attention_ws.cu): 3 at hd 64, where one warpgroup's softmax of a 64-key tile takes the MUFU as
/// long as its wgmma take the tensor cores, so two others keep them busy; 2 where the block computes
/// with 128 or 256 columns, whose accumulators leave no registers for a third.
pub fn ws_warpgroups(hd: usize) -> usize {
    if ws_hd(hd) == 64 {
        3
    } else {
        2
    }
}

/// Rows (query tokens × group heads) of one tensor-core prefill attention block (TcShape in
/// attention_tc.cu: 4 warps of two 16-row tiles up to hd 64 and at hd 128, of one otherwise;
/// with `ws` (`prefill_ws`) WsShape in attention_ws.cu / attention_ws256.cu: `ws_warpgroups`
/// warpgroups of 64 rows). The engine uses the compiled value (`Device::tc_rows`); the selftest
/// checks the two agree.
pub fn tc_rows(hd: usize, ws: bool) -> usize {
    if ws {
        64 * ws_warpgroups(hd)
    } else if hd <= 64 || hd == 128 {
        128
    } else {
        64
    }
}

/// Warps of one tensor-core prefill attention block: attention_tc's 4; with `ws`, the consumer
/// warpgroups and a producer warp at hd 64, 80 and 128 (13 and 9), a producer warpgroup (12) at
/// hd 256, where ptxas sizes registers for whole warpgroups and the producer hands its own to the
/// consumers (setmaxnreg). The engine launches with the compiled threads (`Device::tc_threads`).
pub fn tc_warps(hd: usize, ws: bool) -> usize {
    match (ws, hd) {
        (false, _) => 4,
        (true, 256) => 12,
        (true, _) => 4 * ws_warpgroups(hd) + 1,
    }
}

/// Threads of the prefill block whose warpgroups trade registers (attention_ws256.cu, hd 256 on
/// sm_90a): the producer warpgroup keeps WS_PRODUCER_REGS a thread (setmaxnreg.dec), the two
/// consumer warpgroups take WS_CONSUMER_REGS (setmaxnreg.inc, which waits until the block's pool
/// holds them).
pub const WS_REGS_THREADS: usize = 384;
pub const WS_PRODUCER_REGS: usize = 24;
pub const WS_CONSUMER_REGS: usize = 240;

/// Whether a block of `threads` (WS_REGS_THREADS) launched with `regs` registers a thread holds
/// what its warpgroups ask for after setmaxnreg: ptxas allows 168 at 384 threads, exactly enough.
pub fn ws_regs_fit(threads: usize, regs: usize) -> bool {
    threads * regs >= 128 * WS_PRODUCER_REGS + (threads - 128) * WS_CONSUMER_REGS
}

/// Dynamic shared memory of the tensor-core prefill attention block (`Device::tc_smem`):
/// attention_tc: Q [rows][hd+8] and two stages of K and V [keys][hd+8] (64-key tiles up to hd 128,
/// 32 at 256); with `ws`: Q [rows][ws_hd], 64-key K and V tiles of ws_hd columns (no row padding)
/// in 4 stages (2 at hd 256), the stages' mbarriers (full and empty; at hd 256 separate ones for K
/// and V) and 1 KiB to align to the swizzle's period.
pub fn tc_smem(hd: usize, ws: bool) -> usize {
    if ws {
        let (stages, bars) = if hd == 256 { (2, 4) } else { (4, 2) };
        let pd = ws_hd(hd);
        (tc_rows(hd, ws) * pd + stages * 2 * 64 * pd) * 2 + bars * stages * 8 + 1024
    } else {
        let keys = if hd <= 128 { 64 } else { 32 };
        (tc_rows(hd, ws) + 4 * keys) * (hd + 8) * 2
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
/// and V [keys][hd+8] (16 keys per warp) and Q [16][hd+8]; with `tma` (`tcd_tma`: sm_90a at hd 64,
/// 128 and 256) the stages unpadded [keys][hd] (hd / 64 swizzled blocks of 64 columns), one
/// mbarrier each and 1 KB to align them to the swizzle's period. At hd 256 either way 3 blocks fit
/// in an SM (`TCD_BLOCKS_256`). The engine launches with the compiled value (`Device::tcd_smem`);
/// the selftest checks the two agree.
pub fn tcd_smem(hd: usize, tma: bool) -> usize {
    let stage = 2 * 16 * tcd_warps(hd) * if tma { hd } else { hd + 8 } * 2;
    2 * stage + TCD_ROWS * (hd + 8) * 2 + if tma { 2 * 8 + 1024 } else { 0 }
}

/// Decode blocks that share an SM at hd 256 (H100: 228 KiB of shared memory, 1 KiB reserved per
/// block): the reason its tiles are 32 keys for 2 warps.
pub const TCD_BLOCKS_256: usize = 3;

/// Query tokens per prefill item of a block of `rows` (SCALAR_ROWS, or a tensor-core block's).
pub fn prefill_bq(group: usize, rows: usize) -> usize {
    (rows / group).max(1)
}

/// A prompt of `n` tokens as prefill items of at most `bq` queries: (first query, count), the
/// remainder first. A block costs its rows times its key range whether its rows are all queries or
/// not, and its key range runs to its last query, so the short item goes where keys are fewest
/// (at 192 rows a 4096-token prompt's 64-query remainder at the end would take a whole block over
/// all 4096 keys).
pub fn prefill_chunks(n: usize, bq: usize) -> impl Iterator<Item = (usize, usize)> {
    let first = match n % bq {
        0 => bq.min(n),
        r => r,
    };
    std::iter::once((0, first))
        .filter(|&(_, c)| c > 0)
        .chain((first..n).step_by(bq).map(move |i| (i, bq)))
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
            assert!(
                hd <= 256,
                "qkv_post's RoPE table holds 128 pairs (common.cu): head_dim {hd} needs more"
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
        assert_eq!(tcd_smem(128, true), 2 * 32768 + 4352 + 16 + 1024);
        // hd 256: two stages of 32 keys (padded under cp.async, 4 swizzled 64-column blocks under
        // TMA) and Q; 3 blocks fit in an H100 SM's 228 KiB with the 1 KiB each block reserves (two
        // stages of 64 keys, 143,616 bytes, fit one).
        assert_eq!(tcd_smem(256, false), 76032);
        assert_eq!(tcd_smem(256, true), 2 * 32768 + 8448 + 16 + 1024);
        assert_eq!(tcd_smem(256, true), 75024);
        for tma in [false, true] {
            assert!(TCD_BLOCKS_256 * (tcd_smem(256, tma) + 1024) <= 228 << 10);
        }
        for hd in HEAD_DIMS {
            for ws in [false, true] {
                let ws = ws && prefill_ws(hd, true);
                let rows = tc_rows(hd, ws);
                assert!(
                    tc_smem(hd, ws) <= 227 << 10,
                    "hd {hd}: {} bytes of shared memory (prefill)",
                    tc_smem(hd, ws)
                );
                for g in 1..=MAX_GROUP {
                    assert!(
                        prefill_bq(g, rows) * g <= rows
                            && prefill_bq(g, SCALAR_ROWS) * g <= SCALAR_ROWS
                    );
                }
            }
        }
        assert_eq!(prefill_bq(4, tc_rows(64, false)), 32);
        assert_eq!(prefill_bq(4, tc_rows(128, false)), 32);
        assert_eq!(prefill_bq(4, 64), 16);
    }

    /// Which kernels Hopper's sm_90a build picks, and their shapes as attention_prefill.cu,
    /// attention_ws.cu and attention_ws256.cu compile them (the values in their PTX).
    #[test]
    fn prefill_kernel_shapes() {
        for hd in HEAD_DIMS {
            assert!(!prefill_ws(hd, false) && !tcd_tma(hd, false));
            assert_eq!(prefill_ws(hd, true), matches!(hd, 64 | 80 | 128 | 256));
            assert_eq!(tcd_tma(hd, true), matches!(hd, 64 | 128 | 256));
            assert!(
                !tcd_tma(hd, true) || prefill_ws(hd, true),
                "hd {hd}: the decode kernel reads the KV maps the host sets for the prefill kernel (kv_tmap::needs_maps)"
            );
        }
        // attention_tc: 4 warps; 64 rows at hd 80, 96, 256.
        assert_eq!((tc_rows(256, false), tc_warps(256, false)), (64, 4));
        assert_eq!((tc_rows(80, false), tc_warps(80, false)), (64, 4));
        // attention_tc_smem_* as compiled for sm_80 (and sm_90, and sm_90a where not `ws`).
        let tc = [16, 32, 64, 80, 96, 128, 256].map(|hd| tc_smem(hd, false));
        assert_eq!(tc, [18432, 30720, 55296, 56320, 66560, 104448, 101376]);
        // sm_90a: 192 rows and 13 warps at hd 64; 128 rows and 9 warps at hd 80 and 128, 12 at 256
        // (384 threads × 168 registers at launch = 128 × 24 for the producer + 256 × 240 for the
        // consumers after setmaxnreg).
        assert_eq!((tc_rows(64, true), tc_warps(64, true)), (192, 13));
        assert_eq!((tc_rows(256, true), tc_warps(256, true)), (128, 12));
        assert_eq!((tc_rows(128, true), tc_warps(128, true)), (128, 9));
        assert_eq!((tc_rows(80, true), tc_warps(80, true)), (128, 9));
        // Hd 80 computes as 128 (whole 64-column boxes); the others as they are.
        assert_eq!([64, 80, 128, 256].map(ws_hd), [64, 128, 128, 256]);
        assert_eq!(32 * tc_warps(256, true), WS_REGS_THREADS);
        assert!(ws_regs_fit(WS_REGS_THREADS, 168) && !ws_regs_fit(WS_REGS_THREADS, 160));
        assert_eq!(WS_REGS_THREADS * 168, 128 * 24 + 256 * 240);
        let ws = [64, 80, 128, 256].map(|hd| tc_smem(hd, true));
        assert_eq!(ws, [91200, 164928, 164928, 197696]);
        // Gemma-2 (8 or 16 heads on 4 or 8 KV heads): 64 queries per item on sm_90a, 32 elsewhere.
        assert_eq!(prefill_bq(2, tc_rows(256, true)), 64);
        assert_eq!(prefill_bq(2, tc_rows(256, false)), 32);
        // opt-2.7b, granite-3b (hd 80, one query head per KV head): 128 queries per item on sm_90a,
        // 64 elsewhere.
        assert_eq!(prefill_bq(1, tc_rows(80, true)), 128);
        assert_eq!(prefill_bq(1, tc_rows(80, false)), 64);
    }

    /// A prompt's items cover its queries once, in order, none longer than `bq`, the one short
    /// item (if any) first.
    #[test]
    fn prefill_chunks_put_the_remainder_first() {
        let c = |n, bq| prefill_chunks(n, bq).collect::<Vec<_>>();
        assert_eq!(c(4096, 192).first(), Some(&(0, 64)));
        assert_eq!(c(4096, 192)[1], (64, 192));
        assert_eq!(c(4096, 128).len(), 32);
        assert_eq!(c(5, 2), vec![(0, 1), (1, 2), (3, 2)]);
        assert_eq!(c(3, 8), vec![(0, 3)]);
        assert_eq!(c(0, 8), vec![]);
        for n in 0..300 {
            for bq in [1, 7, 64, 128, 192] {
                let v = c(n, bq);
                let mut next = 0;
                for (k, &(i, q)) in v.iter().enumerate() {
                    assert!(
                        i == next && q >= 1 && q <= bq && (k == 0 || q == bq),
                        "{n} {bq} {v:?}"
                    );
                    next = i + q;
                }
                assert_eq!(next, n);
            }
        }
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
