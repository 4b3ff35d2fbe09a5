// Hopper prefill attention with a producer warp (sm_90a, TC_WG=2: Hopper's default at hd 64 and 128):
// attention_wg's two consumer warpgroups, fed through mbarriers instead of a block barrier per tile.
//
// attention_wg's 8 warps load each K/V tile together and meet at __syncthreads every tile, so
// both warpgroups wait for S and run their softmax at the same moment (~5400 cycles per 64-key
// tile at hd 128 against ~1024 of tensor work; docs/performance.md). Here warp 8 (TC_WS_PRODUCERS
// warps) loads tiles with cp.async into ST stages and marks each "full" on an mbarrier when its
// copies land (cp.async.mbarrier.arrive.noinc); a consumer waits for "full" and marks the stage
// "empty" once its last wgmma reading it (that tile's P·V) has completed; the producer refills a
// stage when both warpgroups have. Each warpgroup's iteration is attention_wg's (S_j and
// P_{j-1}·V_{j-1} issued together, softmax of S_j while the P·V runs). TC_WS_PINGPONG
// (FlashAttention-3's schedule): the two warpgroups issue their wgmma in turn through two named
// barriers, so one's softmax runs beside the other's tensor work.
// Measured on an H100 (docs/performance.md), with cp.async: hd 128 4-6 % faster than attention_tc, hd 64
// level; ping-pong, 128-key tiles, 4 producer warps and 6 stages change nothing measurable; ncu:
// the L2 78 % busy with twice the ideal sectors per 16-byte cp.async. So the K/V load itself moved
// to TMA (TC_WS_TMA, below): at n = 4096, 41 % below attention_tc at hd 128, 22 % at hd 64.
#ifndef TC_WS_PINGPONG
#define TC_WS_PINGPONG 1
#endif
// Producer warps (TC_WS_PRODUCERS, 1 or 4): the copies of a tile spread over their lanes.
#ifndef TC_WS_PRODUCERS
#define TC_WS_PRODUCERS 1
#endif
// Registers (TC_WS_REGS, with 4 producer warps only): the launch bounds cap a thread at 168 (384
// threads); setmaxnreg hands the producer warpgroup's share to the consumers, 32 + 2 · 232 per
// 128-thread slice (FlashAttention-3 does the same), which 128-key tiles need. 0: off.
#ifndef TC_WS_REGS
#define TC_WS_REGS 0
#endif
static_assert(TC_WS_REGS == 0 || TC_WS_PRODUCERS == 4, "TC_WS_REGS needs a producer warpgroup (TC_WS_PRODUCERS=4)");
// K/V through TMA (TC_WS_TMA): one lane of the producer warp copies each page of a tile with
// cp.async.bulk.tensor, 32 keys × 64 columns a box, into wgmma's 128-byte-swizzled layout, whole
// 128-byte lines from L2 (16-byte cp.async read twice the ideal L2 sectors, above). Needs the KV
// cache's tensor maps (kv_tmap.rs) in attention_kv_maps. 0: the cp.async producer.
#ifndef TC_WS_TMA
#define TC_WS_TMA 1
#endif
template <int HD> struct WsShape {
    static constexpr int KT = TC_WG_KT, ST = TC_WG_STAGES, ROWS = 128, PT = 32 * TC_WS_PRODUCERS, THREADS = 256 + PT,
                         BAR = (ROWS * HD + ST * 2 * KT * HD) * 2, // byte offset of the mbarriers: full[ST], then empty[ST]
        SMEM = BAR + 2 * ST * 8 + (TC_WS_TMA ? 1024 : 0); // TMA: room to start at a 1024-byte boundary (the swizzle's period)
    static_assert(KT * (HD / 8) % PT == 0 && KT % 32 == 0, "TC_WS_PRODUCERS: the tile's 16-byte chunks must spread evenly");
};

