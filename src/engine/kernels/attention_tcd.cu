// Tensor-core decode attention (appended after attention_tc.cu, whose ldmatrix / mma / cp.async
// helpers it uses). Same items, masks, score formula and split partials as attention() in
// attention.cu; made for decode items (q_cnt · G ≤ 16 rows).
//
// Decode reads every K/V byte of the context once per step and does little arithmetic on it, so
// the kernel is built to keep HBM busy: one block = one item × one KV head, its (query, head of the
// group) rows padded to one 16-row mma tile, so each K/V byte is read once for the whole query group;
// key tiles double-buffered (through TMA on sm_90a, below; else cp.async by all threads); the warps
// split each tile's keys (16 each) and keep their own online-softmax state, merged through shared
// memory at the end. A ring of 3 or 4 stages measured level with 2 (docs/performance.md).
//
// Tiles of 64 keys for 4 warps, except at hd 256: there two stages of padded 64-key K and V with Q
// take 143,616 bytes of shared memory, so one block fits per SM (228 KB) and nothing overlaps its
// waits and its merge; 32-key tiles for 2 warps take 76,032 bytes (75,024 under TMA), so 3 blocks
// fit per SM and one's loads can overlap the others' work. The host launches TcdShape::THREADS
// threads (attention_tcd_threads_*).
//
// TMA (sm_90a, the head dims of whole 64-column boxes: 64, 128 and 256; hd 80's prefill reads
// padded boxes through the maps, this kernel cp.async: padded TMA stages measured 5-19 % slower,
// docs/performance.md): thread 0 copies each tile's pages
// with cp.async.bulk.tensor (attention_ws.cu's boxes of 32 keys × 64 columns, 128-byte swizzled,
// HD / 64 boxes per page of K or V, through the same attention_kv_maps) and the block waits on the
// stage's mbarrier. The 16-byte cp.async copies of every thread loaded L2 as much as HBM
// (ncu at batch 256, context 4096: L2 86 %, DRAM 84 % of peak); with TMA DRAM is at 89 %, the
// kernel 4-5 % faster, and a decode-bound grid point draws up to 5 % less power (docs/performance.md,
// hd 64 and 128). hd 256 (Gemma-2) read through cp.async at 75-80 % of the copy bandwidth; it takes
// the same path with its 32-key tile as one page, 4 boxes each of K and V, so its shared memory
// shrinks (unpadded rows) and 3 blocks still fit per SM.
// Items start at a page (kbeg % 32 == 0: tc_item and the host's split parts), so whole pages are
// the tile's keys; keys past kend in the last page arrive as the cache holds them, finite, and are
// masked to P = 0.

template <int HD> struct TcdShape {
    static constexpr bool TMA = TcEntry<HD>::TMA && HD % 64 == 0; // 64, 128, 256 on sm_90a; hd 80: cp.async (prefill's maps are there, unused)
    static constexpr int WARPS = HD == 256 ? 2 : 4, THREADS = 32 * WARPS, KT = 16 * WARPS, S = HD + 8, ROWS = 16, STAGES = 2;
    // STAGES buffers of K then V (cp.async: [KT][S] each; TMA: HD / 64 swizzled blocks of [KT][64]),
    // Q [16][S], then (TMA) one mbarrier per stage. The end merge re-uses the K/V buffers for
    // WARPS × 16 rows × HD floats and Q's space for m, l.
    static constexpr int KVB = 2 * KT * (TMA ? HD : S) * 2; // bytes of one stage
    static constexpr int BAR = STAGES * KVB + ROWS * S * 2;
    static constexpr int SMEM = BAR + (TMA ? (STAGES * 8 + 15) / 16 * 16 + 1024 : 0); // TMA: room to start at a 1024-byte boundary (the swizzle's period)
    static_assert(WARPS * ROWS * HD * 4 <= STAGES * KVB && WARPS * ROWS * 2 * 4 <= ROWS * S * 2, "the merge's buffers");
    static_assert(!TMA || (KT % 32 == 0 && HD % 64 == 0), "TMA copies whole 32-key pages in 64-column boxes");
    static_assert(HD != 256 || 3 * (SMEM + 1024) <= 228 * 1024, "hd 256: 3 blocks per SM (1 KB reserved each)");
};

// Element offset of (key row r, column c) in a TMA stage's K or V half: HD / 64 blocks of [KT][64],
// each 16-byte chunk of a 128-byte row at chunk index ^ (r % 8) (the copy's 128-byte swizzle).
template <int KT> __device__ __forceinline__ int tcd_sw(int r, int c) { return ((c >> 6) * KT + r) * 64 + ((((c >> 3) & 7) ^ (r & 7)) << 3) + (c & 7); }

