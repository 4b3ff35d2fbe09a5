// Hopper wgmma helpers (sm_90a) for the prefill kernels of attention_ws.cu and attention_ws256.cu.
//
// attention_tc (attention_tc.cu) issues every 16×8×16 product from each warp with mma.sync and
// waits for it; ncu found it latency-bound at ~200 TFLOP/s. On sm_90a a warpgroup (4 warps) issues
// wgmma.m64nNk16, which reads its operands from shared memory (or A from registers) and runs
// asynchronously, so the tensor cores work on one tile while the warps do the softmax of another
// (FlashAttention-3's intra-warpgroup pipeline):
//
//   iteration j:  issue S_j = Q·K_jᵀ;  issue O += P_{j-1}·V_{j-1};  wait for S_j;  softmax(S_j);
//                 wait for the P·V;  rescale O;  P_j = S_j in 16 bits (registers, the A operand)
//
// Same items, rows, masks and score formula as attention_tc: one block = one item × one KV head,
// 128 rows (row r is query q_tok + r / G of head kvh·G + r % G), two warpgroups of 64 rows. Q sits
// in shared memory as no-swizzle core matrices (tc_cm), K and V as attention_ws.cu's TMA copies
// lay them out. Everything below is compiled only for sm_90a (Device::new compiles for it on
// Hopper); elsewhere attention_tc serves every head dim. At hd 64 the softmax's per-element work,
// not the tensor cores, bounds the kernel: tiles that need no mask take attention_tc's unmasked
// path, ALiBi's too (one add per element, each key's bias computed once per warp, wg_alibi_tile).

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): address, leading and
// stride byte offsets, each >> 4; no swizzle.
__device__ __forceinline__ unsigned long long wg_desc(const void* p, int lbo, int sbo) {
    return ((smem_addr(p) & 0x3FFFF) >> 4) | ((unsigned long long)(lbo >> 4) << 16) | ((unsigned long long)(sbo >> 4) << 32);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Orders this thread's shared-memory writes (st.shared, cp.async) before wgmma's reads of them.
__device__ __forceinline__ void wg_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from reading accumulators before the wait that makes them valid.
template <int N> __device__ __forceinline__ void wg_pin(float (&d)[N][4]) {
#pragma unroll
    for (int n = 0; n < N; n++) {
#pragma unroll
        for (int x = 0; x < 4; x++) asm volatile("" : "+f"(d[n][x])::"memory");
    }
}

#define WG_D32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define WG_D64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define WG_C4(d, i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define WG_C32(d) WG_C4(d, 0), WG_C4(d, 1), WG_C4(d, 2), WG_C4(d, 3), WG_C4(d, 4), WG_C4(d, 5), WG_C4(d, 6), WG_C4(d, 7)
#define WG_C64(d) WG_C32(d), WG_C4(d, 8), WG_C4(d, 9), WG_C4(d, 10), WG_C4(d, 11), WG_C4(d, 12), WG_C4(d, 13), WG_C4(d, 14), WG_C4(d, 15)
// ss: d (64 × N, fp32) = or += A·B, A and B K-major in shared memory; acc = 0 overwrites d.
// rs: d += A·B, A (16-bit, mma.sync's A fragment layout per warp) in registers, B MN-major.
// Operand numbers follow the N / 2 accumulators: I0.. for the inputs.
#define WG_DEF(T, TY, N, D, C, I0, I1, I2, I3, I4, I5) \
template <> struct Wg<T, N> { \
    static __device__ __forceinline__ void ss(float (&d)[N / 8][4], unsigned long long da, unsigned long long db, int acc) { \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " I2 ", 0;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " D ", " I0 \
                     ", " I1 ", p, 1, 1, 0, 0;\n}\n" : C(d) : "l"(da), "l"(db), "r"(acc)); \
    } \
    static __device__ __forceinline__ void rs(float (&d)[N / 8][4], const unsigned (&a)[4], unsigned long long db) { \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " I5 ", 0;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " D ", {" I0 \
                     ", " I1 ", " I2 ", " I3 "}, " I4 ", p, 1, 1, 1;\n}\n" : C(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1)); \
    } \
};
template <class T, int N> struct Wg;
WG_DEF(bf16, "bf16", 64, WG_D32, WG_C32, "%32", "%33", "%34", "%35", "%36", "%37")
WG_DEF(f16, "f16", 64, WG_D32, WG_C32, "%32", "%33", "%34", "%35", "%36", "%37")
WG_DEF(bf16, "bf16", 128, WG_D64, WG_C64, "%64", "%65", "%66", "%67", "%68", "%69")
WG_DEF(f16, "f16", 128, WG_D64, WG_C64, "%64", "%65", "%66", "%67", "%68", "%69")

