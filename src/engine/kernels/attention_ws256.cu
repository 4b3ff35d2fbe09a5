// Hopper prefill attention at head dim 256 (sm_90a; appended after attention_ws.cu, whose TMA,
// mbarrier and descriptor helpers it uses). Measured on an H100 (docs/performance.md): Gemma-2-2B's
// causal attention at n = 4096 in 17.3 ms, about 206 TFLOP/s, where attention_tc, which served
// hd 256 before it, took 29.7 ms (118 TFLOP/s).
//
// attention_ws's schedule at hd 256: TMA copies whole KV pages into 128-byte-swizzled tiles, two
// consumer warpgroups of 64 rows issue S = Q·Kᵀ and O += P·V on wgmma in turn (ping-pong through
// named barriers 1 and 2) and run one's softmax beside the other's tensor work. Same items, rows,
// masks and score formula as attention_tc (128 rows per block, row r is query q_tok + r / G of head
// kvh·G + r % G), so GQA, causal, window, soft-cap and ALiBi work as there. What hd 256 changes:
//  - shared memory: Q [128][256] in core matrices (64 KiB), and KT = 64-key tiles of K and of V
//    (32 KiB each, HD / 64 = 4 swizzled blocks of [64][64]) in ST = 2 stages each (128 KiB);
//    197,696 bytes with the mbarriers and the 1 KiB alignment (an SM's block takes at most 227 KiB).
//  - K and V have their own full and empty mbarriers per stage: S_j reads K_j, which its
//    warpgroup releases as soon as S_j has landed (mid iteration j), V_j is released once
//    P_j·V_j has landed (mid iteration j + 1). With one barrier for both, a 2-stage ring would
//    free a stage only at the end of the iteration before the one that needs its refill, and
//    every tile would wait a full TMA latency; split, each refill has about one iteration.
//  - registers: O is 64 × 256 fp32 per warpgroup, 128 per thread; S 32, P 16 (packed 16-bit).
//    ptxas sizes a wgmma kernel's registers for whole warpgroups (with 288 threads, attention_ws's
//    shape, it allows 168 = 65,536 / 384 and spills ~900 bytes), so the producer is a warpgroup:
//    384 threads, __launch_bounds__(384, 1), launched with 168 registers a thread; the producer
//    warpgroup gives all but 24 back (setmaxnreg.dec) and the consumers take 240 (setmaxnreg.inc),
//    128 × 24 + 256 × 240 = 64,512 = 384 × 168. setmaxnreg.inc waits until the pool holds what it
//    asks for, so the launch count must be exactly 168 (ptxas -v: "Used 168 registers"); fewer
//    and the consumers would wait forever. One warp of the producer warpgroup issues the copies.
// mbarrier phases (stage b = j % ST, fill f = j / ST): full[b] completes once per fill (count 1:
// the producer lane's arrive.expect_tx, plus the bytes); consumers wait for parity f & 1. empty[b]
// counts 256 arrivals (every consumer thread) and completes once per release; the producer,
// refilling stage b with tile j ≥ ST, waits for the release of tile j − ST, parity (f − 1) & 1.
// A phase cannot complete twice ahead of its waiter: tile j + ST's fill needs tile j's release,
// which needs every consumer past tile j's full wait, and tile j's release needs tile j, which the
// producer issues only after its wait for tile j − ST.

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
#define WG_D128 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}"
#define WG_C128(d) WG_C64(d), WG_C4(d, 16), WG_C4(d, 17), WG_C4(d, 18), WG_C4(d, 19), WG_C4(d, 20), WG_C4(d, 21), WG_C4(d, 22), WG_C4(d, 23), \
    WG_C4(d, 24), WG_C4(d, 25), WG_C4(d, 26), WG_C4(d, 27), WG_C4(d, 28), WG_C4(d, 29), WG_C4(d, 30), WG_C4(d, 31)
// m64n256k16: P·V over all 256 columns of O in one instruction per 16 keys.
WG_DEF(bf16, "bf16", 256, WG_D128, WG_C128, "%128", "%129", "%130", "%131", "%132", "%133")
WG_DEF(f16, "f16", 256, WG_D128, WG_C128, "%128", "%129", "%130", "%131", "%132", "%133")
#endif

