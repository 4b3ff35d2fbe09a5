//! Self-test of the tensor-core attention kernels: the block shapes the host plans with against
//! the compiled ones, then prefill and decode over GQA groups, head dims, odd lengths and the
//! Gemma-2 / falcon variants.

use super::device::extra_nvrtc_options;
use super::selftest::{AttnOpts, Tester};
use anyhow::Result;

impl Tester {
    /// The tensor-core prefill and decode kernels: GQA groups 1 / 3 / 4 / 8 / 16, every head dim, odd lengths
    /// (partial pages, partial 64- and 128-row blocks, several items per sequence), window / soft-cap / ALiBi.
    pub(crate) fn attention_tc_checks(&mut self) -> Result<()> {
        // The host plans prefill items with the rows (and launches the threads and shared memory)
        // the kernels were compiled with; without a variant those must be the CPU side's defaults
        // (attn_shapes::tc_rows, tc_warps, tc_smem, tcd_warps and tcd_smem, which its tests use:
        // prefill blocks of 4 warps, or on sm_90a 9 for attention_ws.cu at hd 64, 80 (computed as
        // 128) and 128 and 12 for attention_ws256.cu at hd 256).
        if extra_nvrtc_options().is_empty() {
            use super::attn_shapes as sh;
            let sm90a = self.dev.arch == "sm_90a";
            for hd in super::forward::HEAD_DIMS {
                let (ws, tma) = (sh::prefill_ws(hd, sm90a), sh::tcd_tma(hd, sm90a));
                let (warps, tcd_warps) = (sh::tc_warps(hd, ws), sh::tcd_warps(hd));
                let sx = self.sx();
                // (what, compiled, planned), in the order they are recorded.
                let shapes = [
                    (format!("attention_tc rows per block at hd {hd}: compiled vs attn_shapes::tc_rows (ws {ws})"), self.dev.tc_rows(sx, hd)?, sh::tc_rows(hd, ws)),
                    (format!("attention_tc threads per block at hd {hd}: compiled vs {warps} warps (attn_shapes::tc_warps, ws {ws})"), self.dev.tc_threads(sx, hd)?, 32 * warps),
                    (format!("attention_tc shared memory at hd {hd}: compiled vs attn_shapes::tc_smem (ws {ws})"), self.dev.tc_smem(sx, hd)?, sh::tc_smem(hd, ws)),
                    (format!("attention_tcd shared memory at hd {hd}: compiled vs attn_shapes::tcd_smem (TMA {tma})"), self.dev.tcd_smem(sx, hd)?, sh::tcd_smem(hd, tma)),
                    (format!("attention_tcd threads per block at hd {hd}: compiled vs {tcd_warps} warps (attn_shapes::tcd_warps)"), self.dev.tcd_threads(sx, hd)?, 32 * tcd_warps),
                ];
                for (what, compiled, planned) in shapes {
                    self.record(what, &[compiled as f32], &[planned as f64], 0.0);
                }
            }
        }
        let tc = AttnOpts {
            tc: true,
            ..AttnOpts::default()
        };
        let lens: &[usize] = &[1, 17, 100, 333];
        for &(h, kv, hd) in &[
            (8, 8, 64),
            (32, 8, 64),
            (16, 2, 64),
            (6, 2, 64),
            (32, 2, 64),
            (8, 2, 80),
            (8, 1, 80),
            (4, 4, 96),
            (12, 3, 128),
            (16, 2, 128),
            (8, 4, 256),
            (4, 4, 16),
            (8, 2, 32),
        ] {
            self.attention(h, kv, hd, lens, false, tc)?;
        }
        self.attention(16, 4, 128, &[700, 5, 1029], false, tc)?; // many items per sequence

        // Head dim 80 (opt-2.7b, granite-3b: 32 heads, one per KV head; attention_ws.cu on sm_90a,
        // computed as 128 with zero-filled columns): groups 1 and 4, many items per sequence
        // (128 and 32 queries an item there) with partial pages and row blocks; soft-cap, window
        // and ALiBi over the same lengths.
        let long: &[usize] = &[5, 700, 1029];
        self.attention(32, 32, 80, long, false, tc)?;
        self.attention(8, 2, 80, long, false, tc)?;
        let hd80 = [
            (8, 8, 80, 2.0, 0),
            (8, 2, 80, 0.0, 300),
            (4, 4, 80, 30.0, 37),
        ];
        self.capped(&hd80, long, false, 1.0 / 12.0, tc)?;
        self.attention(5, 5, 80, long, false, AttnOpts { alibi: true, ..tc })?;

        // Head dim 256 (Gemma-2; attention_ws256.cu on sm_90a): groups 2 and 8, many items per
        // sequence with partial pages and row blocks, soft-cap with and without a window.
        self.attention(8, 4, 256, long, false, tc)?;
        self.attention(16, 2, 256, long, false, tc)?;
        let hd256 = [
            (8, 4, 256, 2.0, 0),
            (16, 2, 256, 1.0, 0),
            (8, 4, 256, 2.0, 300),
            (16, 2, 256, 50.0, 4096),
        ];
        self.capped(&hd256, long, false, 1.0 / 16.0, tc)?;
        let prefill = [
            (8, 4, 256, 50.0, 4096),
            (8, 4, 256, 2.0, 37),
            (4, 2, 64, 1.5, 100),
            (6, 3, 32, 0.0, 7),
            (16, 2, 128, 0.0, 65),
            (8, 1, 80, 3.0, 200),
        ];
        self.capped(&prefill, lens, false, 1.0 / 12.0, tc)?;
        for &(h, hd) in &[(64usize, 64usize), (6, 64), (5, 80), (4, 128), (4, 256)] {
            self.attention(h, h, hd, lens, false, AttnOpts { alibi: true, ..tc })?;
        }
        // ALiBi over many unmasked 64-key tiles (the bias added per key, tc_alibi_tiles and
        // wg_alibi_tile): falcon's shape (64 heads at hd 64), hd 128 and 80; and with groups of 2
        // (attention_tc: one slope per thread's rows; attention_ws: two per warp, the masked path)
        // and 3 (two slopes per thread: the masked path).
        for &(h, kv, hd) in &[
            (64usize, 64usize, 64usize),
            (16, 16, 128),
            (5, 5, 80),
            (8, 4, 128),
            (12, 4, 64),
        ] {
            self.attention(h, kv, hd, long, false, AttnOpts { alibi: true, ..tc })?;
        }
        // Decode kernel: groups 1…16 (16 at hd 64 and 256, the two tile shapes), every head dim,
        // contexts across page and 32- and 64-key tile edges, single items and split partials
        // (sequence s is split min(tiles, s + 1) ways). On sm_90a hd 64, 128 and 256 load through
        // TMA (hd 256: one page a tile, 4 swizzled boxes each of K and V).
        let dlens: &[usize] = &[1, 37, 64, 70, 1500, 4097];
        for &(h, kv, hd) in &[
            (8, 8, 64),
            (32, 8, 64),
            (28, 4, 128),
            (12, 2, 128),
            (32, 2, 64),
            (8, 1, 80),
            (4, 4, 96),
            (8, 4, 256),
            (32, 2, 256),
            (4, 4, 16),
            (8, 2, 32),
        ] {
            self.attention(h, kv, hd, dlens, true, tc)?;
        }
        let decode = [
            (8, 4, 256, 50.0, 4096),
            (8, 4, 256, 30.0, 37),
            // Gemma-2's window at a smaller scale (1000 keys of 1500 and 4097; Gemma-2-9B's group
            // of 2): splits wholly before the window (empty) and splits starting at its first page.
            (16, 8, 256, 50.0, 1000),
            (4, 2, 64, 0.0, 100),
            (8, 1, 80, 3.0, 200),
        ];
        self.capped(&decode, dlens, true, 1.0 / 12.0, tc)?;
        for &(h, hd) in &[(32usize, 64usize), (5, 80), (4, 256)] {
            self.attention(h, h, hd, dlens, true, AttnOpts { alibi: true, ..tc })?;
        }
        Ok(())
    }

    /// Gemma-2's variants: each (heads, KV heads, head dim, soft-cap, window) at query scale
    /// `scale` over `lens`, prefill or `decode`, in the order given.
    fn capped(
        &mut self,
        cases: &[(usize, usize, usize, f32, usize)],
        lens: &[usize],
        decode: bool,
        scale: f32,
        tc: AttnOpts,
    ) -> Result<()> {
        for &(h, kv, hd, softcap, window) in cases {
            let o = AttnOpts {
                softcap,
                window,
                scale: Some(scale),
                ..tc
            };
            self.attention(h, kv, hd, lens, decode, o)?;
        }
        Ok(())
    }
}
