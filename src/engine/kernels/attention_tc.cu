// Tensor-core prefill attention over the paged KV cache (appended after attention.cu by the loader).
//
// Same items, masks and score formula as attention() in attention.cu (read its header), prefill
// only (part must be -1; decode items go to attention_tcd.cu, which shares the helpers below).
// One block = one item × one KV head, 4 warps, ROWS rows (128 at
// hd ≤ 64 and 128, else 64); row r is query token q_tok + r / G of head kvh·G + r % G (G = group
// size), so every K/V tile is loaded once for the whole query group. Items hold at most ROWS / G
// queries. Each warp owns MT tiles of 16 rows: S = Q·Kᵀ and O += P·V with mma.sync m16n8k16
// (16-bit inputs, fp32 accumulators), fp32 online softmax in registers, P re-used from the S
// accumulators as the A operand (FlashAttention-2 layout trick). KT keys (whole 32-token pages) are
// double-buffered in shared memory with cp.async; fragments come from ldmatrix (.trans for V).
// Every head dim that is a multiple of 16 works as is (80 = 5 k-steps, no padding).
// Tiles inside every row's causal range and window, without soft-cap, skip the per-element masks
// (tc_score): scale · log2 e goes into the softmax's exp2, and ALiBi's bias, computed per key column
// without conversion instructions (tc_alibi_tiles), is one add per element.