// The shape at hd 256 (the fields attention_prefill.cu's TcEntry reads, and the layout above).
template <> struct WsShape<256> {
    static constexpr int HD = 256, KT = 64, ST = 2, ROWS = 128, THREADS = 256 + 128;
    static constexpr int REGS = 65536 / THREADS / 8 * 8, PRODUCER_REGS = 24, CONSUMER_REGS = 240; // launch, setmaxnreg.dec, .inc
    static constexpr int TILE = KT * HD * 2; // bytes of one K or V tile
    static constexpr int KOFF = ROWS * HD * 2, VOFF = KOFF + ST * TILE; // byte offsets of the K and V stages
    static constexpr int BAR = VOFF + ST * TILE; // fullK[ST], fullV[ST], emptyK[ST], emptyV[ST]
    static constexpr int SMEM = BAR + 4 * ST * 8 + 1024; // room to start at a 1024-byte boundary (the swizzle's period)
    static_assert(KT % 32 == 0 && KOFF % 1024 == 0 && TILE % 1024 == 0, "whole pages, stages at the swizzle's period");
    static_assert(SMEM == 197696 && SMEM <= 227 * 1024, "attn_shapes::ws_smem(256) and an SM's shared memory");
    static_assert(REGS == 168 && 128 * PRODUCER_REGS + 256 * CONSUMER_REGS <= THREADS * REGS,
                  "setmaxnreg.inc must find the consumers' registers in what the producer gave back");
};

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
// This warpgroup's registers per thread from here on (setmaxnreg; every thread of the warpgroup).
template <int N> __device__ __forceinline__ void ws_regs_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N) : "memory"); }
template <int N> __device__ __forceinline__ void ws_regs_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N) : "memory"); }

// One K or V tile (KT keys × 256 columns) of map m into the stage at dst, its bytes announced on
// mbarrier full: per page p the first cache row pr[p] of this KV head, −1 past kend (rows outside
// the map: zeros); r0 the layer's first row in the map.
template <int HD, int KT>
__device__ __forceinline__ void tma_half_tile(unsigned dst, unsigned full, const void* m, int r0, const int (&pr)[KT / 32]) {
    mbar_expect_tx(full, KT * HD * 2);
#pragma unroll
    for (int p = 0; p < KT / 32; p++) {
#pragma unroll
        for (int h = 0; h < HD / 64; h++) tma_box(dst + (h * KT + 32 * p) * 64 * 2, m, 64 * h, pr[p] >= 0 ? r0 + pr[p] : -32, full);
    }
}

// The TMA producer (warp 8) as ws_produce_tma, with K and V of a tile behind their own barriers: lane 0
// waits for K's stage, copies K, waits for V's stage, copies V. Tile j's V stage is released in
// iteration j − 1 of the consumers, K's of tile j + 1 in the same iteration, so the order costs
// no wait.
template <class T>
__device__ __forceinline__ void ws256_produce(unsigned k0, unsigned v0, unsigned bar0, int ntiles, const T* kc, const T* vc, const TcItem& I,
                                              const int* block_table, int max_pages, int kv_heads, int kvh, int lane) {
    using Sh = WsShape<256>;
    constexpr int HD = Sh::HD, KT = Sh::KT, ST = Sh::ST;
    const unsigned fullK = bar0, fullV = bar0 + 8 * ST, emptyK = bar0 + 16 * ST, emptyV = bar0 + 24 * ST;
    const KvMaps& M = attention_kv_maps;
    const int2 r0 = kv_first_rows<T, HD>(M, kc, vc);
    ws_produce_pages<KT, ST>(ntiles, I, block_table, max_pages, kv_heads, kvh, lane, [&](int j, int b, const int(&pr)[KT / 32]) {
        if (j >= ST) mbar_wait(emptyK + 8 * b, (j / ST - 1) & 1);
        tma_half_tile<HD, KT>(k0 + b * Sh::TILE, fullK + 8 * b, M.k, r0.x, pr);
        if (j >= ST) mbar_wait(emptyV + 8 * b, (j / ST - 1) & 1);
        tma_half_tile<HD, KT>(v0 + b * Sh::TILE, fullV + 8 * b, M.v, r0.y, pr);
    });
}

