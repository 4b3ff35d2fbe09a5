// Hopper prefill attention with a producer warp (sm_90a: Hopper's prefill kernel at hd 64, 80 and
// 128; hd 256 has its own, attention_ws256.cu, on these helpers):
// consumer warpgroups of 64 rows (attention_wg.cu's helpers; 3 at hd 64, 2 otherwise, WsShape),
// fed through mbarriers instead of a block barrier per tile.
//
// With 8 warps that load each K/V tile together and meet at __syncthreads every tile, both
// warpgroups wait for S and run their softmax at the same moment (~5400 cycles per 64-key tile at
// hd 128 against ~1024 of tensor work; docs/performance.md). Here the last warp, the producer, loads
// tiles into ST stages and each stage's "full" mbarrier completes when its bytes land; a consumer
// waits for "full" and marks the stage "empty" once its last wgmma reading it (that tile's P·V)
// has completed; the producer refills a stage when every warpgroup has. Each warpgroup's
// iteration issues S_j and P_{j-1}·V_{j-1} together and runs the softmax of S_j while the P·V
// runs; the warpgroups issue their wgmma in turn through named barriers (ping-pong,
// FlashAttention-3's schedule), so one's softmax runs beside the others' tensor work.
// K/V through TMA: one lane of the producer warp copies each page of a tile with
// cp.async.bulk.tensor, 32 keys × 64 columns a box, into wgmma's 128-byte-swizzled layout, whole
// 128-byte lines from L2. Needs the KV cache's tensor maps (kv_tmap.rs) in attention_kv_maps.
// Measured on an H100 (docs/performance.md): 16-byte cp.async copies read twice the ideal L2
// sectors (the L2 78 % busy) and left the kernel 4-6 % below attention_tc at hd 128, level at
// hd 64; through TMA, at n = 4096, 41 % below attention_tc at hd 128, 22 % at hd 64. 128-key tiles,
// 4 producer warps, 6 stages and turning the ping-pong off changed nothing measurable.
// Head dim 80 (opt-2.7b, granite-3b) runs as hd 128 with zero columns: the copies take whole
// 64-column boxes, and wgmma's 128-byte-swizzled V operand holds whole 64-column blocks (an N of 80
// would end inside one, outside the layouts CUTLASS's GMMA atoms describe). The
// tensor maps describe rows of 80 values (160 bytes, a multiple of 16 as TMA asks), so the box at
// column 64 reads columns 64..79 and the copy engine fills 80..127 with zeros, out of the map's
// bounds: K and V arrive padded without extra traffic, and each box still completes its full bytes
// on the mbarrier. Q's rows are loaded as 128 columns, zero past 80. S = Q·Kᵀ runs only the 5
// k-steps of the real columns; O += P·V runs over 128, whose last 48 are P·0 = 0 and are not
// stored. Tensor work: 80 + 128 columns against 2 × 80, 1.3x.
// Consumer warpgroups (CWG): 3 at hd 64, 2 where the head dim is computed as 128. At hd 64 a
// warpgroup's 64-key tile is as much MUFU work (one ex2 per score, 16 a clock per SM) as tensor
// work (256 FLOPs per score at 4096 a clock), so a third warpgroup's wgmma keep the tensor cores
// busy while the other two run their softmax (FlashAttention-3's 192-row blocks at hd 64); at 128
// columns O's 64 accumulators a thread leave no registers for a third (416 threads × 164 > 64 Ki).
template <int HD> struct WsShape {
    static constexpr int PD = (HD + 63) / 64 * 64; // the head dim computed with: whole 64-column boxes
    static constexpr int CWG = PD == 64 ? 3 : 2;
    static constexpr int KT = 64, ST = 4, ROWS = 64 * CWG, THREADS = 128 * CWG + 32,
                         BAR = (ROWS * PD + ST * 2 * KT * PD) * 2, // byte offset of the mbarriers: full[ST], then empty[ST]
        SMEM = BAR + 2 * ST * 8 + 1024; // room to start at a 1024-byte boundary (the swizzle's period)
    static_assert(KT % 32 == 0, "a tile is whole pages");
    static_assert(HD % 16 == 0, "S = Q·Kᵀ's k-steps of 16 columns");
};

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
__device__ __forceinline__ void mbar_init(unsigned a, int count) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory"); }
__device__ __forceinline__ void mbar_arrive(unsigned a) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory"); }
__device__ __forceinline__ void mbar_wait(unsigned a, int parity) {
    unsigned done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(a), "r"(parity) : "memory");
    } while (!done);
}
// The KV cache's tensor maps (written by kv_tmap.rs before a launch): K and V each a 2-D tensor of
// rows of HD 16-bit values from kbase / vbase; a layer's rows start at (kc − kbase) / HD. Columns
// of a box past HD (hd 80's box at column 64) are out of the map's bounds and arrive as zeros.
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
// HD: Q's and the stage's columns; KD: S's k-steps (fewer where the last columns are padding).
template <class T, int HD, int KT, int KD = HD / 16>
__device__ __forceinline__ void ws_qk_sw(float (&s)[KT / 8][4], const T* Qs, int r0, unsigned ks) {
#pragma unroll
    for (int k = 0; k < KD; k++)
        Wg<T, KT>::ss(s, wg_desc(&Qs[tc_cm<HD>(r0, 16 * k)], 128, HD * 16), sw128_desc(ks + ((k / 4) * KT * 64 + (k % 4) * 16) * 2, 16, 1024), k > 0);
}
template <class T, int HD, int KT>
__device__ __forceinline__ void ws_pv_sw(float (&o)[HD / 8][4], const unsigned (&p)[KT / 16][4], unsigned vs) {
#pragma unroll
    for (int k = 0; k < KT / 16; k++) Wg<T, HD>::rs(o, p[k], sw128_desc(vs + k * 16 * 64 * 2, KT * 64 * 2, 1024));
}