#if TC_WG == 2
__device__ __forceinline__ void mbar_init(unsigned a, int count) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory"); }
__device__ __forceinline__ void mbar_arrive(unsigned a) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory"); }
// One arrival once every cp.async this thread has issued has landed; noinc: the init count
// includes it.
__device__ __forceinline__ void mbar_arrive_cp(unsigned a) { asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory"); }
__device__ __forceinline__ void mbar_wait(unsigned a, int parity) {
    unsigned done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(a), "r"(parity) : "memory");
    } while (!done);
}
// The KV cache's tensor maps (written by kv_tmap.rs before a launch): K and V each a 2-D tensor of
// rows of HD 16-bit values from kbase / vbase; a layer's rows start at (kc − kbase) / HD.
struct __align__(64) KvMaps {
    unsigned long long k[16], v[16];
    long long kbase, vbase;
};
extern "C" __device__ KvMaps attention_kv_maps = {};
__device__ __forceinline__ void mbar_expect_tx(unsigned a, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(a), "r"(bytes) : "memory");
}
// The box (64 columns from c, 32 rows from r) of map m to shared memory at dst, 128-byte swizzled;
// its bytes complete on mbarrier bar. Rows outside the map are zero-filled.
__device__ __forceinline__ void tma_box(unsigned dst, const void* m, int c, int r, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(dst), "l"(m), "r"(c), "r"(r), "r"(bar) : "memory");
}
// One K/V tile of KT keys into the stage at ks (K as HD / 64 swizzled blocks of [KT][64], V right
// after), its bytes announced on mbarrier full: per page p (32 keys) the first cache row pr[p] of
// this KV head, −1 past kend (rows outside the map: zeros). r0: the layer's first K / V row.
template <int HD, int KT>
__device__ __forceinline__ void tma_kv_tile(unsigned ks, unsigned full, const KvMaps& M, int2 r0, const int (&pr)[KT / 32]) {
    mbar_expect_tx(full, 2 * KT * HD * 2);
#pragma unroll
    for (int p = 0; p < KT / 32; p++) {
#pragma unroll
        for (int h = 0; h < HD / 64; h++) {
            const unsigned d = ks + (h * KT + 32 * p) * 64 * 2;
            tma_box(d, M.k, 64 * h, pr[p] >= 0 ? r0.x + pr[p] : -32, full);
            tma_box(d + KT * HD * 2, M.v, 64 * h, pr[p] >= 0 ? r0.y + pr[p] : -32, full);
        }
    }
}
// The first K / V row (x / y) in the maps of the layer whose caches start at kc / vc.
template <class T, int HD>
__device__ __forceinline__ int2 kv_first_rows(const KvMaps& M, const T* kc, const T* vc) {
    return make_int2((int)((kc - (const T*)M.kbase) / HD), (int)((vc - (const T*)M.vbase) / HD)); // < 2^31 rows (kv_tmap.rs)
}
// The maps were written by a copy (generic proxy); the copy engine reads them through the tensormap proxy.
__device__ __forceinline__ void tmap_acquire(const void* m) { asm volatile("fence.proxy.tensormap::generic.acquire.gpu [%0], 128;\n" ::"l"(m) : "memory"); }
// Shared-memory descriptor of a 128-byte-swizzled operand (layout type 1 in bits 62-63): K-major
// (K): sbo = 1024 between 8-row groups, lbo unused; MN-major (V): lbo between 64-column blocks,
// sbo = 1024 between 8-key groups (CUTLASS's canonical GMMA layouts).
__device__ __forceinline__ unsigned long long sw128_desc(unsigned a, int lbo, int sbo) {
    return ((a & 0x3FFFF) >> 4) | ((unsigned long long)(lbo >> 4) << 16) | ((unsigned long long)(sbo >> 4) << 32) | (1ull << 62);
}
// A stage under TMA: K as HD / 64 blocks of [KT keys][64 columns] (each row one swizzled 128-byte
// line), V the same KT · HD elements on. S = Q·Kᵀ: k-step k is 16 columns, 32 bytes into block
// k / 4's lines (the hardware swizzles the address); O += P·V: k-step k is 16 keys, 2048 bytes on.
template <class T, int HD, int KT>
__device__ __forceinline__ void ws_qk_sw(float (&s)[KT / 8][4], const T* Qs, int r0, unsigned ks) {
#pragma unroll
    for (int k = 0; k < HD / 16; k++)
        Wg<T, KT>::ss(s, wg_desc(&Qs[tc_cm<HD>(r0, 16 * k)], 128, HD * 16), sw128_desc(ks + ((k / 4) * KT * 64 + (k % 4) * 16) * 2, 16, 1024), k > 0);
}
template <class T, int HD, int KT>
__device__ __forceinline__ void ws_pv_sw(float (&o)[HD / 8][4], const unsigned (&p)[KT / 16][4], unsigned vs) {
#pragma unroll
    for (int k = 0; k < KT / 16; k++) Wg<T, HD>::rs(o, p[k], sw128_desc(vs + k * 16 * 64 * 2, KT * 64 * 2, 1024));
}

