// The prefill kernels' entry points: where the program is compiled for sm_90a (Device::new does on
// Hopper) attention_ws at hd 64, 80 (computed as 128 with zero columns, attention_ws.cu) and 128
// and attention_ws256 (attention_ws256.cu) at hd 256; else, and at every other head dim,
// attention_tc. Measured on an H100 (docs/performance.md), attention at n = 4096: attention_ws 41 %
// below attention_tc at hd 128 and 22 % below at hd 64, attention_ws256 42 % below it at hd 256.
// At hd 80 attention_tc reached about 155 TFLOP/s (opt-2.7b, n = 4096), attention_ws about 322 at
// hd 128: room for the padding's 1.3x tensor work (80 + 128 columns for 2 × 80).
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
static constexpr bool SM90A = true;
#else
static constexpr bool SM90A = false;
#endif
template <int HD> struct TcEntry {
    static constexpr bool WS = SM90A && (HD == 128 || HD == 64 || HD == 80 || HD == 256);
    static constexpr int ROWS = WS ? WsShape<HD>::ROWS : TcShape<HD>::ROWS;
    static constexpr int THREADS = WS ? WsShape<HD>::THREADS : 32 * TcShape<HD>::WARPS;
    static constexpr int SMEM = WS ? WsShape<HD>::SMEM : TcShape<HD>::SMEM;
    static constexpr int TMA = WS; // reads the KV cache through attention_kv_maps
    static_assert(SMEM <= 227 * 1024, "more shared memory than an SM has");
};
template <class T, int HD>
__device__ __forceinline__ void attention_prefill(const T* q, T* o, const T* kc, const T* vc, const AttnItem* it, const int* tp, const int* bt, int mp,
                                                  int h, int kvh, float sc, float cap, int win, const float* al) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    if constexpr (TcEntry<HD>::WS && HD == 256) {
        attention_ws256<T>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al);
        return;
    } else if constexpr (TcEntry<HD>::WS) {
        attention_ws<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al);
        return;
    }
#endif
    attention_tc<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al);
}

// LB: launch bounds. At hd 16-64 and 128 (two row tiles per warp, or attention_ws), and at hd 80
// and 256 on sm_90a (attention_ws; attention_ws256: 384 threads, 168 registers each at launch),
// one block per SM is asked for; attention_tc at hd 80 and 256 keeps its (128).
// attention_tc_{rows,threads,smem,tma}_S_HD: the kernel's rows and threads per block, dynamic
// shared memory and whether it needs the KV tensor maps, read by the host (Device::const_i32).
#define ATTN_TC(T, S, HD, LB) \
extern "C" __global__ void __launch_bounds__ LB attention_tc_##S##_##HD(const T* q, T* o, const T* kc, const T* vc, const AttnItem* it, const int* tp, const int* bt, int mp, int h, int kvh, float sc, float cap, int win, const float* al) \
{ attention_prefill<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al); } \
extern "C" __constant__ int attention_tc_rows_##S##_##HD = TcEntry<HD>::ROWS; \
extern "C" __constant__ int attention_tc_threads_##S##_##HD = TcEntry<HD>::THREADS; \
extern "C" __constant__ int attention_tc_smem_##S##_##HD = TcEntry<HD>::SMEM; \
extern "C" __constant__ int attention_tc_tma_##S##_##HD = TcEntry<HD>::TMA;
#define TC_LB(HD) (TcEntry<HD>::THREADS, 1)
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
#define TC_LB80 TC_LB(80)
#define TC_LB256 TC_LB(256)
#else
#define TC_LB80 (128)
#define TC_LB256 (128)
#endif
#define ATTN_TC_ALL(T, S) ATTN_TC(T, S, 16, TC_LB(16)) ATTN_TC(T, S, 32, TC_LB(32)) ATTN_TC(T, S, 64, TC_LB(64)) \
    ATTN_TC(T, S, 80, TC_LB80) ATTN_TC(T, S, 96, (128)) ATTN_TC(T, S, 128, TC_LB(128)) ATTN_TC(T, S, 256, TC_LB256)
ATTN_TC_ALL(bf16, bf16)
ATTN_TC_ALL(f16, f16)
