// Does running a decode step's bandwidth-bound attention beside its compute-bound GEMMs buy time
// and energy on this GPU, and by which mechanism? A stand-in for llama-3.2-1b decode at batch 1024,
// context 512 (bench: attention 6.1 ms, GEMMs 3.4 ms, 10.4 ms a step one after the other):
//   X = a streaming read of `xbytes` per layer and micro-batch (attention's K/V reads),
//   Y = the layer's four GEMMs (qkv 3072x2048, o 2048x2048, gate/up 16384x2048, down 2048x8192)
//       on `rows` rows per micro-batch, through cuBLAS.
// Modes (16 layers a step, two micro-batches A and B of `rows` each; A and B are independent chains):
//   serial1 : one stream, X and Y on all 2*rows rows at once (today's engine)
//   serial2 : one stream, A's and B's X and Y one after the other (the split alone)
//   streams : A on one stream, B on another (the hardware interleaves blocks)
//   prio    : four streams (X / Y of each chain, joined by events), Y streams at high priority
//   green-S : as prio, Y streams in a green context of S SMs, X streams in one of the rest
// Each mode is captured into a CUDA graph (as the engine replays decode steps) and replayed for
// >= 2.5 s; time per step from events, energy from NVML's counter. Green contexts run without a
// graph first, then captured (a failed capture exits naming the CUDA call that refused it).
// Simplifications that favour overlap: one weight buffer serves every GEMM (fewer HBM bytes than
// the engine's distinct layers), and constant operand bytes draw less power than real data.
// Usage: overlap_probe [rows] [xMB] [bw]   (bw: instead, the streaming read's bandwidth, power and
// J/GB on 16 ... 132 SMs). Hopper only (sm_90a); results and what they mean: docs/performance.md,
// "Attention beside the GEMMs".
#include <cublas_v2.h>
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nvml.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define CK(x) do { auto e_ = (x); if (e_ != 0) { fprintf(stderr, "%s:%d %s -> %d\n", __FILE__, __LINE__, #x, (int)e_); exit(1); } } while (0)

// Streaming read: every thread keeps 8 independent 16-byte loads in flight (128 B), so that a few
// SMs can still cover HBM's latency (as attention's TMA pipeline does); one write per block, never
// taken in practice, keeps the loads.
__global__ void stream_read(const uint4* __restrict__ p, size_t n, unsigned* out) {
    unsigned acc = 0;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + 7 * stride < n; i += 8 * stride) {
        uint4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < 8; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < n; i += stride) { uint4 v = __ldcs(p + i); acc ^= v.x ^ v.y ^ v.z ^ v.w; }
    if (acc == 0x12345678u) out[blockIdx.x] = acc;
}

__global__ void fill(unsigned* p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = (unsigned)(i * 2654435761u) ^ seed;
}

struct Gemm { int n, k; };
static const Gemm kGemms[4] = {{3072, 2048}, {2048, 2048}, {16384, 2048}, {2048, 8192}};

struct Chain {
    cudaStream_t sx, sy;        // X stream and Y stream (the same in serial / streams modes)
    cublasHandle_t hy;
    const uint4* xbuf;          // this chain's K/V stand-in
    __nv_bfloat16 *a, *w, *c;   // activations, weights, output
};

static size_t g_xwords;
static int g_blocks;
static unsigned* g_sink;

static void layer_x(Chain& ch, double share) {
    size_t n = (size_t)(g_xwords * share);
    stream_read<<<g_blocks, 512, 0, ch.sx>>>(ch.xbuf, n, g_sink);
    CK(cudaGetLastError());
}

static void layer_y(Chain& ch, int rows) {
    float one = 1.f, zero = 0.f;
    for (auto g : kGemms)
        CK(cublasGemmEx(ch.hy, CUBLAS_OP_T, CUBLAS_OP_N, g.n, rows, g.k, &one, ch.w, CUDA_R_16BF, g.k, ch.a, CUDA_R_16BF, g.k,
                        &zero, ch.c, CUDA_R_16BF, g.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// One decode step: 16 layers of X then Y on each chain. With separate X / Y streams, events carry
// the chain's order (X_l -> Y_l -> X_{l+1}); chains never wait for each other inside the step.
static void step(std::vector<Chain>& chains, int rows, double share, std::vector<cudaEvent_t>& ev) {
    int e = 0;
    for (int l = 0; l < 16; l++)
        for (auto& ch : chains) {
            layer_x(ch, share);
            if (ch.sx != ch.sy) { CK(cudaEventRecord(ev[e], ch.sx)); CK(cudaStreamWaitEvent(ch.sy, ev[e], 0)); e++; }
            layer_y(ch, rows);
            if (ch.sx != ch.sy) { CK(cudaEventRecord(ev[e], ch.sy)); CK(cudaStreamWaitEvent(ch.sx, ev[e], 0)); e++; }
        }
}

struct Result { double ms, joules, watts; };

static Result run_mode(const char* name, std::vector<Chain>& chains, int rows, double share, cudaStream_t origin, nvmlDevice_t nv, bool graphed = true) {
    std::vector<cudaEvent_t> ev(256), join(8);
    for (auto& x : ev) CK(cudaEventCreateWithFlags(&x, cudaEventDisableTiming));
    for (auto& x : join) CK(cudaEventCreateWithFlags(&x, cudaEventDisableTiming));
    std::vector<cudaStream_t> others;
    for (auto& ch : chains) for (auto s : {ch.sx, ch.sy}) {
        bool seen = s == origin;
        for (auto o : others) seen |= o == s;
        if (!seen) others.push_back(s);
    }
    // One step from `origin`: fork every other stream, run the chains, join them back.
    auto enqueue = [&]() {
        CK(cudaEventRecord(join[0], origin));
        for (auto s : others) CK(cudaStreamWaitEvent(s, join[0], 0));
        step(chains, rows, share, ev);
        for (size_t i = 0; i < others.size(); i++) { CK(cudaEventRecord(join[1 + i], others[i])); CK(cudaStreamWaitEvent(origin, join[1 + i], 0)); }
    };
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    if (graphed) {
        CK(cudaStreamBeginCapture(origin, cudaStreamCaptureModeGlobal));
        enqueue();
        CK(cudaStreamEndCapture(origin, &graph));
        CK(cudaGraphInstantiate(&exec, graph, 0));
    }
    auto launch = [&]() {
        if (exec) CK(cudaGraphLaunch(exec, origin));
        else enqueue();
    };
    for (int i = 0; i < 20; i++) launch();
    CK(cudaStreamSynchronize(origin));
    cudaEvent_t t0, t1;
    CK(cudaEventCreate(&t0)); CK(cudaEventCreate(&t1));
    unsigned long long e0, e1;
    CK(nvmlDeviceGetTotalEnergyConsumption(nv, &e0));
    auto h0 = std::chrono::steady_clock::now();
    CK(cudaEventRecord(t0, origin));
    int steps = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - h0).count() < 2.5) {
        for (int i = 0; i < 20; i++) launch();
        steps += 20;
        CK(cudaStreamSynchronize(origin));
    }
    CK(cudaEventRecord(t1, origin));
    CK(cudaEventSynchronize(t1));
    CK(nvmlDeviceGetTotalEnergyConsumption(nv, &e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, t0, t1));
    Result r{ms / steps, (e1 - e0) / 1000.0 / steps, (e1 - e0) / 1000.0 / (ms / 1000.0)};
    unsigned clk = 0;
    nvmlDeviceGetClockInfo(nv, NVML_CLOCK_SM, &clk);
    printf("%-10s %s %8.3f ms/step %8.3f J/step %6.0f W  sm %u MHz (%d steps)\n", name, exec ? "graph " : "direct", r.ms, r.joules, r.watts, clk, steps);
    fflush(stdout);
    if (exec) { CK(cudaGraphExecDestroy(exec)); CK(cudaGraphDestroy(graph)); }
    return r;
}

int main(int argc, char** argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 512;             // per micro-batch
    double xmb = argc > 2 ? atof(argv[2]) : 537.0;          // X bytes per layer and micro-batch, MB
    if (rows <= 0 || xmb <= 0 || (argc > 3 && std::string(argv[3]) != "bw") || argc > 4) {
        fprintf(stderr, "usage: overlap_probe [rows > 0] [K/V MB > 0] [bw] (got rows '%s', MB '%s', mode '%s')\n",
                argc > 1 ? argv[1] : "", argc > 2 ? argv[2] : "", argc > 3 ? argv[3] : "");
        return 2;
    }
    CK(cudaSetDevice(0));
    CK(cudaFree(0));
    nvmlDevice_t nv;
    CK(nvmlInit()); CK(nvmlDeviceGetHandleByIndex(0, &nv));
    cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
    g_blocks = prop.multiProcessorCount * 4;
    g_xwords = (size_t)(xmb * 1e6) / 16;
    CK(cudaMalloc(&g_sink, g_blocks * 4));
    printf("%s, %d SMs; rows %d per micro-batch, X %.0f MB per layer and micro-batch\n", prop.name, prop.multiProcessorCount, rows, xmb);

    // Buffers: two chains' X regions (distinct, each far beyond L2), weights, activations.
    size_t wmax = 16384 * 2048, amax = (size_t)2 * rows * 8192, cmax = (size_t)2 * rows * 16384;
    auto alloc = [](size_t bytes) { void* p; CK(cudaMalloc(&p, bytes)); fill<<<1024, 256>>>((unsigned*)p, bytes / 4, (unsigned)bytes); CK(cudaGetLastError()); return p; };
    const uint4* xa = (const uint4*)alloc(g_xwords * 16 * 2);
    const uint4* xb = (const uint4*)alloc(g_xwords * 16 * 2);
    auto* w = (__nv_bfloat16*)alloc(wmax * 2);
    auto* a = (__nv_bfloat16*)alloc(amax * 2);
    auto* c0 = (__nv_bfloat16*)alloc(cmax * 2);
    auto* c1 = (__nv_bfloat16*)alloc(cmax * 2);
    // fill() wrote uint patterns; make the bf16 operands finite and small.
    CK(cudaMemset(w, 0x3c, wmax * 2)); CK(cudaMemset(a, 0x3b, amax * 2));
    CK(cudaDeviceSynchronize());

    auto handle = [](cudaStream_t s) { cublasHandle_t h; CK(cublasCreate(&h)); CK(cublasSetStream(h, s)); return h; };
    cudaStream_t s0, s1, s2, s3, hi0, hi1;
    int lo, hi;
    CK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    CK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s3, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithPriority(&hi0, cudaStreamNonBlocking, hi));
    CK(cudaStreamCreateWithPriority(&hi1, cudaStreamNonBlocking, hi));
    cublasHandle_t h0 = handle(s0), h1 = handle(s1), hh0 = handle(hi0), hh1 = handle(hi1);

    CUdevice dev; CK(cuDeviceGet(&dev, 0));
    CUdevResource all; CK(cuDeviceGetDevResource(dev, &all, CU_DEV_RESOURCE_TYPE_SM));
    if (argc > 3 && std::string(argv[3]) == "bw") {
        // Bandwidth and energy per GB of the streaming read on S SMs (a green context), the rest idle.
        const uint4* big = (const uint4*)alloc((size_t)4 << 30);
        size_t words = ((size_t)4 << 30) / 16;
        printf("%5s %9s %7s %9s %8s\n", "SMs", "GB/s", "W", "J/GB", "SM MHz");
        for (int S : {16, 24, 32, 48, 66, 88, 110, 132}) {
            CUstream st = nullptr;
            CUgreenCtx g = nullptr;
            unsigned got = prop.multiProcessorCount;
            if (S < prop.multiProcessorCount) {
                CUdevResource grp, rest; unsigned ng = 1;
                CK(cuDevSmResourceSplitByCount(&grp, &ng, &all, &rest, 0, S));
                CUdevResourceDesc d; CK(cuDevResourceGenerateDesc(&d, &grp, 1));
                CK(cuGreenCtxCreate(&g, d, dev, CU_GREEN_CTX_DEFAULT_STREAM));
                CK(cuGreenCtxStreamCreate(&st, g, CU_STREAM_NON_BLOCKING, 0));
                got = grp.sm.smCount;
            } else {
                CK(cudaStreamCreateWithFlags((cudaStream_t*)&st, cudaStreamNonBlocking));
            }
            int blocks = got * 4;
            for (int i = 0; i < 3; i++) stream_read<<<blocks, 512, 0, (cudaStream_t)st>>>(big, words, g_sink);
            CK(cudaGetLastError()); CK(cudaStreamSynchronize((cudaStream_t)st));
            unsigned long long e0, e1;
            CK(nvmlDeviceGetTotalEnergyConsumption(nv, &e0));
            auto h0 = std::chrono::steady_clock::now();
            int reps = 0;
            double sec = 0;
            while ((sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - h0).count()) < 2.5) {
                for (int i = 0; i < 10; i++) stream_read<<<blocks, 512, 0, (cudaStream_t)st>>>(big, words, g_sink);
                reps += 10;
                CK(cudaStreamSynchronize((cudaStream_t)st));
            }
            sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - h0).count();
            CK(nvmlDeviceGetTotalEnergyConsumption(nv, &e1));
            double gb = reps * 4.0 * (1 << 30) / 1e9, j = (e1 - e0) / 1000.0;
            unsigned clk = 0; nvmlDeviceGetClockInfo(nv, NVML_CLOCK_SM, &clk);
            printf("%5u %9.0f %7.0f %9.4f %8u\n", got, gb / sec, j / sec, j / gb, clk);
            fflush(stdout);
        }
        return 0;
    }
    std::vector<Result> res;
    {   // serial1: one chain of 2*rows rows reading both X regions' worth
        std::vector<Chain> ch{{s0, s0, h0, xa, a, w, c0}};
        res.push_back(run_mode("serial1", ch, 2 * rows, 2.0, s0, nv));
    }
    {
        std::vector<Chain> ch{{s0, s0, h0, xa, a, w, c0}, {s0, s0, h0, xb, a + (size_t)rows * 8192, w, c1}};
        res.push_back(run_mode("serial2", ch, rows, 1.0, s0, nv));
    }
    {
        std::vector<Chain> ch{{s0, s0, h0, xa, a, w, c0}, {s1, s1, h1, xb, a + (size_t)rows * 8192, w, c1}};
        res.push_back(run_mode("streams", ch, rows, 1.0, s0, nv));
    }
    {
        std::vector<Chain> ch{{s0, hi0, hh0, xa, a, w, c0}, {s1, hi1, hh1, xb, a + (size_t)rows * 8192, w, c1}};
        res.push_back(run_mode("prio", ch, rows, 1.0, s0, nv));
    }
    // Green contexts: Y on S SMs, X on the rest.
    for (int S : {48, 64, 80}) {
        CUdevResource grp, rest; unsigned ng = 1;
        CUresult r = cuDevSmResourceSplitByCount(&grp, &ng, &all, &rest, 0, S);
        if (r != CUDA_SUCCESS || ng != 1) { printf("green-%d split failed: %d\n", S, (int)r); continue; }
        CUdevResourceDesc dy, dx;
        CK(cuDevResourceGenerateDesc(&dy, &grp, 1)); CK(cuDevResourceGenerateDesc(&dx, &rest, 1));
        CUgreenCtx gy, gx;
        CK(cuGreenCtxCreate(&gy, dy, dev, CU_GREEN_CTX_DEFAULT_STREAM)); CK(cuGreenCtxCreate(&gx, dx, dev, CU_GREEN_CTX_DEFAULT_STREAM));
        CUstream y0, y1, x0, x1;
        CK(cuGreenCtxStreamCreate(&y0, gy, CU_STREAM_NON_BLOCKING, 0)); CK(cuGreenCtxStreamCreate(&y1, gy, CU_STREAM_NON_BLOCKING, 0));
        CK(cuGreenCtxStreamCreate(&x0, gx, CU_STREAM_NON_BLOCKING, 0)); CK(cuGreenCtxStreamCreate(&x1, gx, CU_STREAM_NON_BLOCKING, 0));
        printf("green-%d: Y on %u SMs, X on %u\n", S, grp.sm.smCount, rest.sm.smCount);
        cublasHandle_t gh0 = handle(y0), gh1 = handle(y1);
        std::vector<Chain> ch{{x0, y0, gh0, xa, a, w, c0}, {x1, y1, gh1, xb, a + (size_t)rows * 8192, w, c1}};
        std::string name = "green-" + std::to_string(S);
        res.push_back(run_mode(name.c_str(), ch, rows, 1.0, s0, nv, false));
        res.push_back(run_mode(name.c_str(), ch, rows, 1.0, s0, nv, true));
        cublasDestroy(gh0); cublasDestroy(gh1);
    }
    printf("relative to serial1: ");
    for (auto& r : res) if (r.ms > 0) printf(" %.3f/%.3f", r.ms / res[0].ms, r.joules / res[0].joules);
    printf("  (time/energy)\n");
    return 0;
}