__device__ __forceinline__ void named_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void named_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }

// The producer warps: tile j into stage j % ST once that stage's use j / ST − 1 is released.
// Prefill key ranges start at a page (tc_item), so a tile is KT / 32 whole pages, and a lane's chunk
// c sits at a fixed offset from its page's start: per chunk one predicate and two cp.async with
// immediate offsets (the first form computed each chunk's page and offset, ~13 instructions per
// cp.async, and one producer warp could not keep up). Each 8 lanes fill one core matrix (8 keys ×
// 16 bytes, conflict-free in shared memory); a lane's chunks: rows row_l + R(c), columns col_l +
// C(c), where only the R, C parts vary per chunk (and split tc_cm without a carry). ncu counts
// twice the ideal L2 sectors per cp.async whichever way the lanes map (8 keys × 64 bytes here, or
// whole 128-byte lines per 8 lanes, tried as TC_WS_LINES: the same count, not faster), with the L2
// 78 % busy: what binds this kernel is the K/V traffic of 16-byte copies (docs/performance.md).
template <class T, int HD>
__device__ __forceinline__ void ws_produce(T* KV, unsigned full0, unsigned empty0, int ntiles, const T* kc, const T* vc, const TcItem& I,
                                           const int* block_table, int max_pages, int kv_heads, int kvh, int pl) {
    using Sh = WsShape<HD>;
    constexpr int KT = Sh::KT, ST = Sh::ST, CH = KT * (HD / 8) / Sh::PT, CB = HD / 8, L8 = Sh::PT / 8, NP = KT / 32;
    static_assert(L8 <= CB ? CB % L8 == 0 : L8 % CB == 0 && 4 % (L8 / CB) == 0, "TC_WS_PRODUCERS: lanes must tile the core matrices");
    const int q = pl >> 3, rbl = L8 > CB ? q / CB : 0, cbl = L8 > CB ? q % CB : q, row_l = (pl & 7) + 8 * rbl, col_l = 8 * cbl;
    const int d0 = tc_cm<HD>(row_l, col_l);          // this lane's first element in shared memory
    const long long g0 = (long long)row_l * HD + col_l; // and within its page
    for (int j = 0; j < ntiles; j++) {
        const int b = j % ST, kb = I.kbeg + j * KT;
        if (j >= ST) mbar_wait(empty0 + 8 * b, (j / ST - 1) & 1);
        long long pb[NP]; // the tile's pages' first elements for this KV head, + the lane's offset
#pragma unroll
        for (int p = 0; p < NP; p++)
            pb[p] = kb + 32 * p < I.kend ? ((long long)block_table[I.slot * max_pages + kb / 32 + p] * kv_heads + kvh) * 32 * HD + g0 : 0;
        const unsigned ks = smem_addr(KV + 2 * b * KT * HD + d0);
#pragma unroll
        for (int c = 0; c < CH; c++) {
            const int R = 8 * (L8 > CB ? c * (L8 / CB) : c / (CB / L8)), C = 8 * (L8 > CB ? 0 : c % (CB / L8) * L8);
            const int d = tc_cm<HD>(R, C), g = R % 32 * HD + C;
            // Past the end: nothing is read (source size 0, zero-filled), so the address needs no guard.
            const int n = kb + R + row_l < I.kend ? 16 : 0;
            cp16s(ks + 2 * d, kc + pb[R / 32] + g, n);
            cp16s(ks + 2 * (KT * HD + d), vc + pb[R / 32] + g, n);
        }
        mbar_arrive_cp(full0 + 8 * b);
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// The TMA producer: lane 0 waits for the stage, announces its bytes and copies the tile's pages
// (HD / 64 boxes each of K and V); the warp reads the next tile's page numbers meanwhile (lane p:
// page p). A page past kend gets rows outside the map (zeros); keys past kend inside the last page
// come in as the cache holds them, finite (the cache is zeroed at allocation) and masked to P = 0.
template <class T, int HD>
__device__ __forceinline__ void ws_produce_tma(unsigned kv0, unsigned full0, unsigned empty0, int ntiles, const T* kc, const T* vc, const TcItem& I,
                                               const int* block_table, int max_pages, int kv_heads, int kvh, int lane) {
    using Sh = WsShape<HD>;
    constexpr int KT = Sh::KT, ST = Sh::ST, NP = KT / 32;
    const KvMaps& M = attention_kv_maps;
    const int2 r0 = kv_first_rows<T, HD>(M, kc, vc);
    if (lane == 0) {
        tmap_acquire(M.k);
        tmap_acquire(M.v);
    }
    const int* bt = block_table + I.slot * max_pages;
    auto rows = [&](int j) { // lane p: the first row of tile j's page p for this KV head, −1 past kend
        const int key = I.kbeg + j * KT + 32 * lane;
        return lane < NP && key < I.kend ? (bt[key / 32] * kv_heads + kvh) * 32 : -1;
    };
    int nxt = rows(0);
    for (int j = 0; j < ntiles; j++) {
        const int b = j % ST, cur = nxt;
        nxt = rows(j + 1);
        int pr[NP];
#pragma unroll
        for (int p = 0; p < NP; p++) pr[p] = __shfl_sync(0xffffffff, cur, p);
        if (lane == 0) {
            if (j >= ST) mbar_wait(empty0 + 8 * b, (j / ST - 1) & 1);
            tma_kv_tile<HD, KT>(kv0 + 2 * b * KT * HD * 2, full0 + 8 * b, M, r0, pr);
        }
    }
}

template <class T, int HD>
__device__ void attention_ws(const T* q, T* out, const T* kc, const T* vc, const int* items, const int* tok_pos,
                             const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                             int window, const float* alibi) {
    using Sh = WsShape<HD>;
    constexpr int KT = Sh::KT, ST = Sh::ST, NT = KT / 8, ND = HD / 8;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char* sm = smem_raw + (TC_WS_TMA ? (1024 - (smem_addr(smem_raw) & 1023)) & 1023 : 0);
    T* Qs = (T*)sm;
    T* KV = Qs + Sh::ROWS * HD; // stage b: K at KV + 2·b·KT·HD, V right after
    const unsigned full0 = smem_addr(sm + Sh::BAR), empty0 = full0 + 8 * ST;
    const TcItem I = tc_item(items, tok_pos, window);
    const int q_tok = I.q_tok, q_cnt = I.q_cnt, kend = I.kend;
    const bool plain = alibi == nullptr && softcap <= 0.f;
    const int kvh = blockIdx.y, G = heads / kv_heads;
    // The warpgroup index through a shuffle, so that ptxas knows it is warp-uniform and does not
    // serialize the wgmma below the producer's branch (C7520).
    const int tid = threadIdx.x, wg = __shfl_sync(0xffffffff, tid >> 7, 0), w = (tid >> 5) & 3, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
    tc_load_q<T, HD, true>(Qs, Sh::ROWS, HD, q, q_tok, q_cnt, heads, kvh, G);
    wg_proxy_fence(); // Q's stores before the wgmma that read them
    if (tid == 0) {
        for (int b = 0; b < ST; b++) {
            mbar_init(full0 + 8 * b, TC_WS_TMA ? 1 : Sh::PT); // TMA: lane 0's arrival and the bytes; else every producer lane
            mbar_init(empty0 + 8 * b, 256); // every consumer thread
        }
    }
    __syncthreads(); // the only block-wide barrier
    const int ntiles = I.kbeg < kend ? (kend - I.kbeg + KT - 1) / KT : 0;
    if (I.kbeg % 32) __trap(); // ws_produce's whole pages: prefill items always start at a page
    if (wg == 2) {
        if (TC_WS_REGS) asm volatile("setmaxnreg.dec.sync.aligned.u32 32;\n");
        if (TC_WS_TMA) {
            if (tid < 288) ws_produce_tma<T, HD>(smem_addr(KV), full0, empty0, ntiles, kc, vc, I, block_table, max_pages, kv_heads, kvh, lane);
        } else {
            ws_produce<T, HD>(KV, full0, empty0, ntiles, kc, vc, I, block_table, max_pages, kv_heads, kvh, tid - 256);
        }
        return;
    }
    if (TC_WS_REGS) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(TC_WS_REGS));
    auto stage = [&](int j) { return KV + 2 * (j % ST) * KT * HD; };
    auto qk = [&](float(&s)[NT][4], int j) {
        if constexpr (TC_WS_TMA) ws_qk_sw<T, HD, KT>(s, Qs, 64 * wg, smem_addr(stage(j)));
        else wg_qk<T, HD, KT>(s, Qs, 64 * wg, stage(j));
    };
    auto pv = [&](float(&o)[ND][4], const unsigned(&p)[KT / 16][4], int j) {
        if constexpr (TC_WS_TMA) ws_pv_sw<T, HD, KT>(o, p, smem_addr(stage(j) + KT * HD));
        else wg_pv<T, HD, KT>(o, p, stage(j) + KT * HD);
    };
    const WgRows R = wg_rows(64 * wg + 16 * w + gi, q_tok, q_cnt, tok_pos, alibi, kvh, G);
    float o[ND][4] = {}, s[NT][4] = {};
    unsigned p[KT / 16][4] = {}; // P = 0: the first iteration's P·V adds nothing
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
    // Ping-pong: warpgroup g issues after bar.sync on barrier 1 + g, then lets the other go
    // (bar.arrive on 2 − g); warpgroup 1 lets warpgroup 0 go first, and skips its last arrival
    // so that every barrier ends complete.
    if (TC_WS_PINGPONG && wg == 1 && ntiles > 0) named_arrive(1, 256);
    for (int j = 0; j < ntiles; j++) {
        const int kb = I.kbeg + j * KT;
        mbar_wait(full0 + 8 * (j % ST), (j / ST) & 1);
        if (!TC_WS_TMA) wg_proxy_fence(); // cp.async's writes (generic proxy) before wgmma's reads (async proxy); TMA writes in the async proxy
        if (TC_WS_PINGPONG) named_sync(1 + wg, 256);
        wg_fence();
        qk(s, j);
        wg_commit();
        pv(o, p, max(j - 1, 0)); // tile j − 1's P·V (j = 0: P = 0)
        wg_commit();
        if (TC_WS_PINGPONG && (wg == 0 || j + 1 < ntiles)) named_arrive(2 - wg, 256);
        wg_wait<1>(); // S_j landed; the P·V may still run
        wg_pin(s);
        float cA, cB;
        const bool moved = wg_softmax(s, R, kb, kend, plain, window, alibi, scale, softcap, ti, mA, mB, lA, lB, cA, cB);
        wg_wait<0>(); // P_{j-1}·V_{j-1} landed: tile j − 1's stage is free
        wg_pin(o);
        if (j > 0) mbar_arrive(empty0 + 8 * ((j - 1) % ST));
        wg_rescale_pack<T>(o, p, s, moved, cA, cB);
    }
    if (ntiles > 0) {
        wg_fence();
        pv(o, p, ntiles - 1);
        wg_commit();
        wg_wait<0>();
        wg_pin(o);
    }
    wg_store<T>(out, o, R, lA, lB, q_tok, heads, kvh, G, ti);
}
#endif