template <class T>
__device__ void attention_ws256(const T* q, T* out, const T* kc, const T* vc, const AttnItem* items, const int* tok_pos,
                                const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                                int window, const float* alibi) {
    using Sh = WsShape<256>;
    constexpr int HD = Sh::HD, KT = Sh::KT, ST = Sh::ST, NT = KT / 8, ND = HD / 8;
    const WsBlock B = ws_block<T, HD, Sh::ROWS>(q, items, tok_pos, heads, kv_heads, window);
    const TcItem& I = B.I;
    const int q_tok = I.q_tok, q_cnt = I.q_cnt, kend = I.kend, kvh = B.kvh, G = B.G, tid = B.tid, wg = B.wg, w = B.w, lane = B.lane, gi = B.gi, ti = B.ti;
    T* Qs = (T*)B.sm;
    const unsigned k0 = smem_addr(B.sm + Sh::KOFF), v0 = smem_addr(B.sm + Sh::VOFF), bar0 = smem_addr(B.sm + Sh::BAR);
    const unsigned fullK = bar0, fullV = bar0 + 8 * ST, emptyK = bar0 + 16 * ST, emptyV = bar0 + 24 * ST;
    if (tid == 0) {
        for (int b = 0; b < ST; b++) {
            mbar_init(fullK + 8 * b, 1); // lane 0's arrival and the bytes
            mbar_init(fullV + 8 * b, 1);
            mbar_init(emptyK + 8 * b, 256); // every consumer thread
            mbar_init(emptyV + 8 * b, 256);
        }
    }
    __syncthreads(); // the only block-wide barrier
    const int ntiles = I.kbeg < kend ? (kend - I.kbeg + KT - 1) / KT : 0;
    if (I.kbeg % 32) __trap(); // the producer's whole pages: prefill items always start at a page
    if (wg == 2) {
        ws_regs_dec<Sh::PRODUCER_REGS>();
        if (w == 0) ws256_produce<T>(k0, v0, bar0, ntiles, kc, vc, I, block_table, max_pages, kv_heads, kvh, lane);
        return;
    }
    ws_regs_inc<Sh::CONSUMER_REGS>();
    auto qk = [&](float(&s)[NT][4], int j) { ws_qk_sw<T, HD, KT>(s, Qs, 64 * wg, k0 + (j % ST) * Sh::TILE); };
    auto pv = [&](float(&o)[ND][4], const unsigned(&p)[KT / 16][4], int j) { ws_pv_sw<T, HD, KT>(o, p, v0 + (j % ST) * Sh::TILE); };
    auto wait_v = [&](int j) { mbar_wait(fullV + 8 * (j % ST), (j / ST) & 1); };
    const WgRows R = wg_rows(64 * wg + 16 * w + gi, q_tok, q_cnt, tok_pos, alibi, kvh, G);
    float o[ND][4] = {}, s[NT][4] = {};
    unsigned p[KT / 16][4] = {}; // P = 0: the first iteration's P·V adds nothing
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
    // Ping-pong as attention_ws: warpgroup g issues after bar.sync on barrier 1 + g, then lets the
    // other go (bar.arrive on 2 − g); warpgroup 1 lets warpgroup 0 go first and skips its last
    // arrival, so that every barrier ends complete.
    if (wg == 1 && ntiles > 0) named_arrive(1, 256);
    for (int j = 0; j < ntiles; j++) {
        const int kb = I.kbeg + j * KT, jv = max(j - 1, 0);
        mbar_wait(fullK + 8 * (j % ST), (j / ST) & 1);
        wait_v(jv); // tile j − 1's V (j = 0: V_0, read with P = 0); waited again at j = 1, same phase
        named_sync(1 + wg, 256); // TMA writes in the async proxy, where wgmma reads: no proxy fence
        wg_fence();
        qk(s, j);
        wg_commit();
        pv(o, p, jv);
        wg_commit();
        if (wg == 0 || j + 1 < ntiles) named_arrive(2 - wg, 256);
        wg_wait<1>(); // S_j landed: K_j's stage is free; the P·V may still run
        wg_pin(s);
        mbar_arrive(emptyK + 8 * (j % ST));
        float cA, cB;
        const bool moved = wg_softmax(s, R, kb, kend, window, alibi, scale, softcap, lane, mA, mB, lA, lB, cA, cB);
        wg_wait<0>(); // P_{j-1}·V_{j-1} landed: tile j − 1's V stage is free
        wg_pin(o);
        if (j > 0) mbar_arrive(emptyV + 8 * ((j - 1) % ST));
        wg_rescale_pack<T>(o, p, s, moved, cA, cB);
    }
    if (ntiles > 0) {
        wait_v(ntiles - 1);
        wg_fence();
        pv(o, p, ntiles - 1);
        wg_commit();
        wg_wait<0>();
        wg_pin(o);
    }
    wg_store<T>(out, o, R, lA, lB, q_tok, heads, kvh, G, ti);
}
#endif
