// Attention over the paged KV cache, for prefill and decode (appended to common.cu by the loader).
//
// One block = one work item (a tile of consecutive query tokens of one sequence and a key range)
// × one KV head; its warps are the (query, head-of-the-group) rows, so each K/V tile of a KV head
// is read once for its whole query group (GQA). Online softmax in fp32 registers: no score matrix
// exists in memory. Items with part >= 0 are splits of one decode query over the context; they
// write unnormalised partial outputs (o, m, l) that attn_combine merges.
// Item: AttnItem below (key_begin a multiple of 32).
// Cache pages hold 32 tokens: [page][kv_head][32][HD].
// Score of query position p and key position j: s = (q·k + alibi) · scale, then
// s = softcap · tanh(s / softcap) when softcap > 0; keys with j > p, or p - j >= window when
// window > 0 (sliding window, as HF: the query and window-1 keys before it), are masked.
// ALiBi (falcon, alibi = per-head slopes, else null) adds slope·j as HF's build_alibi_tensor does:
// bf16(bf16(slope) · bf16(j)) whatever the run dtype (equal to -slope·(p - j) up to a per-query
// constant, which softmax ignores), scaled with q·k by head_dim^-0.5.

// One work item as the host writes it (src/engine/attn_item.rs, `AttnItem`, #[repr(C)] with the
// same fields in the same order; both sides check the size).
struct AttnItem {
    int q_tok, q_cnt, slot, key_begin, key_end, part;
};
static_assert(sizeof(AttnItem) == 24 && alignof(AttnItem) == 4, "AttnItem: six ints, as attn_item.rs lays them out");

template <class T, int HD>
__device__ void attention(const T* q, T* out, const T* kc, const T* vc, const AttnItem* items, const int* tok_pos,
                          const int* block_table, int max_pages, int heads, int kv_heads, float scale, float softcap,
                          int window, const float* alibi, float* part_o, float* part_ml) {
    constexpr int KP = HD + 2, NI = (HD + 31) / 32;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int rows = blockDim.x >> 5;
    T* Ks = (T*)smem_raw;
    T* Vs = Ks + 32 * KP;
    T* Qs = Vs + 32 * HD;
    float* Ps = (float*)(Qs + rows * HD);
    const AttnItem it = items[blockIdx.x];
    int q_tok = it.q_tok, q_cnt = it.q_cnt, slot = it.slot, kbeg = it.key_begin, ke0 = it.key_end, part = it.part;
    int kvh = blockIdx.y, G = heads / kv_heads;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int qi = w / G, g = w % G;
    bool valid = qi < q_cnt;
    int head = kvh * G + g, token = q_tok + (valid ? qi : 0), pos = tok_pos[token];
    int first_pos = tok_pos[q_tok], last_pos = tok_pos[q_tok + q_cnt - 1];
    int kend = min(ke0, last_pos + 1);
    if (window > 0) {
        int lo = first_pos - window + 1;
        if (lo > kbeg) kbeg = lo & ~31;
    }
    if (valid)
        for (int d = lane; d < HD; d += 32) Qs[w * HD + d] = q[((long long)token * heads + head) * HD + d];
    float m = -INFINITY, l = 0.f, acc[NI];
#pragma unroll
    for (int i = 0; i < NI; i++) acc[i] = 0.f;
    for (int kb = kbeg; kb < kend; kb += 32) {
        int page = block_table[slot * max_pages + kb / 32], nk = min(32, kend - kb);
        const T* kp = kc + ((long long)page * kv_heads + kvh) * 32 * HD;
        const T* vp = vc + ((long long)page * kv_heads + kvh) * 32 * HD;
        __syncthreads();
        for (int i = threadIdx.x; i < nk * HD / 2; i += blockDim.x) {
            int j = (2 * i) / HD, d = (2 * i) % HD;
            *(unsigned int*)&Ks[j * KP + d] = *(const unsigned int*)&kp[j * HD + d];
            *(unsigned int*)&Vs[j * HD + d] = *(const unsigned int*)&vp[j * HD + d];
        }
        __syncthreads();
        if (!valid) continue;
        int key = kb + lane;
        float s = -INFINITY;
        if (lane < nk && key <= pos && (window <= 0 || pos - key < window)) {
            float dot = 0.f;
            const T* qr = Qs + w * HD;
            const T* kr = Ks + lane * KP;
#pragma unroll 8
            for (int d = 0; d < HD; d++) dot += tof(qr[d]) * tof(kr[d]);
            if (alibi) dot += __bfloat162float(__float2bfloat16(alibi[head] * __bfloat162float(__float2bfloat16((float)key))));
            s = dot * scale;
            if (softcap > 0.f) s = softcap * tanhf(s / softcap);
        }
        float mn = fmaxf(m, warp_max(s));
        if (mn == -INFINITY) continue;
        float p = s == -INFINITY ? 0.f : expf(s - mn);
        float corr = m == -INFINITY ? 0.f : expf(m - mn);
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int i = 0; i < NI; i++) acc[i] *= corr;
        Ps[w * 32 + lane] = p;
        __syncwarp();
        for (int j = 0; j < nk; j++) {
            float pj = Ps[w * 32 + j];
#pragma unroll
            for (int i = 0; i < NI; i++) {
                int d = lane + 32 * i;
                if (d < HD) acc[i] += pj * tof(Vs[j * HD + d]);
            }
        }
        __syncwarp();
        m = mn;
    }
    if (!valid) return;
    long long rowi = (long long)token * heads + head;
    if (part < 0) {
        float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
        for (int i = 0; i < NI; i++) {
            int d = lane + 32 * i;
            if (d < HD) out[rowi * HD + d] = fromf<T>(acc[i] * inv);
        }
    } else {
        long long pi = (long long)part * heads + head;
#pragma unroll
        for (int i = 0; i < NI; i++) {
            int d = lane + 32 * i;
            if (d < HD) part_o[pi * HD + d] = acc[i];
        }
        if (lane == 0) {
            part_ml[pi * 2] = m;
            part_ml[pi * 2 + 1] = l;
        }
    }
}

