// Elementwise and row kernels of the engine. Compiled by NVRTC at run time for the GPU present;
// every kernel exists for bf16 and fp16 (suffix _bf16 / _f16). Arithmetic in fp32, rounding to the
// storage type where HF transformers rounds, so the HF comparison stays tight.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#ifndef INFINITY // defined by the math headers some CUDA versions pull in through cuda_bf16.h
#define INFINITY __int_as_float(0x7f800000)
#endif
typedef __nv_bfloat16 bf16;
typedef __half f16;

__device__ __forceinline__ float tof(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float tof(f16 x) { return __half2float(x); }
template <class T> __device__ __forceinline__ T fromf(float x);
template <> __device__ __forceinline__ bf16 fromf<bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ f16 fromf<f16>(float x) { return __float2half(x); }
template <class T> __device__ __forceinline__ float rnd(float x) { return tof(fromf<T>(x)); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}
// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float red[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    float s = lane < nw ? red[lane] : 0.f;
    return warp_sum(s);
}

__device__ __forceinline__ unsigned long long splitmix(unsigned long long x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// out[i] = offset + scale * u, u uniform in [-1, 1), from (seed, i).
template <class T> __device__ void fill_uniform(T* out, long long n, unsigned long long seed, float scale, float offset) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        unsigned long long r = splitmix(seed ^ splitmix((unsigned long long)i));
        float u = (float)(r >> 40) * (1.0f / 8388608.0f) - 1.0f;
        out[i] = fromf<T>(offset + scale * u);
    }
}

// One row per block: out[t] = table[id] * scale (+ pos_table[tok_pos[t] + pos_offset], OPT's learned
// positions, when pos_table is set); id = src[t] or, if src[t] < 0, next_tok[-src[t]-1]. The scale is
// rounded to T first and the product rounded, as HF gemma casts its normaliser to the dtype.
template <class T> __device__ void embed(T* out, const T* table, const int* src, const int* next_tok, int hidden, float scale,
                                         const T* pos_table, const int* tok_pos, int pos_offset) {
    int t = blockIdx.x, id = src[t];
    if (id < 0) id = next_tok[-id - 1];
    const T* row = table + (long long)id * hidden;
    const T* prow = pos_table ? pos_table + (long long)(tok_pos[t] + pos_offset) * hidden : nullptr;
    T* o = out + (long long)t * hidden;
    float s = tof(fromf<T>(scale));
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float e = scale == 1.f ? tof(row[i]) : rnd<T>(tof(row[i]) * s);
        if (prow) e += tof(prow[i]);
        o[i] = fromf<T>(e);
    }
}

// out[i] = src[rows[i]] (rows of width cols).
template <class T> __device__ void gather_rows(T* out, const T* src, const int* rows, int cols) {
    const T* s = src + (long long)rows[blockIdx.x] * cols;
    T* o = out + (long long)blockIdx.x * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) o[i] = s[i];
}

// One row per block: h = resid + a (rounded, stored back to resid), out = norm(h). The added branch
// a = add (+ add_b, the bias of the projection that produced it) (then RMS-normed with add_w: Gemma-2's
// post-attention / post-feedforward norms, modes 0/1 only); no add: h = resid, resid untouched.
// mode 0: RMSNorm w*x; 1: RMSNorm (1+w)*x in fp32 (gemma); 2: LayerNorm w*x+b.
// V consecutive elements as floats / back: one 16-byte access for V = 8.
template <class T, int V> __device__ __forceinline__ void ldv(const T* p, float (&f)[V]) {
    if constexpr (V == 8) {
        uint4 u = *(const uint4*)p;
        const T* e = (const T*)&u;
#pragma unroll
        for (int j = 0; j < 8; j++) f[j] = tof(e[j]);
    } else {
#pragma unroll
        for (int j = 0; j < V; j++) f[j] = tof(p[j]);
    }
}
template <class T, int V> __device__ __forceinline__ void stv(T* p, const float (&f)[V]) {
    if constexpr (V == 8) {
        uint4 u;
        T* e = (T*)&u;
#pragma unroll
        for (int j = 0; j < 8; j++) e[j] = fromf<T>(f[j]);
        *(uint4*)p = u;
    } else {
#pragma unroll
        for (int j = 0; j < V; j++) p[j] = fromf<T>(f[j]);
    }
}