// This thread's rows r0 (h = 0) and r0 + 8 (h = 1) of its warp's 16: position (−1 past the item's
// queries), ALiBi slope, and the warp's position range (wmin over valid rows). No tile is skipped:
// wgmma in a branch the compiler cannot prove uniform is serialized (ptxas C7520), and a tile past
// every query of a warpgroup (at most one, at the diagonal) is masked to P = 0 like any other.
struct WgRows {
    int r0, pos[2], wmin, wmax;
    float sl[2];
    bool one_slope; // every row of the warp has the same slope (wg_warp_slope; true without ALiBi)
};
// Whether both of this thread's slopes equal lane 0's, in every lane of the warp (all must call).
__device__ __forceinline__ bool wg_warp_slope(const float (&sl)[2]) {
    const float s0 = __shfl_sync(0xffffffff, sl[0], 0);
    return __all_sync(0xffffffff, sl[0] == s0 && sl[1] == s0);
}
__device__ __forceinline__ WgRows wg_rows(int r0, int q_tok, int q_cnt, const int* tok_pos, const float* alibi, int kvh, int G) {
    WgRows R;
    R.r0 = r0;
    R.wmax = -1;
    R.wmin = 0x7fffffff;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int r = r0 + 8 * h;
        bool val = r / G < q_cnt;
        R.pos[h] = val ? tok_pos[q_tok + r / G] : -1;
        R.sl[h] = alibi ? alibi[kvh * G + r % G] : 0.f;
        R.wmax = max(R.wmax, R.pos[h]);
        if (val) R.wmin = min(R.wmin, R.pos[h]);
    }
    for (int o = 16; o > 0; o >>= 1) {
        R.wmax = max(R.wmax, __shfl_xor_sync(0xffffffff, R.wmax, o));
        R.wmin = min(R.wmin, __shfl_xor_sync(0xffffffff, R.wmin, o));
    }
    R.one_slope = wg_warp_slope(R.sl);
    return R;
}

// ALiBi on one 16-row tile of keys from kb that needs no mask, every row of the warp with the same
// slope (wg_warp_slope): tc_alibi_tiles' bias (bit for bit tc_score's), but each key's computed
// once per warp instead of once per thread holding it: lane L takes keys kb + 2L and kb + 2L + 1
// (the 64 keys of a tile; exact in fp32 below 2^24), and thread ti reads keys kb + 8n + 2ti + x
// from lane 4n + ti, both in one shuffle: the biases are bf16 values, so their upper halves are
// the whole of them. Per tile and thread 2 biases (14 FP32 operations), 8 shuffles and their
// unpacking, then one add per element, against 16 biases (112 operations) per thread in
// tc_alibi_tiles; attention_tc keeps that (its registers are at ptxas's limit at hd 64 and 128,
// where shuffles shifted its spills). Packed, the shuffled values take 8 registers, not 16.
// Warp-uniform: its caller's condition is.
template <int NT> __device__ __forceinline__ void wg_alibi_tile(float (&s)[NT][4], int kb, int lane, float slope) {
    static_assert(NT <= 8, "a warp's lanes cover 64 keys");
    const float k0 = (float)(kb + 2 * lane);
    const float b0 = tc_alibi_bias(tc_bf16_rn(k0), slope), b1 = tc_alibi_bias(tc_bf16_rn(__fadd_rn(k0, 1.f)), slope);
    const unsigned b = __byte_perm(__float_as_uint(b0), __float_as_uint(b1), 0x7632); // b0's upper half low, b1's high
#pragma unroll
    for (int n = 0; n < NT; n++) {
        const int src = 4 * n + (lane & 3);
        const unsigned q = __shfl_sync(0xffffffff, b, src);
        const float c0 = __uint_as_float(q << 16), c1 = __uint_as_float(q & 0xffff0000u);
        s[n][0] += c0;
        s[n][1] += c1;
        s[n][2] += c0;
        s[n][3] += c1;
    }
}

// Softmax of S_j (keys from kb) as attention_tc's: scores in the log2 domain, per-element masks
// only off the unmasked tiles (there ALiBi's bias is one add per element when the warp's rows
// share a slope, wg_alibi_tile, and the soft-cap an ex2 and an rcp, tc_softcap_tile). Returns
// whether the max moved, and then o's factors in cA, cB, which the caller applies once O's
// pending P·V has landed (wg_rescale_pack).
template <int NT>
__device__ __forceinline__ bool wg_softmax(float (&s)[NT][4], const WgRows& R, int kb, int kend, int window, const float* alibi, float scale,
                                           float softcap, int lane, float& mA, float& mB, float& lA, float& lB, float& cA, float& cB) {
    const bool full = (softcap <= 0.f || !alibi) && R.one_slope && kb + NT * 8 <= kend && kb + NT * 8 - 1 <= R.wmin &&
                      (window == 0 || kb > R.wmax - window);
    if (full && softcap > 0.f) {
        tc_softcap_tile(s, tc_softcap_ka(scale, softcap));
    } else if (full && alibi) {
        wg_alibi_tile(s, kb, lane, R.sl[0]);
    } else if (!full) {
        tc_mask_tile(s, kb, lane & 3, R.pos, R.sl, kend, alibi, scale, softcap, window);
    }
    const float sc = full && softcap <= 0.f ? scale * 1.4426950408889634f : 1.f;
    const bool moved = tc_softmax_max<NT, true, true>(s, mA, mB, lA, lB, sc, cA, cB);
    tc_softmax_exp<NT, true>(s, mA, mB, lA, lB, sc);
    return moved;
}
// O rescaled by the new max's factors, and P_j = S_j in 16 bits (the next P·V's A operand).
template <class T, int ND, int NT>
__device__ __forceinline__ void wg_rescale_pack(float (&o)[ND][4], unsigned (&p)[NT / 2][4], const float (&s)[NT][4], bool moved, float cA,
                                                float cB) {
    if (moved) tc_rescale_o(o, cA, cB);
#pragma unroll
    for (int k = 0; k < NT / 2; k++) tc_p_frag<T>(p[k], s, k);
}
// This thread's share of its two output rows.
template <class T, int ND>
__device__ __forceinline__ void wg_store(T* out, const float (&o)[ND][4], const WgRows& R, float lA, float lB, int q_tok, int heads, int kvh,
                                         int G, int ti) {
    constexpr int HD = ND * 8;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        if (R.pos[h] < 0) continue;
        int r = R.r0 + 8 * h;
        tc_store_row<T>(out + ((long long)(q_tok + r / G) * heads + kvh * G + r % G) * HD, o, h ? lB : lA, h, ti);
    }
}

#endif

