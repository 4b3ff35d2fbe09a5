// Hopper prefill attention on wgmma (sm_90a), and the prefill kernels' entry points.
//
// attention_tc (attention_tc.cu) issues every 16×8×16 product from each warp with mma.sync and
// waits for it; ncu found it latency-bound at ~200 TFLOP/s. Here a warpgroup (4 warps) issues
// wgmma.m64nNk16, which reads its operands from shared memory (or A from registers) and runs
// asynchronously, so the tensor cores work on one tile while the warps do the softmax of another
// (FlashAttention-3's intra-warpgroup pipeline):
//
//   iteration j:  issue S_j = Q·K_jᵀ;  issue O += P_{j-1}·V_{j-1};  wait for S_j;  softmax(S_j);
//                 wait for the P·V;  rescale O;  P_j = S_j in 16 bits (registers, the A operand)
//
// Same items, rows, masks and score formula as attention_tc: one block = one item × one KV head,
// ROWS = 128 rows (row r is query q_tok + r / G of head kvh·G + r % G), two warpgroups of 64 rows.
// Q, K and V sit in shared memory as no-swizzle core matrices (tc_cm): Q and K K-major, V read
// MN-major (wgmma's transposed B), so all three are stored alike. K/V tiles of KT keys (64;
// TC_WG_KT) go through ST stages with cp.async, PF = ST - 3 tiles ahead: at iteration j the stages hold tile
// j - 1 (its V still read), j, and the prefetched ones. A variant for hd 64 and 128:
// ENERGY_FIT_NVRTC_OPTS="-DTC_WG=1" (on Hopper, which compiles for sm_90a); it is correct but not
// faster than attention_tc (docs/performance.md).
// TC_WG picks the wgmma prefill kernel: 0 none (attention_tc), 1 this one, 2 attention_ws.cu's
// warp-specialized one, the default where the program is compiled for sm_90a (Device::new does
// for Hopper), at hd 64 and 128.
#ifndef TC_WG
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
#define TC_WG 2
#else
#define TC_WG 0
#endif
#endif
#if TC_WG && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "TC_WG=1 and TC_WG=2 need --gpu-architecture=sm_90a in ENERGY_FIT_NVRTC_OPTS"
#endif
#ifndef TC_WG_KT
#define TC_WG_KT 64
#endif
#ifndef TC_WG_STAGES
#define TC_WG_STAGES 4
#endif

// Warpgroups per block (TC_WG_WGS): 2 share each K/V tile but meet at a barrier every tile, so
// their softmaxes coincide; 1 gives independent 64-row blocks (twice the K/V reads), several per
// SM (at hd 128 with TC_WG_STAGES=3 to fit two). MINB: blocks per SM for the launch bounds.
#ifndef TC_WG_WGS
#define TC_WG_WGS 2
#endif
template <int HD> struct WgShape {
    static constexpr int KT = TC_WG_KT, ST = TC_WG_STAGES, ROWS = 64 * TC_WG_WGS, THREADS = 128 * TC_WG_WGS,
                         SMEM = (ROWS * HD + ST * 2 * KT * HD) * 2, MINB = TC_WG_WGS == 1 ? (HD == 64 ? 3 : 2) : HD == 64 && KT == 64 ? 2 : 1;
};

#if TC_WG
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

// S = Q·Kᵀ of one warpgroup's 64 rows of Q (from row r0) against a K tile, both K-major.
template <class T, int HD, int KT>
__device__ __forceinline__ void wg_qk(float (&s)[KT / 8][4], const T* Qs, int r0, const T* Ks) {
#pragma unroll
    for (int k = 0; k < HD / 16; k++)
        Wg<T, KT>::ss(s, wg_desc(&Qs[tc_cm<HD>(r0, 16 * k)], 128, HD * 16), wg_desc(&Ks[tc_cm<HD>(0, 16 * k)], 128, HD * 16), k > 0);
}
// O += P·V, P in registers. V's descriptor as CUTLASS documents the MN-major no-swizzle layout:
// leading byte offset along the keys (wgmma's K), stride byte offset along hd (its N); the two
// swapped fault on the H100 (docs/performance.md).
template <class T, int HD, int KT>
__device__ __forceinline__ void wg_pv(float (&o)[HD / 8][4], const unsigned (&p)[KT / 16][4], const T* Vs) {
#pragma unroll
    for (int k = 0; k < KT / 16; k++) Wg<T, HD>::rs(o, p[k], wg_desc(&Vs[tc_cm<HD>(16 * k, 0)], HD * 16, 128));
}