// Each thread takes V adjacent columns per step (V = 8 when cols % 8 == 0: 16-byte accesses; the
// 2-byte version ran at 2.2x its bytes/bandwidth floor); the launch gives each thread one step where
// the row allows (norm_residual_block, device.rs), so every load of a row is in flight at once.
// The row is staged in shared memory as T: every staged value (a residual, a rounded sum, a branch
// output) is a T value, so this is exact, and it leaves half of the cols * 4 bytes for the residual
// in the post-norm path.
template <class T, int V> __device__ void norm_residual_v(T* resid, const T* add, const T* add_b, const T* add_w, const T* w,
                                                          const T* b, T* out, int cols, float eps, int mode) {
    extern __shared__ __align__(16) unsigned char nr_stage[];
    T* hrow = (T*)nr_stage; // the row h, then normalised from
    T* hres = hrow + cols;  // post-norm path: the residual, loaded with the branch
    long long base = (long long)blockIdx.x * cols;
    const int i0 = threadIdx.x * V, step = blockDim.x * V;
    float f[V], g[V], h[V];
    float ss = 0.f, sum = 0.f;
    if (add && !add_w) {
        // Residual add without a post-norm (Llama, Qwen, OPT, Falcon-RW): the branch output and the
        // residual are loaded together, one memory latency per chunk instead of two in a row.
        for (int i = i0; i < cols; i += step) {
            ldv<T, V>(add + base + i, f);
            ldv<T, V>(resid + base + i, h);
            if (add_b) ldv<T, V>(add_b + i, g);
#pragma unroll
            for (int j = 0; j < V; j++) {
                float a = add_b ? rnd<T>(f[j] + g[j]) : f[j];
                h[j] = rnd<T>(h[j] + a);
                ss += h[j] * h[j];
                sum += h[j];
            }
            stv<T, V>(resid + base + i, h);
            stv<T, V>(hrow + i, h);
        }
    } else if (add) {
        // Post-norm (Gemma-2): the branch is RMS-normed before the add, so its sum of squares must be
        // complete first; the residual is loaded with it all the same and waits in shared memory, so
        // the row costs one memory latency, not a second one after the reduction.
        float sa = 0.f;
        for (int i = i0; i < cols; i += step) {
            ldv<T, V>(add + base + i, f);
            ldv<T, V>(resid + base + i, h);
            if (add_b) ldv<T, V>(add_b + i, g);
#pragma unroll
            for (int j = 0; j < V; j++) {
                f[j] = add_b ? rnd<T>(f[j] + g[j]) : f[j];
                sa += f[j] * f[j];
            }
            stv<T, V>(hrow + i, f);
            stv<T, V>(hres + i, h);
        }
        float ra = rsqrtf(block_sum(sa) / cols + eps);
        for (int i = i0; i < cols; i += step) {
            ldv<T, V>(add_w + i, g);
            ldv<T, V>(hrow + i, f);
            ldv<T, V>(hres + i, h);
#pragma unroll
            for (int j = 0; j < V; j++) {
                float x = f[j] * ra;
                float a = rnd<T>(mode == 1 ? x * (1.f + g[j]) : g[j] * rnd<T>(x));
                h[j] = rnd<T>(h[j] + a);
                ss += h[j] * h[j];
                sum += h[j];
            }
            stv<T, V>(resid + base + i, h);
            stv<T, V>(hrow + i, h);
        }
    } else {
        // No add (the first layer's input norm): the residual alone, one load per chunk already.
        for (int i = i0; i < cols; i += step) {
            ldv<T, V>(resid + base + i, h);
#pragma unroll
            for (int j = 0; j < V; j++) {
                ss += h[j] * h[j];
                sum += h[j];
            }
            stv<T, V>(hrow + i, h);
        }
    }
    float mean = 0.f;
    if (mode == 2) {
        mean = block_sum(sum) / cols;
        float var = 0.f;
        for (int i = i0; i < cols; i += step) {
            ldv<T, V>(hrow + i, h);
#pragma unroll
            for (int j = 0; j < V; j++) var += (h[j] - mean) * (h[j] - mean);
        }
        ss = block_sum(var);
    } else {
        ss = block_sum(ss);
    }
    float r = rsqrtf(ss / cols + eps);
    // h is read element by element here: read as one vector beside w and b it held 8 more registers
    // on sm_80 (40, against 32 on sm_90), fewer blocks per multiprocessor.
    for (int i = i0; i < cols; i += step) {
        ldv<T, V>(w + i, g);
        float bb[V];
        if (mode == 2) ldv<T, V>(b + i, bb);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float x = (tof(hrow[i + j]) - mean) * r;
            if (mode == 0) f[j] = g[j] * rnd<T>(x);
            else if (mode == 1) f[j] = x * (1.f + g[j]);
            else f[j] = x * g[j] + bb[j];
        }
        stv<T, V>(out + base + i, f);
    }
}