__device__ __forceinline__ void named_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void named_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }

// The producer warp's walk over an item's tiles (attention_ws and attention_ws256): lane 0 issues
// tile j into stage j % ST through issue(j, stage, pr), pr[p] the first cache row of page p for
// this KV head (−1 past kend: rows outside the map, zeros), while the warp reads the next tile's
// page numbers (lane p: page p). Keys past kend inside the last page come in as the cache holds
// them, finite (the cache is zeroed at allocation) and masked to P = 0.
template <int KT, int ST, class Issue>
__device__ __forceinline__ void ws_produce_pages(int ntiles, const TcItem& I, const int* block_table, int max_pages, int kv_heads, int kvh, int lane,
                                                 Issue issue) {
    constexpr int NP = KT / 32;
    if (lane == 0) {
        tmap_acquire(attention_kv_maps.k);
        tmap_acquire(attention_kv_maps.v);
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
        if (lane == 0) issue(j, b, pr);
    }
}

// The TMA producer: lane 0 waits for the stage, announces its bytes and copies the tile's pages
// (PD / 64 boxes each of K and V; the cache's rows are HD values).
template <class T, int HD>
__device__ __forceinline__ void ws_produce_tma(unsigned kv0, unsigned full0, unsigned empty0, int ntiles, const T* kc, const T* vc, const TcItem& I,
                                               const int* block_table, int max_pages, int kv_heads, int kvh, int lane) {
    using Sh = WsShape<HD>;
    constexpr int KT = Sh::KT, ST = Sh::ST, PD = Sh::PD;
    const KvMaps& M = attention_kv_maps;
    const int2 r0 = kv_first_rows<T, HD>(M, kc, vc);
    ws_produce_pages<KT, ST>(ntiles, I, block_table, max_pages, kv_heads, kvh, lane, [&](int j, int b, const int(&pr)[KT / 32]) {
        if (j >= ST) mbar_wait(empty0 + 8 * b, (j / ST - 1) & 1);
        tma_kv_tile<PD, KT>(kv0 + 2 * b * KT * PD * 2, full0 + 8 * b, M, r0, pr);
    });
}

// The block's start in both warp-specialized kernels (attention_ws, attention_ws256): shared
// memory from its first 1024-byte boundary (the swizzle's period), the item, this thread's place,
// and the item's Q rows in shared memory (PD columns, zero past HD), fenced for the wgmma that read
// them. The warpgroup index goes through a shuffle, so that ptxas knows it is warp-uniform and
// does not serialize the wgmma below the producer's branch (C7520).
struct WsBlock {
    unsigned char* sm;
    TcItem I;
    int kvh, G, tid, wg, w, lane, gi, ti;
};
template <class T, int HD, int ROWS, int PD = HD>
__device__ __forceinline__ WsBlock ws_block(const T* q, const AttnItem* items, const int* tok_pos, int heads, int kv_heads, int window) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    WsBlock B;
    B.sm = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
    B.I = tc_item(items, tok_pos, window);
    B.kvh = blockIdx.y, B.G = heads / kv_heads;
    B.tid = threadIdx.x, B.wg = __shfl_sync(0xffffffff, B.tid >> 7, 0), B.w = (B.tid >> 5) & 3, B.lane = B.tid & 31, B.gi = B.lane >> 2, B.ti = B.lane & 3;
    tc_load_q<T, HD, true, PD>((T*)B.sm, ROWS, HD, q, B.I.q_tok, B.I.q_cnt, heads, B.kvh, B.G);
    wg_proxy_fence(); // Q's stores before the wgmma that read them
    return B;
}