// Merge split partials: block (entry, head), thread per dim. comb = 3 ints: token, part_begin, part_cnt.
template <class T>
__device__ void attn_combine(T* out, const int* comb, const float* part_o, const float* part_ml, int heads, int hd) {
    const int* c = comb + blockIdx.x * 3;
    int token = c[0], p0 = c[1], np = c[2], h = blockIdx.y;
    float M = -INFINITY;
    for (int p = 0; p < np; p++) M = fmaxf(M, part_ml[((long long)(p0 + p) * heads + h) * 2]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0.f, o = 0.f;
        for (int p = 0; p < np; p++) {
            long long pi = (long long)(p0 + p) * heads + h;
            float mp = part_ml[pi * 2];
            if (mp == -INFINITY) continue;
            float e = expf(mp - M);
            L += e * part_ml[pi * 2 + 1];
            o += e * part_o[pi * hd + d];
        }
        out[((long long)token * heads + h) * hd + d] = fromf<T>(L > 0.f ? o / L : 0.f);
    }
}

#define ATTN(T, S, HD) \
extern "C" __global__ void attention_##S##_##HD(const T* q, T* o, const T* kc, const T* vc, const AttnItem* it, const int* tp, const int* bt, int mp, int h, int kvh, float sc, float cap, int win, const float* al, float* po, float* pml) \
{ attention<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al, po, pml); }
#define ATTN_ALL(T, S) ATTN(T, S, 16) ATTN(T, S, 32) ATTN(T, S, 64) ATTN(T, S, 80) ATTN(T, S, 96) ATTN(T, S, 128) ATTN(T, S, 256) \
extern "C" __global__ void attn_combine_##S(T* o, const int* c, const float* po, const float* pml, int h, int hd) { attn_combine<T>(o, c, po, pml, h, hd); }
ATTN_ALL(bf16, bf16)
ATTN_ALL(f16, f16)