__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldm_x4(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldm_x4_t(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

template <class T> struct Mma;
template <> struct Mma<bf16> {
    static __device__ __forceinline__ void run(float* d, const unsigned* a, unsigned b0, unsigned b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ unsigned pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *(unsigned*)&v;
    }
};
template <> struct Mma<f16> {
    static __device__ __forceinline__ void run(float* d, const unsigned* a, unsigned b0, unsigned b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ unsigned pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *(unsigned*)&v;
    }
};

// 16 bytes global → shared; src_bytes = 0 zero-fills (keys past the end: their page may not exist,
// and V garbage would turn 0 · NaN into NaN in P·V).
// cp16s: to a shared-memory address.
__device__ __forceinline__ void cp16s(unsigned dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp16(void* dst, const void* src, int src_bytes) { cp16s(smem_addr(dst), src, src_bytes); }

// One work item (AttnItem, attention.cu) of this block, its key range cut at the last query's position and, under a sliding window, started at
// the page holding the first query's window start.
struct TcItem {
    int q_tok, q_cnt, slot, kbeg, kend, part;
};
__device__ __forceinline__ TcItem tc_item(const AttnItem* items, const int* tok_pos, int window) {
    const AttnItem it = items[blockIdx.x];
    TcItem I = {it.q_tok, it.q_cnt, it.slot, it.key_begin, it.key_end, it.part};
    int first_pos = tok_pos[I.q_tok], last_pos = tok_pos[I.q_tok + I.q_cnt - 1];
    I.kend = min(I.kend, last_pos + 1);
    if (window > 0) {
        int lo = first_pos - window + 1;
        if (lo > I.kbeg) I.kbeg = lo & ~31;
    }
    return I;
}

// Element offset of (row r, column c) of an operand of HD columns stored as 8 × 8 "core matrices"
// of 128 contiguous bytes, K-major (wgmma's no-swizzle layout, attention_wg.cu): the next 8 columns
// 128 bytes on, the next 8 rows HD / 8 · 128 bytes on.
template <int HD> __device__ __forceinline__ int tc_cm(int r, int c) { return ((r >> 3) * (HD / 8) + (c >> 3)) * 64 + (r & 7) * 8 + (c & 7); }

// Q rows of one item into shared memory (rows of S elements, zero past the item's queries); row r
// is query q_tok + r / G of head kvh·G + r % G.
// CM: in core matrices (tc_cm, attention_wg.cu) of CMD columns instead, zero past HD (attention_ws
// at hd 80 computes with 128).
template <class T, int HD, bool CM = false, int CMD = HD>
__device__ __forceinline__ void tc_load_q(T* Qs, int rows, int S, const T* q, int q_tok, int q_cnt, int heads, int kvh, int G) {
    for (int i = threadIdx.x; i < rows * (CMD / 8); i += blockDim.x) {
        int r = i / (CMD / 8), c = (i % (CMD / 8)) * 8, qi = r / G;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (qi < q_cnt && (CMD == HD || c < HD)) v = *(const uint4*)&q[((long long)(q_tok + qi) * heads + kvh * G + r % G) * HD + c];
        *(uint4*)&Qs[CM ? tc_cm<CMD>(r, c) : r * S + c] = v;
    }
}

// Element offset of (key, column c) of KV head kvh in the paged cache ([page][kv_head][32][HD]).
template <int HD>
__device__ __forceinline__ long long tc_kv_off(const int* block_table, int slot, int max_pages, int kv_heads, int kvh, int key, int c) {
    return (((long long)block_table[slot * max_pages + key / 32] * kv_heads + kvh) * 32 + key % 32) * HD + c;
}

// KT keys from kb of one KV head into shared K and V (rows of S elements) with cp.async, zero past
// kend; one commit group.
template <class T, int HD>
__device__ __forceinline__ void tc_load_kv(T* Ks, T* Vs, int KT, int S, const T* kc, const T* vc, const int* block_table, int slot,
                                           int max_pages, int kv_heads, int kvh, int kb, int kend) {
    for (int i = threadIdx.x; i < KT * (HD / 8); i += blockDim.x) {
        int j = i / (HD / 8), c = i % (HD / 8) * 8, key = kb + j;
        bool ok = key < kend;
        long long off = 0;
        if (ok) off = tc_kv_off<HD>(block_table, slot, max_pages, kv_heads, kvh, key, c);
        cp16(&Ks[j * S + c], kc + off, ok ? 16 : 0);
        cp16(&Vs[j * S + c], vc + off, ok ? 16 : 0);
    }
    asm volatile("cp.async.commit_group;\n");
}

// Score of one (query row, key) from its q·k: ALiBi, scale, soft-cap, then the end / causal /
// window mask (-inf), as attention() in attention.cu.
__device__ __forceinline__ float tc_score(float v, int key, int pos, int kend, const float* alibi, float slope, float scale,
                                          float softcap, int window) {
    if (alibi) v += __bfloat162float(__float2bfloat16(slope * __bfloat162float(__float2bfloat16((float)key))));
    v *= scale;
    if (softcap > 0.f) v = softcap * tanhf(v / softcap);
    if (key >= kend || key > pos || (window > 0 && pos - key >= window)) v = -INFINITY;
    return v;
}

// exp2 for the softmax. exp2f keeps results below 2^-126 as denormals: per call a range test and two
// predicated multiplies around MUFU.EX2 (5 instructions with the fma, not 2). Softmax weights that
// small are 0 to every sum they enter, so ex2.approx.ftz flushes them; the rounding of every other
// value is the same.
__device__ __forceinline__ float tc_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// 1/x for the soft-cap below (rcp.approx: one MUFU op, relative error about 2^-23, flushes
// denormals; 1/inf = 0), where 1.f / x would be the IEEE division's dozen instructions.
__device__ __forceinline__ float tc_rcp(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
// Gemma-2's soft-cap on a tile that needs no mask: c·tanh(scale·s / c), in the log2 domain, with
// tanh(u) = 1 − 2 / (1 + e^2u), that is a − 2a / (1 + 2^(k·s)) for k = 2·scale·log2 e / c and
// a = c·log2 e: per element one ex2 and one rcp (MUFU) and three FP32 operations, where tc_score's
// tanhf and IEEE division cost about 30 instructions and, at head dim 256, kept the tensor cores
// waiting. Large u gives 1/inf = 0 and a; very negative u gives 1/1 and −a. Its error is absolute,
// about 2^-21·a (ex2's and rcp's relative errors, times 2a), which is what a softmax sees; a
// polynomial like tanhf's is more accurate near 0 only, where the softmax needs no more.
// Hopper's attention_wg.cu uses it; attention_tc keeps tc_score on soft-capped tiles, where the
// second path cost registers (hd 32: 194 → 241) and a 12-byte spill at hd 96 for GPUs that no
// catalog LLM measures with soft-cap.
template <int NT> __device__ __forceinline__ void tc_softcap_tile(float (&s)[NT][4], float2 ka) {
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
        for (int x = 0; x < 4; x++) s[n][x] = fmaf(-2.f * ka.y, tc_rcp(1.f + tc_exp2(s[n][x] * ka.x)), ka.y);
    }
}
// tc_softcap_tile's (k, a) for query scale `scale` and soft-cap c (k is unused, and infinite, at c = 0).
__device__ __forceinline__ float2 tc_softcap_ka(float scale, float c) {
    const float L2E = 1.4426950408889634f;
    return make_float2(2.f * scale * L2E / c, c * L2E);
}

// Online-softmax step for this thread's two rows (A = elements 0, 1; B = 2, 3 of each accumulator)
// over a tile of masked scores s: new running max (the row lives in the 4 threads of a quad), o and
// l rescaled, s replaced by exp(s - max) and added to the per-thread partial l. Rows fully masked so
// far keep base 0: p = exp(-inf) = 0 and o = l = 0 need no correction.
// LOG2: s · sc is in the log2 domain (the prefill kernel passes scale·log2 e for raw q·k, or 1 for
// scores it masked and scaled itself), and p = exp2(fma(s, sc, -max)).
// LAZY: the max moves only when some row of the warp exceeds it by more than 8 (log2), so o and l
// skip their rescale on most tiles; p ≤ 2^8 then, which fp32 sums and 16-bit P hold as well, and
// the final division by l cancels whichever max was used.
// Its two halves, apart for attention_wg.cu, which rescales o only once its P·V has landed.
// tc_softmax_max: the tile's row max into mA, mB; returns whether the max moved, and then o's
// factors in cA, cB (l is rescaled here).
template <int NT, bool LOG2, bool LAZY>
__device__ __forceinline__ bool tc_softmax_max(const float (&s)[NT][4], float& mA, float& mB, float& lA, float& lB, float sc, float& cA,
                                               float& cB) {
    const float L2E = LOG2 ? 1.f : 1.4426950408889634f;
    float tA = -INFINITY, tB = -INFINITY;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        tA = fmaxf(tA, fmaxf(s[n][0], s[n][1]));
        tB = fmaxf(tB, fmaxf(s[n][2], s[n][3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        tA = fmaxf(tA, __shfl_xor_sync(0xffffffff, tA, off));
        tB = fmaxf(tB, __shfl_xor_sync(0xffffffff, tB, off));
    }
    tA *= sc; // sc > 0: the max of s · sc is the max of s, times sc
    tB *= sc;
    if (LAZY && !__any_sync(0xffffffff, tA > mA + 8.f || tB > mB + 8.f)) return false;
    float nA = fmaxf(mA, tA), nB = fmaxf(mB, tB);
    float bA = nA == -INFINITY ? 0.f : nA, bB = nB == -INFINITY ? 0.f : nB;
    cA = tc_exp2((mA - bA) * L2E);
    cB = tc_exp2((mB - bB) * L2E);
    mA = nA;
    mB = nB;
    lA *= cA;
    lB *= cB;
    return true;
}
// tc_softmax_exp: s replaced by exp(s - max), added to the per-thread partial l.
template <int NT, bool LOG2>
__device__ __forceinline__ void tc_softmax_exp(float (&s)[NT][4], float mA, float mB, float& lA, float& lB, float sc) {
    const float L2E = LOG2 ? 1.f : 1.4426950408889634f;
    float bA = mA == -INFINITY ? 0.f : mA, bB = mB == -INFINITY ? 0.f : mB;
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
        for (int x = 0; x < 4; x++) {
            float b = x < 2 ? bA : bB;
            float e = LOG2 ? fmaf(s[n][x], sc, -b) : (s[n][x] - b) * L2E;
            s[n][x] = tc_exp2(e);
        }
        lA += s[n][0] + s[n][1];
        lB += s[n][2] + s[n][3];
    }
}
// o's rows A and B times tc_softmax_max's factors.
template <int ND> __device__ __forceinline__ void tc_rescale_o(float (&o)[ND][4], float cA, float cB) {
#pragma unroll
    for (int n = 0; n < ND; n++) {
        o[n][0] *= cA; o[n][1] *= cA;
        o[n][2] *= cB; o[n][3] *= cB;
    }
}
template <int NT, int ND, bool LOG2 = false, bool LAZY = false>
__device__ __forceinline__ void tc_softmax_step(float (&s)[NT][4], float (&o)[ND][4], float& mA, float& mB, float& lA, float& lB,
                                                float sc = 1.f) {
    float cA, cB;
    if (tc_softmax_max<NT, LOG2, LAZY>(s, mA, mB, lA, lB, sc, cA, cB)) tc_rescale_o(o, cA, cB);
    tc_softmax_exp<NT, LOG2>(s, mA, mB, lA, lB, sc);
}

// Sum of a per-thread partial over the 4 threads of a quad (one accumulator row).
__device__ __forceinline__ float tc_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffff, x, 1);
    return x + __shfl_xor_sync(0xffffffff, x, 2);
}

// Prefill scores of one 16-row tile of keys from kb, masked (tc_score) and in the log2 domain, for
// this thread's rows at positions pos[h] with ALiBi slopes sl[h] (h = 0: elements 0, 1; 1: 2, 3).
template <int NT>
__device__ __forceinline__ void tc_mask_tile(float (&s)[NT][4], int kb, int ti, const int (&pos)[2], const float (&sl)[2], int kend,
                                             const float* alibi, float scale, float softcap, int window) {
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
        for (int x = 0; x < 4; x++) {
            int key = kb + n * 8 + 2 * ti + (x & 1), h = x >> 1;
            s[n][x] = 1.4426950408889634f * tc_score(s[n][x], key, pos[h], kend, alibi, sl[h], scale, softcap, window);
        }
    }
}

// bf16(x), rounded to nearest even, for x zero or normal of magnitude below 2^111, in three FP32
// operations: Veltkamp's split with 2^16 + 1 keeps x's top 8 significant bits of 24, and for these
// x its rounding is exactly bf16's (alibi_bias.rs checks every tie and its neighbours). Conversions
// (I2F, F2F, F2FP) issue at a fraction of the FP32 rate on Hopper; tc_score spends three on every
// element. The _rn intrinsics keep the compiler from contracting the split into an fma.
__device__ __forceinline__ float tc_bf16_rn(float x) {
    const float c = __fmul_rn(65537.f, x);
    return __fsub_rn(c, __fsub_rn(c, x));
}
// ALiBi's bias bf16(slope · bk) for a key already in bf16 (bk) and a bf16 slope (attention.cu's
// contract; the host rounds them): slope · bk is exact (two 8-bit significands), so the split's
// (2^16 + 1) · slope · bk rounds once from (2^16 + 1) · slope (exact too), and c − slope · bk is one
// fma: 3 operations.
__device__ __forceinline__ float tc_alibi_bias(float bk, float slope) {
    const float c = __fmul_rn(__fmul_rn(65537.f, slope), bk);
    return __fsub_rn(c, __fmaf_rn(-slope, bk, c));
}
// ALiBi on MT row tiles of keys from kb that need no mask (no soft-cap either), every row of this
// thread with the same slope (G = 1, as in every ALiBi model, or G dividing 8; other threads take
// tc_mask_tile): s += bf16(slope · bf16(key)), bit for bit tc_score's bias (alibi_bias.rs checks
// both on every key up to 2^17 and every catalog slope), without the scale: the softmax folds
// scale · log2 e into its exp2 as on plain tiles, after the same fp32 sum q·k + bias as tc_score's.
// The bias once per key column the thread holds, shared by its 2·MT rows: per element one add
// beside the plain path's work, against tc_score's conversions and masks (attention_wg.cu's
// wg_alibi_tile shares each key's over the warp instead). The keys are exact in fp32 (below
// 2^24); each is the last plus 1 or 7, a chain that keeps ptxas from computing all 16 biases at
// once (registers, at its limit here at hd 64 and 128).
template <int MT, int NT>
__device__ __forceinline__ void tc_alibi_tiles(float (&s)[MT][NT][4], int kb, int ti, float slope) {
    float key = (float)(kb + 2 * ti); // this thread's keys: kb + 2·ti + n·8 + x, x = 0, 1
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
        for (int x = 0; x < 2; x++) {
            if (n + x > 0) key = __fadd_rn(key, x ? 1.f : 7.f);
            const float b = tc_alibi_bias(tc_bf16_rn(key), slope);
#pragma unroll
            for (int t = 0; t < MT; t++) {
                s[t][n][x] += b;
                s[t][n][x + 2] += b;
            }
        }
    }
}