template <class T> __device__ void norm_residual(T* resid, const T* add, const T* add_b, const T* add_w, const T* w, const T* b,
                                                 T* out, int cols, float eps, int mode) {
    if (cols % 8 == 0) norm_residual_v<T, 8>(resid, add, add_b, add_w, w, b, out, cols, eps, mode);
    else norm_residual_v<T, 1>(resid, add, add_b, add_w, w, b, out, cols, eps, mode);
}

// FFN activation. act 0: SwiGLU silu(g)*u; 1: GeGLU with tanh GELU (gemma) — gated: gu rows are
// [gate | up], width 2f. act 2: ReLU (opt); 3: exact erf GELU (falcon's nn.GELU()) — plain: width f.
// One FFN activation output from its gate g (and up projection u when gated), as HF computes it:
// bias added and rounded, activation, rounded again before the gated product.
template <class T> __device__ __forceinline__ float ffn_act_one(float g, float u, const T* bias, int c, int f, int act, bool gated) {
    if (bias) g = rnd<T>(g + tof(bias[c]));
    float a;
    if (act == 0) a = g / (1.f + expf(-g));
    else if (act == 1) a = 0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
    else if (act == 2) a = fmaxf(g, 0.f);
    else a = 0.5f * g * (1.f + erff(g * 0.7071067811865476f));
    if (gated) {
        if (bias) u = rnd<T>(u + tof(bias[f + c]));
        a = rnd<T>(a) * u;
    }
    return a;
}

// Grid (columns / (8·blockDim) blocks, rows walked by blockIdx.y): each thread owns 8 adjacent
// columns with 16-byte loads and stores when f % 8 == 0 (every catalog FFN), else one column. No
// per-element 64-bit division: the flat grid-stride version ran at 2.4x its bytes/bandwidth floor.
template <class T> __device__ void ffn_act(T* out, const T* gu, const T* bias, long long rows, int f, int act) {
    bool gated = act < 2;
    int width = gated ? 2 * f : f;
    int c0 = (blockIdx.x * blockDim.x + threadIdx.x) * (f % 8 == 0 ? 8 : 1);
    if (c0 >= f) return;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const T* g = gu + r * width + c0;
        T* o = out + r * f + c0;
        if (f % 8 == 0) {
            float gf[8], uf[8] = {};
            ldv<T, 8>(g, gf);
            if (gated) ldv<T, 8>(g + f, uf);
#pragma unroll
            for (int j = 0; j < 8; j++) gf[j] = ffn_act_one<T>(gf[j], uf[j], bias, c0 + j, f, act, gated);
            stv<T, 8>(o, gf);
        } else {
            *o = fromf<T>(ffn_act_one<T>(tof(*g), gated ? tof(g[f]) : 0.f, bias, c0, f, act, gated));
        }
    }
}

// Final logit soft-capping in place: x = cap * tanh(x / cap), rounded after each step like HF gemma2.
template <class T> __device__ void softcap(T* x, long long n, float cap) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = fromf<T>(rnd<T>(tanhf(rnd<T>(tof(x[i]) / cap))) * cap);
}