template <class T, int HD>
__device__ void attention_tcd(const T* q, T* out, const T* kc, const T* vc, const AttnItem* items, const int* tok_pos,
                              const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                              int window, const float* alibi, float* part_o, float* part_ml) {
    using Sh = TcdShape<HD>;
    constexpr int KT = Sh::KT, S = Sh::S, ND = HD / 8, KD = HD / 16;
    constexpr bool QREG = HD <= 128, TMA = Sh::TMA;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char* sm = smem_raw + (TMA ? (1024 - (smem_addr(smem_raw) & 1023)) & 1023 : 0);
    T* KV = (T*)sm; // stage b: K at KV + b·KVB/2 elements, V KVB/4 elements on
    T* Qs = (T*)(sm + Sh::STAGES * Sh::KVB);
    const unsigned bar0 = smem_addr(sm + Sh::BAR);
    const TcItem I = tc_item(items, tok_pos, window);
    const int q_tok = I.q_tok, q_cnt = I.q_cnt, slot = I.slot, kbeg = I.kbeg, kend = I.kend, part = I.part;
    int kvh = blockIdx.y, G = heads / kv_heads;
    int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
    int rA = gi, rB = gi + 8; // this thread's accumulator rows
    bool vA = rA / G < q_cnt, vB = rB / G < q_cnt;
    int posA = vA ? tok_pos[q_tok + rA / G] : -1, posB = vB ? tok_pos[q_tok + rB / G] : -1;
    float slA = alibi && vA ? alibi[kvh * G + rA % G] : 0.f, slB = alibi && vB ? alibi[kvh * G + rB % G] : 0.f;
    float o[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
    unsigned qf[QREG ? KD : 1][4];
    const float L2E = 1.4426950408889634f;
    // Tile kb into stage buf. cp.async: one commit group per tile, empty past the end, so that
    // before computing tile i `wait_group STAGES-1` leaves exactly the STAGES-1 newer tiles in
    // flight. TMA: thread 0 announces the stage's bytes and copies its pages; nothing past the end.
    auto request = [&](int kb, int buf) {
        if constexpr (TMA) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
            if (tid == 0 && kb < kend) {
                const KvMaps& M = attention_kv_maps;
                int pr[KT / 32];
#pragma unroll
                for (int p = 0; p < KT / 32; p++) {
                    const int key = kb + 32 * p;
                    pr[p] = key < kend ? (block_table[slot * max_pages + key / 32] * kv_heads + kvh) * 32 : -1;
                }
                tma_kv_tile<HD, KT>(smem_addr(sm + buf * Sh::KVB), bar0 + 8 * buf, M, kv_first_rows<T, HD>(M, kc, vc), pr);
            }
#endif
        } else if (kb < kend) {
            T* Ks = KV + buf * (Sh::KVB / 2);
            tc_load_kv<T, HD>(Ks, Ks + KT * S, KT, S, kc, vc, block_table, slot, max_pages, kv_heads, kvh, kb, kend);
        } else {
            asm volatile("cp.async.commit_group;\n");
        }
    };
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    if constexpr (TMA) {
        if (tid == 0) {
            tmap_acquire(attention_kv_maps.k);
            tmap_acquire(attention_kv_maps.v);
            for (int b = 0; b < Sh::STAGES; b++) mbar_init(bar0 + 8 * b, 1); // thread 0's arrival and the bytes
        }
        __syncthreads();
    }
#endif
    // The first K/V tiles are requested before Q is read, so their latencies overlap.
#pragma unroll
    for (int i = 0; i < Sh::STAGES - 1; i++) request(kbeg + i * KT, i);
    tc_load_q<T, HD>(Qs, Sh::ROWS, S, q, q_tok, q_cnt, heads, kvh, G);
    __syncthreads();
    if constexpr (QREG) {
#pragma unroll
        for (int k = 0; k < KD; k++) ldm_x4(qf[k], &Qs[((lane & 7) + ((lane >> 3) & 1) * 8) * S + k * 16 + (lane >> 4) * 8]);
    }
    for (int kb = kbeg, buf = 0, i = 0; kb < kend; kb += KT, i++, buf = buf + 1 == Sh::STAGES ? 0 : buf + 1) {
        // The buffer tile i + STAGES - 1 goes to held tile i - 1, released by the loop's last barrier.
        request(kb + (Sh::STAGES - 1) * KT, buf == 0 ? Sh::STAGES - 1 : buf - 1);
        if constexpr (TMA) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
            mbar_wait(bar0 + 8 * buf, (i / Sh::STAGES) & 1); // tile i is stage buf's (i / STAGES)-th fill
#endif
        } else {
            asm volatile("cp.async.wait_group %0;\n" ::"n"(Sh::STAGES - 1));
            __syncthreads();
        }
        const T* Kt = KV + buf * (Sh::KVB / 2);
        const T* Vt = Kt + Sh::KVB / 4;
        // (key row r, column c) of this tile's K / V in shared memory.
        auto kv_at = [&](int r, int c) { return TMA ? tcd_sw<KT>(r, c) : r * S + c; };
        int k0 = kb + w * 16;
        if (k0 < kend) {
            float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
            for (int k = 0; k < KD; k++) {
                unsigned a[4], b[4];
                if constexpr (QREG) {
#pragma unroll
                    for (int x = 0; x < 4; x++) a[x] = qf[k][x];
                } else {
                    ldm_x4(a, &Qs[((lane & 7) + ((lane >> 3) & 1) * 8) * S + k * 16 + (lane >> 4) * 8]);
                }
                ldm_x4(b, &Kt[kv_at(w * 16 + (lane & 7) + (lane >> 4) * 8, k * 16 + ((lane >> 3) & 1) * 8)]); // this warp's 16 keys
                Mma<T>::run(s[0], a, b[0], b[1]);
                Mma<T>::run(s[1], a, b[2], b[3]);
            }
#pragma unroll
            for (int n = 0; n < 2; n++) {
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    int key = k0 + n * 8 + 2 * ti + (x & 1);
                    s[n][x] = x < 2 ? tc_score(s[n][x], key, posA, kend, alibi, slA, scale, softcap, window)
                                    : tc_score(s[n][x], key, posB, kend, alibi, slB, scale, softcap, window);
                }
            }
            tc_softmax_step(s, o, mA, mB, lA, lB);
            unsigned a[4];
            tc_p_frag<T>(a, s, 0);
#pragma unroll
            for (int n = 0; n < ND; n += 2) {
                unsigned b[4];
                ldm_x4_t(b, &Vt[kv_at(w * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, n * 8 + (lane >> 4) * 8)]);
                Mma<T>::run(o[n], a, b[0], b[1]);
                Mma<T>::run(o[n + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();
    }
    lA = tc_quad_sum(lA);
    lB = tc_quad_sum(lB);
    // Merge the warps: Os[w][row][HD] in the K/V space, (m, l)[w][row] in Q's space.
    float* Os = (float*)KV;
    float* ML = (float*)Qs;
    __syncthreads();
#pragma unroll
    for (int n = 0; n < ND; n++) {
        int c = n * 8 + 2 * ti;
        Os[(w * 16 + rA) * HD + c] = o[n][0];
        Os[(w * 16 + rA) * HD + c + 1] = o[n][1];
        Os[(w * 16 + rB) * HD + c] = o[n][2];
        Os[(w * 16 + rB) * HD + c + 1] = o[n][3];
    }
    if (ti == 0) {
        ML[(w * 16 + rA) * 2] = mA;
        ML[(w * 16 + rA) * 2 + 1] = lA;
        ML[(w * 16 + rB) * 2] = mB;
        ML[(w * 16 + rB) * 2 + 1] = lB;
    }
    __syncthreads();
    int rows = min(16, q_cnt * G);
    for (int i = tid; i < rows * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD;
        float M = -INFINITY;
#pragma unroll
        for (int x = 0; x < Sh::WARPS; x++) M = fmaxf(M, ML[(x * 16 + r) * 2]);
        float L = 0.f, O = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int x = 0; x < Sh::WARPS; x++) {
                float e = tc_exp2((ML[(x * 16 + r) * 2] - M) * L2E);
                L += e * ML[(x * 16 + r) * 2 + 1];
                O += e * Os[(x * 16 + r) * HD + d];
            }
        }
        int head = kvh * G + r % G;
        if (part < 0) {
            out[((long long)(q_tok + r / G) * heads + head) * HD + d] = fromf<T>(L > 0.f ? O / L : 0.f);
        } else {
            long long pi = (long long)part * heads + head;
            part_o[pi * HD + d] = O;
            if (d == 0) {
                part_ml[pi * 2] = M;
                part_ml[pi * 2 + 1] = L;
            }
        }
    }
}

// attention_tcd_threads_S_HD and attention_tcd_smem_S_HD: the block size and dynamic shared memory
// the host launches it with (Device::tcd_threads, Device::tcd_smem).
#define ATTN_TCD(T, S, HD) \
extern "C" __global__ void __launch_bounds__(TcdShape<HD>::THREADS) attention_tcd_##S##_##HD(const T* q, T* o, const T* kc, const T* vc, const AttnItem* it, const int* tp, const int* bt, int mp, int h, int kvh, float sc, float cap, int win, const float* al, float* po, float* pml) \
{ attention_tcd<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al, po, pml); } \
extern "C" __constant__ int attention_tcd_threads_##S##_##HD = TcdShape<HD>::THREADS; \
extern "C" __constant__ int attention_tcd_smem_##S##_##HD = TcdShape<HD>::SMEM;
#define ATTN_TCD_ALL(T, S) ATTN_TCD(T, S, 16) ATTN_TCD(T, S, 32) ATTN_TCD(T, S, 64) ATTN_TCD(T, S, 80) ATTN_TCD(T, S, 96) ATTN_TCD(T, S, 128) ATTN_TCD(T, S, 256)
ATTN_TCD_ALL(bf16, bf16)
ATTN_TCD_ALL(f16, f16)