// P·V's A fragment for k-step k: the accumulators of key tiles 2k and 2k+1, in 16 bits
// (FlashAttention-2's layout trick: two m16n8 accumulators are one m16k16 A fragment).
template <class T, int NT> __device__ __forceinline__ void tc_p_frag(unsigned (&a)[4], const float (&s)[NT][4], int k) {
    a[0] = Mma<T>::pack(s[2 * k][0], s[2 * k][1]);
    a[1] = Mma<T>::pack(s[2 * k][2], s[2 * k][3]);
    a[2] = Mma<T>::pack(s[2 * k + 1][0], s[2 * k + 1][1]);
    a[3] = Mma<T>::pack(s[2 * k + 1][2], s[2 * k + 1][3]);
}

// This thread's share of output row h (0: accumulator elements 0, 1; 1: 2, 3): o / l, l being its
// quad's summed partials, into dst (the row's HD values) as 16-bit pairs.
template <class T, int ND> __device__ __forceinline__ void tc_store_row(T* dst, const float (&o)[ND][4], float l, int h, int ti) {
    float lt = tc_quad_sum(l), inv = lt > 0.f ? 1.f / lt : 0.f;
#pragma unroll
    for (int n = 0; n < ND; n++) // even column: the pair is one 4-byte store, rounded as fromf<T> rounds
        *(unsigned*)&dst[n * 8 + 2 * ti] = Mma<T>::pack(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
}

// Shared memory: Q [ROWS][HD+8], then 2 buffers of K [KT][HD+8] and V [KT][HD+8]. The +8 (16 bytes)
// row padding keeps ldmatrix rows on distinct banks and 16-byte aligned. Up to hd 64 each warp owns
// MT = 2 row tiles (128 rows per block): every K/V fragment from ldmatrix feeds two mma, and each
// K/V tile read from L2 serves twice the rows (shared-memory bandwidth bound the 1-tile version);
// their Q fragments stay in registers. At hd 128 two tiles per warp too (128-row blocks), Q re-read
// from shared memory since its fragments and two tiles' O do not fit in registers (255 registers,
// 12 B spilled); on an H100 it cut llama-3.1-8b's prefill attention by 24-29 % against one tile
// (docs/performance.md). Always 4 warps: 8 warps per block (one tile each at hd 128, or two at
// hd ≤ 64), with or without a ping-pong of two warpgroups, measured 2-7 % slower on an H100. The
// host reads ROWS back from attention_tc_rows_* (attention_prefill.cu).
template <int HD> struct TcShape {
    static constexpr int KT = HD <= 128 ? 64 : 32, S = HD + 8, MT = HD <= 64 || HD == 128 ? 2 : 1, WARPS = 4, ROWS = 16 * MT * WARPS;

    static constexpr int SMEM = (ROWS * S + 4 * KT * S) * 2;
};

template <class T, int HD>
__device__ void attention_tc(const T* q, T* out, const T* kc, const T* vc, const AttnItem* items, const int* tok_pos,
                             const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                             int window, const float* alibi) {
    using Sh = TcShape<HD>;
    constexpr int KT = Sh::KT, S = Sh::S, MT = Sh::MT, NT = KT / 8, ND = HD / 8, KD = HD / 16;
    // Q fragments in registers, else re-read from shared memory per k-step (registers for O and S).
    constexpr bool QREG = HD <= 128 && (MT == 1 || HD <= 64);
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* Qs = (T*)smem_raw;
    T* KV = Qs + Sh::ROWS * S; // buffer b: K at KV + 2·b·KT·S, V right after
    const TcItem I = tc_item(items, tok_pos, window);
    const int q_tok = I.q_tok, q_cnt = I.q_cnt, slot = I.slot, kbeg = I.kbeg, kend = I.kend;
    const float L2E = 1.4426950408889634f, SL2 = scale * L2E;
    int kvh = blockIdx.y, G = heads / kv_heads;
    int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, gi = lane >> 2, ti = lane & 3;
    tc_load_q<T, HD>(Qs, Sh::ROWS, S, q, q_tok, q_cnt, heads, kvh, G);
    // This thread's rows: gi (A) and gi + 8 (B) of each of the warp's MT tiles of 16.
    int row[MT][2], pos[MT][2];
    bool val[MT][2];
    float sl[MT][2];
    // Warp-wide position range, to skip tiles that are fully masked for this warp.
    int wmax = -1, wmin = 0x7fffffff;
#pragma unroll
    for (int t = 0; t < MT; t++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = (w * MT + t) * 16 + gi + 8 * h;
            row[t][h] = r;
            val[t][h] = r / G < q_cnt;
            pos[t][h] = val[t][h] ? tok_pos[q_tok + r / G] : -1;
            sl[t][h] = alibi ? alibi[kvh * G + r % G] : 0.f;
            wmax = max(wmax, pos[t][h]);
            if (val[t][h]) wmin = min(wmin, pos[t][h]);
        }
    }
    // Whether this thread's rows share one ALiBi slope (always without ALiBi): the unmasked
    // tiles' bias (tc_alibi_tiles) is then computed once per key. Uniform over a quad (its 4
    // threads hold the same rows), as the softmax's scale must be.
    bool one_slope = true;
#pragma unroll
    for (int t = 0; t < MT; t++) one_slope = one_slope && sl[t][0] == sl[0][0] && sl[t][1] == sl[0][0];
    for (int o = 16; o > 0; o >>= 1) {
        wmax = max(wmax, __shfl_xor_sync(0xffffffff, wmax, o));
        wmin = min(wmin, __shfl_xor_sync(0xffffffff, wmin, o));
    }
    auto load_tile = [&](int kb, int buf) {
        T* Ks = KV + 2 * buf * KT * S;
        tc_load_kv<T, HD>(Ks, Ks + KT * S, KT, S, kc, vc, block_table, slot, max_pages, kv_heads, kvh, kb, kend);
    };
    // ldmatrix source of an A fragment (16 rows × 16 columns) of row tile t, k-step k.
    auto q_frag = [&](int t, int k) { return &Qs[((w * MT + t) * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + k * 16 + (lane >> 4) * 8]; };
    float o[MT][ND][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int t = 0; t < MT; t++) {
#pragma unroll
        for (int n = 0; n < ND; n++) o[t][n][0] = o[t][n][1] = o[t][n][2] = o[t][n][3] = 0.f;
        m[t][0] = m[t][1] = -INFINITY;
        l[t][0] = l[t][1] = 0.f;
    }
    unsigned qf[QREG ? MT : 1][QREG ? KD : 1][4];
    if (kbeg < kend) load_tile(kbeg, 0);
    __syncthreads();
    if constexpr (QREG) {
#pragma unroll
        for (int t = 0; t < MT; t++) {
#pragma unroll
            for (int k = 0; k < KD; k++) ldm_x4(qf[t][k], q_frag(t, k));
        }
    }
    for (int kb = kbeg, buf = 0; kb < kend; kb += KT, buf ^= 1) {
        if (kb + KT < kend) {
            load_tile(kb + KT, buf ^ 1);
            asm volatile("cp.async.wait_group 1;\n");
        } else {
            asm volatile("cp.async.wait_group 0;\n");
        }
        __syncthreads();
        const T* Ks = KV + 2 * buf * KT * S;
        const T* Vs = Ks + KT * S;
        // Skip when every key of the tile is after every query of this warp, or before its window.
        bool skip = wmax < kb || (window > 0 && kb + KT - 1 <= wmin - window);
        float s[MT][NT][4];
        if (!skip) {
#pragma unroll
            for (int t = 0; t < MT; t++) {
#pragma unroll
                for (int n = 0; n < NT; n++) s[t][n][0] = s[t][n][1] = s[t][n][2] = s[t][n][3] = 0.f;
            }
#pragma unroll
            for (int k = 0; k < KD; k++) {
                unsigned a[MT][4];
#pragma unroll
                for (int t = 0; t < MT; t++) {
                    if constexpr (QREG) {
#pragma unroll
                        for (int x = 0; x < 4; x++) a[t][x] = qf[t][k][x];
                    } else {
                        ldm_x4(a[t], q_frag(t, k));
                    }
                }
#pragma unroll
                for (int n = 0; n < NT; n += 2) { // keys n·8 .. n·8+15: B fragments of two n-tiles
                    unsigned b[4];
                    ldm_x4(b, &Ks[(n * 8 + (lane & 7) + (lane >> 4) * 8) * S + k * 16 + ((lane >> 3) & 1) * 8]);
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        Mma<T>::run(s[t][n], a[t], b[0], b[1]);
                        Mma<T>::run(s[t][n + 1], a[t], b[2], b[3]);
                    }
                }
            }
        }
        if (!skip) {
            // Scores in the log2 domain. A tile inside every row's causal range and window, without
            // soft-cap (all but the diagonal tiles, usually), needs no per-element mask: the softmax
            // folds scale·log2 e into its exp2, after ALiBi's bias where there is one. Per-element
            // work, not the mma, bounds it.
            bool full = softcap <= 0.f && one_slope && kb + KT <= kend && kb + KT - 1 <= wmin && (window == 0 || kb > wmax - window);
            if (full && alibi) {
                tc_alibi_tiles<MT, NT>(s, kb, ti, sl[0][0]);
            } else if (!full) {
#pragma unroll
                for (int t = 0; t < MT; t++) tc_mask_tile(s[t], kb, ti, pos[t], sl[t], kend, alibi, scale, softcap, window);
            }
#pragma unroll
            for (int t = 0; t < MT; t++) // l: per-thread partials, reduced over the quad at the end
                tc_softmax_step<NT, ND, true, true>(s[t], o[t], m[t][0], m[t][1], l[t][0], l[t][1], full ? SL2 : 1.f);
            // O += P·V, P from the S accumulators.
#pragma unroll
            for (int k = 0; k < KT / 16; k++) {
                unsigned a[MT][4];
#pragma unroll
                for (int t = 0; t < MT; t++) tc_p_frag<T>(a[t], s[t], k);
#pragma unroll
                for (int n = 0; n < ND; n += 2) { // dims n·8 .. n·8+15
                    unsigned b[4];
                    ldm_x4_t(b, &Vs[(k * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + n * 8 + (lane >> 4) * 8]);
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        Mma<T>::run(o[t][n], a[t], b[0], b[1]);
                        Mma<T>::run(o[t][n + 1], a[t], b[2], b[3]);
                    }
                }
            }
        }
        __syncthreads(); // the next iteration's prefetch overwrites this buffer
    }
#pragma unroll
    for (int t = 0; t < MT; t++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            if (!val[t][h]) continue;
            int r = row[t][h];
            tc_store_row<T>(out + ((long long)(q_tok + r / G) * heads + kvh * G + r % G) * HD, o[t], l[t][h], h, ti);
        }
    }
}
