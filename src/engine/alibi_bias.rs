//! The ALiBi bias of the tensor-core prefill kernels, checked on the CPU. On masked tiles
//! `tc_score` (attention_tc.cu) adds bf16(slope · bf16(key)) through conversion instructions, as
//! HF's `build_alibi_tensor` rounds; on unmasked tiles `tc_alibi_tiles` (attention_tc.cu) and
//! `wg_alibi_tile` (attention_wg.cu) compute the same value with FP32 arithmetic alone (Veltkamp's
//! split for each bf16 rounding), which must give the same bits for every key a sequence can
//! reach and every slope the catalog produces. The functions below are the kernels' formulas,
//! operation for operation: IEEE binary32 with round to nearest even, as the `_rn` intrinsics
//! compile.

/// bf16(x) as `__float2bfloat16` rounds it (to nearest, ties to even).
fn bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// `tc_score`'s bias: bf16(slope · bf16(key)).
fn score_bias(key: i32, slope: f32) -> f32 {
    bf16(slope * bf16(key as f32))
}

/// `tc_bf16_rn`: c = (2^16 + 1)·x; c − (c − x).
fn split_rn(x: f32) -> f32 {
    let c = 65537.0f32 * x;
    c - (c - x)
}

/// `tc_alibi_bias`: c = ((2^16 + 1)·slope)·bk; c − fma(−slope, bk, c).
fn split_bias(bk: f32, slope: f32) -> f32 {
    let c = (65537.0f32 * slope) * bk;
    c - (-slope).mul_add(bk, c)
}

/// The bf16 slopes of every head count the catalog can hold (1 to 128 heads), as
/// `forward::positional_table` rounds them, each once.
fn catalog_slopes() -> Vec<f32> {
    let mut bits: Vec<u32> = (1..=128)
        .flat_map(crate::llm::alibi_slopes)
        .map(|s| half::bf16::from_f64(s).to_f32().to_bits())
        .collect();
    bits.sort_unstable();
    bits.dedup();
    bits.into_iter().map(f32::from_bits).collect()
}

/// Keys up to here: the catalog's longest context (max_positions) is 2^17.
const MAX_KEY: i32 = 1 << 17;

#[test]
fn split_rounds_as_bf16() {
    // Veltkamp's split rounds to nearest; whether its ties go to even, and the carries into the
    // exponent, show at the 16-bit boundary: every upper half of a normal float below 2^111 (the
    // split's (2^16 + 1)·x must not overflow; the kernels round no subnormals), of both signs,
    // with the low halves around it; and zero.
    assert_eq!(split_rn(0.0).to_bits(), 0);
    for hi in 0x0080u32..0x7700 {
        for lo in [0x0000u32, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
            for sign in [0, 0x8000_0000u32] {
                let x = f32::from_bits(sign | hi << 16 | lo);
                assert_eq!(
                    split_rn(x).to_bits(),
                    bf16(x).to_bits(),
                    "x = {x:e} ({:#010x})",
                    x.to_bits()
                );
            }
        }
    }
}

#[test]
fn tile_keys_are_exact() {
    // wg_alibi_tile: lane L's keys kb + 2L, converted, and that plus 1.
    for k in (0..=MAX_KEY).step_by(2) {
        assert_eq!(k as f32 + 1.0, (k + 1) as f32);
    }
    // tc_alibi_tiles: a thread's keys in a tile from kb (a multiple of 32) start at kb + 2·ti
    // and step +1, +7, +1, … over its NT = 8 column pairs, in fp32.
    for kb in (0..=MAX_KEY).step_by(32) {
        for ti in 0..4 {
            let mut key = (kb + 2 * ti) as f32;
            for n in 0..8 {
                for x in 0..2 {
                    if n + x > 0 {
                        key += if x == 1 { 1.0 } else { 7.0 };
                    }
                    assert_eq!(key, (kb + 2 * ti + 8 * n + x) as f32);
                }
            }
        }
    }
}

#[test]
fn unmasked_bias_matches_tc_score() {
    let slopes = catalog_slopes();
    assert!(slopes.len() > 100, "{} slopes", slopes.len());
    let keys: Vec<(i32, f32)> = (0..=MAX_KEY).map(|k| (k, split_rn(k as f32))).collect();
    for &(k, bk) in &keys {
        assert_eq!(bk.to_bits(), bf16(k as f32).to_bits(), "bf16({k})");
    }
    for &slope in &slopes {
        for &(k, bk) in &keys {
            let (got, want) = (split_bias(bk, slope), score_bias(k, slope));
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "key {k}, slope {slope:e}: {got} vs {want}"
            );
            // wg_alibi_tile shuffles two biases in one register: their upper halves.
            assert_eq!(got.to_bits() & 0xFFFF, 0, "key {k}, slope {slope:e}: {got}");
        }
    }
}