template <class T, int HD>
__device__ void attention_ws(const T* q, T* out, const T* kc, const T* vc, const AttnItem* items, const int* tok_pos,
                             const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                             int window, const float* alibi) {
    using Sh = WsShape<HD>;
    constexpr int KT = Sh::KT, ST = Sh::ST, PD = Sh::PD, NT = KT / 8, ND = PD / 8;
    const WsBlock B = ws_block<T, HD, Sh::ROWS, PD>(q, items, tok_pos, heads, kv_heads, window);
    const TcItem& I = B.I;
    const int q_tok = I.q_tok, q_cnt = I.q_cnt, kend = I.kend, kvh = B.kvh, G = B.G, tid = B.tid, wg = B.wg, w = B.w, lane = B.lane, gi = B.gi, ti = B.ti;
    T* Qs = (T*)B.sm;
    T* KV = Qs + Sh::ROWS * PD; // stage b: K at KV + 2·b·KT·PD, V right after
    const unsigned full0 = smem_addr(B.sm + Sh::BAR), empty0 = full0 + 8 * ST;
    constexpr int CWG = Sh::CWG;
    if (tid == 0) {
        for (int b = 0; b < ST; b++) {
            mbar_init(full0 + 8 * b, 1); // lane 0's arrival and the bytes
            mbar_init(empty0 + 8 * b, 128 * CWG); // every consumer thread
        }
    }
    __syncthreads(); // the only block-wide barrier
    const int ntiles = I.kbeg < kend ? (kend - I.kbeg + KT - 1) / KT : 0;
    if (I.kbeg % 32) __trap(); // the producer's whole pages: prefill items always start at a page
    if (wg == CWG) { // the producer warp
        ws_produce_tma<T, HD>(smem_addr(KV), full0, empty0, ntiles, kc, vc, I, block_table, max_pages, kv_heads, kvh, lane);
        return;
    }
    auto stage = [&](int j) { return KV + 2 * (j % ST) * KT * PD; };
    auto qk = [&](float(&s)[NT][4], int j) { ws_qk_sw<T, PD, KT, HD / 16>(s, Qs, 64 * wg, smem_addr(stage(j))); };
    auto pv = [&](float(&o)[ND][4], const unsigned(&p)[KT / 16][4], int j) { ws_pv_sw<T, PD, KT>(o, p, smem_addr(stage(j) + KT * PD)); };
    const WgRows R = wg_rows(64 * wg + 16 * w + gi, q_tok, q_cnt, tok_pos, alibi, kvh, G);
    float o[ND][4] = {}, s[NT][4] = {};
    unsigned p[KT / 16][4] = {}; // P = 0: the first iteration's P·V adds nothing
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
    // Ping-pong in turn: warpgroup g issues after bar.sync on barrier 1 + g, then lets the next go
    // (bar.arrive on 1 + (g + 1) % CWG); the last warpgroup lets warpgroup 0 go first, and skips
    // its last arrival so that every barrier ends complete (each has one syncing and one arriving
    // warpgroup, 256 threads).
    const int next = CWG == 2 ? 2 - wg : 1 + (wg + 1) % CWG;
    if (wg == CWG - 1 && ntiles > 0) named_arrive(1, 256);
    for (int j = 0; j < ntiles; j++) {
        const int kb = I.kbeg + j * KT;
        mbar_wait(full0 + 8 * (j % ST), (j / ST) & 1);
        named_sync(1 + wg, 256); // TMA writes in the async proxy, where wgmma reads: no proxy fence
        wg_fence();
        qk(s, j);
        wg_commit();
        pv(o, p, max(j - 1, 0)); // tile j − 1's P·V (j = 0: P = 0)
        wg_commit();
        if (wg + 1 < CWG || j + 1 < ntiles) named_arrive(next, 256);
        wg_wait<1>(); // S_j landed; the P·V may still run
        wg_pin(s);
        float cA, cB;
        const bool moved = wg_softmax(s, R, kb, kend, window, alibi, scale, softcap, lane, mA, mB, lA, lB, cA, cB);
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
    // O's first HD columns into rows of HD values (past HD, at hd 80, they are P·0)
    wg_store<T>(out, reinterpret_cast<const float(&)[HD / 8][4]>(o), R, lA, lB, q_tok, heads, kvh, G, ti);
}
#endif