// This thread's rows r0 (h = 0) and r0 + 8 (h = 1) of its warp's 16: position (−1 past the item's
// queries), ALiBi slope, and the warp's position range (wmin over valid rows). No tile is skipped:
// wgmma in a branch the compiler cannot prove uniform is serialized (ptxas C7520), and a tile past
// every query of a warpgroup (at most one, at the diagonal) is masked to P = 0 like any other.
struct WgRows {
    int r0, pos[2], wmin, wmax;
    float sl[2];
};
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
    return R;
}

// Softmax of S_j (keys from kb) as attention_tc's: scores in the log2 domain, per-element masks
// only off the unmasked tiles. Returns whether the max moved, and then o's factors in cA, cB,
// which the caller applies once O's pending P·V has landed (wg_rescale_pack).
template <int NT>
__device__ __forceinline__ bool wg_softmax(float (&s)[NT][4], const WgRows& R, int kb, int kend, bool plain, int window, const float* alibi,
                                           float scale, float softcap, int ti, float& mA, float& mB, float& lA, float& lB, float& cA,
                                           float& cB) {
    const bool full = plain && kb + NT * 8 <= kend && kb + NT * 8 - 1 <= R.wmin && (window == 0 || kb > R.wmax - window);
    if (!full) tc_mask_tile(s, kb, ti, R.pos, R.sl, kend, alibi, scale, softcap, window);
    const float sc = full ? scale * 1.4426950408889634f : 1.f;
    const bool moved = tc_softmax_max<NT, true, true>(s, mA, mB, lA, lB, sc, cA, cB);
    tc_softmax_exp<NT, true, TC_EXP2_POLY>(s, mA, mB, lA, lB, sc);
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

template <class T, int HD>
__device__ void attention_wg(const T* q, T* out, const T* kc, const T* vc, const int* items, const int* tok_pos,
                             const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                             int window, const float* alibi) {
    using Sh = WgShape<HD>;
    constexpr int KT = Sh::KT, ST = Sh::ST, PF = ST - 3, NT = KT / 8, ND = HD / 8;
    static_assert(PF >= 0, "TC_WG_STAGES: at least 3");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    T* Qs = (T*)smem_raw;
    T* KV = Qs + Sh::ROWS * HD; // stage b: K at KV + 2·b·KT·HD, V right after
    const TcItem I = tc_item(items, tok_pos, window);
    const int q_tok = I.q_tok, q_cnt = I.q_cnt, kbeg = I.kbeg, kend = I.kend;
    const bool plain = alibi == nullptr && softcap <= 0.f;
    const int kvh = blockIdx.y, G = heads / kv_heads;
    const int tid = threadIdx.x, wg = tid >> 7, w = (tid >> 5) & 3, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
    tc_load_q<T, HD, true>(Qs, Sh::ROWS, HD, q, q_tok, q_cnt, heads, kvh, G);
    const WgRows R = wg_rows(64 * wg + 16 * w + gi, q_tok, q_cnt, tok_pos, alibi, kvh, G);
    const int ntiles = kbeg < kend ? (kend - kbeg + KT - 1) / KT : 0;
    auto stage = [&](int j) { return KV + 2 * (j % ST) * KT * HD; };
    // Tile loads in two halves, so that the block table is read a tile ahead: read just before the
    // cp.async, every warp waited out an L2 round trip per tile, all 8 at once after the barrier
    // (ncu, hd 128: long-scoreboard stalls 2.6 of 7.4 cycles per issued instruction). This
    // thread's 16-byte chunks q of a tile: key row kj, column kcol, 8 threads filling a core matrix.
    constexpr int CH = KT * (HD / 8) / Sh::THREADS;
    int kj[CH], kcol[CH];
    long long off[CH]; // source offsets of the next tile to issue, -1 past kend
#pragma unroll
    for (int c = 0; c < CH; c++) {
        int i = tid + c * Sh::THREADS;
        kj[c] = (i & 7) + (i >> 3) / (HD / 8) * 8;
        kcol[c] = (i >> 3) % (HD / 8) * 8;
    }
    auto offsets = [&](int j) {
#pragma unroll
        for (int c = 0; c < CH; c++) {
            int key = kbeg + j * KT + kj[c];
            off[c] = key < kend ? tc_kv_off<HD>(block_table, I.slot, max_pages, kv_heads, kvh, key, kcol[c]) : -1;
        }
    };
    // Tile j from off into its stage as one commit group (empty past the last tile, so that the
    // groups outstanding at each wait are always PF); zero-filled past kend.
    auto issue = [&](int j) {
        if (j < ntiles) {
            T* Ks = stage(j);
#pragma unroll
            for (int c = 0; c < CH; c++) {
                int d = tc_cm<HD>(kj[c], kcol[c]);
                bool ok = off[c] >= 0;
                cp16(&Ks[d], kc + (ok ? off[c] : 0), ok ? 16 : 0);
                cp16(&Ks[KT * HD + d], vc + (ok ? off[c] : 0), ok ? 16 : 0);
            }
        }
        asm volatile("cp.async.commit_group;\n");
    };
#pragma unroll
    for (int j = 0; j <= PF; j++) {
        offsets(j);
        issue(j);
    }
    offsets(PF + 1);
    float o[ND][4] = {}, s[NT][4] = {};
    unsigned p[KT / 16][4] = {}; // P = 0: the first iteration's P·V adds nothing
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
    auto pv = [&](int j) { wg_pv<T, HD, KT>(o, p, stage(j) + KT * HD); };
    for (int j = 0; j < ntiles; j++) {
        const int kb = kbeg + j * KT;
        asm volatile("cp.async.wait_group %0;\n" ::"n"(PF));
        wg_proxy_fence();
        __syncthreads(); // tile j landed for every thread, and both groups are past iteration j - 1
        issue(j + PF + 1); // into tile j - 2's stage, whose V the last iteration's wait released
        wg_fence();
        wg_qk<T, HD, KT>(s, Qs, 64 * wg, stage(j));
        wg_commit();
        pv(max(j - 1, 0)); // tile j - 1's P·V (j = 0: zeros times tile 0's V, which is finite)
        wg_commit();
        // The next tile's block-table reads go out only now: wgmma.fence (WARPGROUP.ARRIVE) waits
        // for every load in flight, and ncu's stall sampling put 18 % of the stalls on it when
        // they went out just before it.
        offsets(j + PF + 2);
        wg_wait<1>(); // S_j landed; the P·V may still run
        wg_pin(s);
        float cA, cB;
        const bool moved = wg_softmax(s, R, kb, kend, plain, window, alibi, scale, softcap, ti, mA, mB, lA, lB, cA, cB);
        wg_wait<0>(); // O holds P_{j-1}·V_{j-1}; only now can it take the new max's factors
        wg_pin(o);
        wg_rescale_pack<T>(o, p, s, moved, cA, cB);
    }
    if (ntiles > 0) {
        wg_fence();
        pv(ntiles - 1);
        wg_commit();
        wg_wait<0>();
        wg_pin(o);
    }
    wg_store<T>(out, o, R, lA, lB, q_tok, heads, kvh, G, ti);
}
#endif