// Eight rotate-half pairs (d + j, d + j + hd/2), j < 8, of head h of token t, loaded as x1, x2:
// bias, RoPE (cos and sin from the block's table), store, each half in one 16-byte access (d and
// hd/2 are multiples of 8 for every head dim with a kernel, HEAD_DIMS in forward.rs, and every row
// starts 16-byte aligned).
template <class T> __device__ __forceinline__ void qkv_post_vec(float (&x1)[8], float (&x2)[8], int h, int d, int t, int page, int off,
                                                                const T* __restrict__ bias, T* __restrict__ q_out, T* __restrict__ kc,
                                                                T* __restrict__ vc, const float* rope_c, const float* rope_s,
                                                                int heads, int kv_heads, int hd,
                                                                int page_size, int rope) {
    const int half = hd / 2, i1 = h * hd + d;
    if (bias) {
        float b1[8], b2[8];
        ldv<T, 8>(bias + i1, b1);
        ldv<T, 8>(bias + i1 + half, b2);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            x1[j] = rnd<T>(x1[j] + b1[j]);
            x2[j] = rnd<T>(x2[j] + b2[j]);
        }
    }
    float y1[8], y2[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        y1[j] = x1[j];
        y2[j] = x2[j];
        if (rope && h < heads + kv_heads) {
            const float c = rope_c[d + j], s = rope_s[d + j];
            y1[j] = rnd<T>(rnd<T>(x1[j] * c) + rnd<T>(-x2[j] * s));
            y2[j] = rnd<T>(rnd<T>(x2[j] * c) + rnd<T>(x1[j] * s));
        }
    }
    T* dst;
    if (h < heads) {
        dst = q_out + (long long)t * heads * hd + h * hd;
    } else {
        int kvh = h < heads + kv_heads ? h - heads : h - heads - kv_heads;
        dst = (h < heads + kv_heads ? kc : vc) + (((long long)page * kv_heads + kvh) * page_size + off) * hd;
    }
    stv<T, 8>(dst + d, y1);
    stv<T, 8>(dst + d + half, y2);
}

static constexpr int QKV_U = 2; // 8-pair vectors per thread loaded together (64 bytes in flight)

// Per token (block): add q/k/v bias, rotate q and k (rotate-half, angle pos*inv_freq[d]),
// write q to q_out [T, heads*hd] and k, v into the paged cache of this layer.
// Cache layout: [page][kv_head][page_size][hd]; page = block_table[slot*max_pages + pos/page_size].
// The angle's cos and sin depend on (pos, d) only: they are computed once per token into shared
// memory (hd/2 ≤ 128 pairs: HEAD_DIMS ends at 256, attn_shapes.rs checks it) rather than once per
// head.
// Memory is read and written 16 bytes at a time: with one 2-byte element per access the kernel
// was bound by its load and store instructions (1.7× the copy time of its bytes at 8192 tokens).
template <class T> __device__ void qkv_post(const T* __restrict__ qkv, const T* __restrict__ bias, T* __restrict__ q_out,
                                            T* __restrict__ kc, T* __restrict__ vc, const int* tok_pos,
                                            const int* tok_slot, const int* block_table, int max_pages, const float* inv_freq,
                                            int heads, int kv_heads, int hd, int page_size, int rope) {
    __shared__ float rope_c[128], rope_s[128];
    int t = blockIdx.x, pos = tok_pos[t], slot = tok_slot[t];
    int width = (heads + 2 * kv_heads) * hd, half = hd / 2;
    if (rope) {  // uniform over the block
        for (int d = threadIdx.x; d < half; d += blockDim.x) {
            float sn, cs;
            sincosf((float)pos * inv_freq[d], &sn, &cs);
            rope_c[d] = rnd<T>(cs);
            rope_s[d] = rnd<T>(sn);
        }
        __syncthreads();
    }
    const T* row = qkv + (long long)t * width;
    int page = block_table[slot * max_pages + pos / page_size], off = pos % page_size;
    const int per_head = half / 8, nvec = (heads + 2 * kv_heads) * per_head;
    // Each thread loads QKV_U vectors before it computes and stores any (bytes in flight).
    for (int v0 = threadIdx.x; v0 < nvec; v0 += QKV_U * blockDim.x) {
        float x1[QKV_U][8], x2[QKV_U][8];
#pragma unroll
        for (int u = 0; u < QKV_U; u++) {
            int v = v0 + u * blockDim.x, i1 = (v / per_head) * hd + v % per_head * 8;
            if (v < nvec) {
                ldv<T, 8>(row + i1, x1[u]);
                ldv<T, 8>(row + i1 + half, x2[u]);
            }
        }
#pragma unroll
        for (int u = 0; u < QKV_U; u++) {
            int v = v0 + u * blockDim.x;
            if (v >= nvec) break;
            qkv_post_vec<T>(x1[u], x2[u], v / per_head, v % per_head * 8, t, page, off, bias, q_out, kc, vc, rope_c, rope_s,
                            heads, kv_heads, hd, page_size, rope);
        }
    }
}

