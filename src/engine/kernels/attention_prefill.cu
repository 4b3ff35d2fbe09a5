// The prefill kernels' entry points: on sm_90a attention_ws (TC_WG=2, the default there) at hd 128
// and 64 (TC_WS_HD64, on with TC_WS_TMA), or attention_wg (TC_WG=1) at hd 64 and 128; else
// attention_tc, as for every other head dim. Measured on an H100 (docs/performance.md), attention at
// n = 4096: attention_ws with TMA 41 % below attention_tc at hd 128 and 22 % below at hd 64;
// without TMA (cp.async) 4-6 % below at hd 128 and level at hd 64.
#ifndef TC_WS_HD64
#define TC_WS_HD64 TC_WS_TMA
#endif
template <int HD> struct TcEntry {
    static constexpr bool WG = TC_WG == 1 && (HD == 64 || HD == 128), WS = TC_WG == 2 && (HD == 128 || (HD == 64 && TC_WS_HD64));
    static constexpr int ROWS = WS ? WsShape<HD>::ROWS : WG ? WgShape<HD>::ROWS : TcShape<HD>::ROWS;
    static constexpr int THREADS = WS ? WsShape<HD>::THREADS : WG ? WgShape<HD>::THREADS : 32 * TcShape<HD>::WARPS;
    static constexpr int SMEM = WS ? WsShape<HD>::SMEM : WG ? WgShape<HD>::SMEM : TcShape<HD>::SMEM;
    static constexpr int MINB = WS ? 1 : WgShape<HD>::MINB; // blocks per SM asked of the wgmma kernels
    static constexpr int TMA = WS && TC_WS_TMA;              // reads the KV cache through attention_kv_maps
    static_assert(SMEM <= 227 * 1024, "more shared memory than an SM has");
};
template <class T, int HD>
__device__ __forceinline__ void attention_prefill(const T* q, T* o, const T* kc, const T* vc, const int* it, const int* tp, const int* bt, int mp,
                                                  int h, int kvh, float sc, float cap, int win, const float* al) {
#if TC_WG == 1
    if constexpr (TcEntry<HD>::WG) {
        attention_wg<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al);
        return;
    }
#elif TC_WG == 2
    if constexpr (TcEntry<HD>::WS) {
        attention_ws<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al);
        return;
    }
#endif
    attention_tc<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al);
}

// LB: launch bounds. attention_tc: two tiles per warp in 4 warps (hd ≤ 64) ask for TC_MINB_2TILES
// blocks per SM; 8 warps of one tile (hd 128) ask for 2, of two tiles for 1. The wgmma kernels:
// TcEntry::MINB. attention_tc_{rows,threads,smem,tma}_S_HD: the kernel's rows and threads per block,
// dynamic shared memory and whether it needs the KV tensor maps, read by the host (Device::const_i32).
#define ATTN_TC(T, S, HD, LB) \
extern "C" __global__ void __launch_bounds__ LB attention_tc_##S##_##HD(const T* q, T* o, const T* kc, const T* vc, const int* it, const int* tp, const int* bt, int mp, int h, int kvh, float sc, float cap, int win, const float* al) \
{ attention_prefill<T, HD>(q, o, kc, vc, it, tp, bt, mp, h, kvh, sc, cap, win, al); } \
extern "C" __constant__ int attention_tc_rows_##S##_##HD = TcEntry<HD>::ROWS; \
extern "C" __constant__ int attention_tc_threads_##S##_##HD = TcEntry<HD>::THREADS; \
extern "C" __constant__ int attention_tc_smem_##S##_##HD = TcEntry<HD>::SMEM; \
extern "C" __constant__ int attention_tc_tma_##S##_##HD = TcEntry<HD>::TMA;
#define TC_WGMMA_HD(HD) (TcEntry<HD>::WG || TcEntry<HD>::WS)
#define TC_LB64(HD) (TcEntry<HD>::THREADS, TC_WGMMA_HD(HD) ? TcEntry<HD>::MINB : TC_WARPS_HD64 == 4 ? TC_MINB_2TILES : 1)
#define TC_LB128 (TcEntry<128>::THREADS, TC_WGMMA_HD(128) ? TcEntry<128>::MINB : TC_WARPS_HD128 == 4 || TC_MT_HD128 == 2 ? 1 : 2)
#define ATTN_TC_ALL(T, S) ATTN_TC(T, S, 16, TC_LB64(16)) ATTN_TC(T, S, 32, TC_LB64(32)) ATTN_TC(T, S, 64, TC_LB64(64)) \
    ATTN_TC(T, S, 80, (128)) ATTN_TC(T, S, 96, (128)) ATTN_TC(T, S, 128, TC_LB128) ATTN_TC(T, S, 256, (128))
ATTN_TC_ALL(bf16, bf16)
ATTN_TC_ALL(f16, f16)
