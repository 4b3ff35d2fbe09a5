//! Shapes of the attention kernels that the host must agree on: rows per block, query tokens per
//! prefill item, dynamic shared memory, and which head dims and query groups the tensor-core
//! kernels take (attention_tc.cu, attention_tcd.cu).

use super::forward::HEAD_DIMS;

/// Rows (query tokens × group heads) of one tensor-core prefill attention block; 4 warps of 16.
pub const TC_ROWS: usize = 64;

/// Dynamic shared memory of attention_tc_*_{hd} (TcShape in attention_tc.cu): Q [64][hd+8] and two
/// buffers of K and V [kt][hd+8], kt = 64 keys up to hd 128, else 32.
pub fn tc_smem(hd: usize) -> usize {
    let kt = if hd <= 128 { 64 } else { 32 };
    (TC_ROWS + 4 * kt) * (hd + 8) * 2
}

/// Dynamic shared memory of attention_tcd_*_{hd} (TcdShape in attention_tcd.cu): Q [16][hd+8] and
/// two buffers of K and V [64][hd+8].
pub fn tcd_smem(hd: usize) -> usize {
    (16 + 4 * 64) * (hd + 8) * 2
}

/// Whether decode items go to the tensor-core decode kernel: its 16 rows hold the query group.
pub fn tcd_supported(group: usize) -> bool {
    group <= 16
}

/// Head dims with tensor-core kernels (ATTN_TC_ALL / ATTN_TCD_ALL: every compiled head dim).
pub fn tc_supported(hd: usize) -> bool {
    HEAD_DIMS.contains(&hd)
}

/// Query tokens per prefill item: 16 rows per scalar block, 64 per tensor-core block.
pub fn prefill_bq(group: usize, tc: bool) -> usize {
    ((if tc { TC_ROWS } else { 16 }) / group).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::forward::HEAD_DIMS;

    #[test]
    fn tc_attention_shapes() {
        for hd in HEAD_DIMS {
            assert_eq!(hd % 16, 0, "the tensor-core kernel needs head_dim % 16 == 0");
            assert!(tc_smem(hd) <= 227 << 10, "hd {hd}: {} bytes of shared memory", tc_smem(hd));
            assert!(tcd_smem(hd) <= 227 << 10, "hd {hd}: {} bytes of shared memory (decode)", tcd_smem(hd));
            assert!(tc_supported(hd));
        }
        assert_eq!(tc_smem(64), 46080);
        assert_eq!(tcd_smem(64), 39168);
        assert!(tcd_supported(16) && !tcd_supported(17));
        for g in 1..=16 {
            assert!(prefill_bq(g, true) * g <= TC_ROWS && prefill_bq(g, false) * g <= 16);
        }
        assert_eq!(prefill_bq(4, true), 16);
    }
}