// Greedy argmax per row (block), first index on ties; writes out_tok[dst[r]] and next_tok[slot[r]].
// The row is read 8 values per 16-byte load where every row is 16-byte aligned (vocab a multiple
// of 8 and an aligned buffer; 128256, 32000, 256000 ...): an eighth of the load instructions of the
// 2-byte loop, which is what bounded it (0.245 ms for 1024 rows of 128256 against 0.09 at 3 TB/s).
// The update rule is the same for every element, so the order elements are visited in does not
// change the result.
__device__ __forceinline__ void argmax_take(float v, int i, float& best, int& bi) {
    if (v > best || (v == best && i < bi) || (isnan(best) && !isnan(v))) { best = v; bi = i; }
}
template <class T> __device__ void argmax(const T* __restrict__ logits, int vocab, int* out_tok, const int* dst, int* next_tok, const int* slot) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const T* row = logits + (long long)blockIdx.x * vocab;
    float best = -INFINITY;
    int bi = 0x7fffffff;
    int tail = 0;  // first index the scalar loop reads
    if ((vocab & 7) == 0 && ((unsigned long long)logits & 15) == 0) {
        const uint4* row8 = reinterpret_cast<const uint4*>(row);
#pragma unroll 2
        for (int k = threadIdx.x; k < (vocab >> 3); k += blockDim.x) {
            uint4 u = row8[k];
            const T* e = reinterpret_cast<const T*>(&u);
#pragma unroll
            for (int j = 0; j < 8; j++) argmax_take(tof(e[j]), 8 * k + j, best, bi);
        }
        tail = vocab;
    }
    for (int i = tail + threadIdx.x; i < vocab; i += blockDim.x) argmax_take(tof(row[i]), i, best, bi);
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffff, best, o);
        int oi = __shfl_xor_sync(0xffffffff, bi, o);
        if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) { sv[w] = best; si[w] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++)
            if (sv[k] > best || (sv[k] == best && si[k] < bi)) { best = sv[k]; bi = si[k]; }
        if (bi >= vocab) bi = 0;
        out_tok[dst[blockIdx.x]] = bi;
        if (next_tok) next_tok[slot[blockIdx.x]] = bi;
    }
}

#define INST(T, S) \
extern "C" __global__ void fill_uniform_##S(T* o, long long n, unsigned long long seed, float sc, float off) { fill_uniform<T>(o, n, seed, sc, off); } \
extern "C" __global__ void embed_##S(T* o, const T* tb, const int* src, const int* nt, int h, float sc, const T* pt, const int* tp, int po) { embed<T>(o, tb, src, nt, h, sc, pt, tp, po); } \
extern "C" __global__ void gather_rows_##S(T* o, const T* s, const int* r, int c) { gather_rows<T>(o, s, r, c); } \
extern "C" __global__ void norm_residual_##S(T* r, const T* a, const T* ab, const T* aw, const T* w, const T* b, T* o, int c, float eps, int m) { norm_residual<T>(r, a, ab, aw, w, b, o, c, eps, m); } \
extern "C" __global__ void ffn_act_##S(T* o, const T* gu, const T* b, long long r, int f, int a) { ffn_act<T>(o, gu, b, r, f, a); } \
extern "C" __global__ void softcap_##S(T* x, long long n, float cap) { softcap<T>(x, n, cap); } \
extern "C" __global__ void qkv_post_##S(const T* qkv, const T* b, T* q, T* kc, T* vc, const int* tp, const int* ts, const int* bt, int mp, const float* inv, int h, int kvh, int hd, int ps, int rope) { qkv_post<T>(qkv, b, q, kc, vc, tp, ts, bt, mp, inv, h, kvh, hd, ps, rope); } \
extern "C" __global__ void argmax_##S(const T* l, int v, int* ot, const int* d, int* nt, const int* sl) { argmax<T>(l, v, ot, d, nt, sl); }
INST(bf16, bf16)
INST(f16, f16)
