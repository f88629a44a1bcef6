// How fast can warps stream a decode matmul's weights from HBM on this GPU, by size and by how the loads are
// kept in flight? Each warp reads its own contiguous run of 512-byte rows (16 bytes per lane, as the tiled
// decode kernel reads its tiles) and folds them into a checksum:
//   ldg U:       U 16-byte loads per lane per batch into registers, two batches in flight (the tiled kernel's
//                scheme: gemv_tiled.cu);
//   cp.async S:  batches of 4 rows copied to shared memory through a ring of S stages (S - 1 in flight).
// Every repetition reads a different window of a 4 GiB buffer, so nothing is served from the 50 MB L2, and
// each configuration runs as one CUDA graph of back-to-back kernels, as a decode step does.
//   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o stream_probe tools/gpu/stream_probe.cu && ./stream_probe
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

__device__ __forceinline__ uint32_t Fold(uint4 v) { return (v.x ^ v.y) + (v.z ^ v.w); }

template <int U>
__global__ void LdgKernel(const uint4* base, int64_t rows_per_warp, uint32_t* out) {
  const int lane = threadIdx.x & 31;
  const int64_t gw = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const uint4* p = base + gw * rows_per_warp * 32 + lane;
  uint4 a[U], b[U];
  uint32_t acc = 0;
  const int64_t n = rows_per_warp;
#pragma unroll
  for (int j = 0; j < U; ++j) a[j] = __ldg(p + j * 32);
  for (int64_t it = 0; it < n; it += 2 * U) {
    if (it + U < n)
#pragma unroll
      for (int j = 0; j < U; ++j) b[j] = __ldg(p + (it + U + j) * 32);
#pragma unroll
    for (int j = 0; j < U; ++j) acc += Fold(a[j]);
    if (it + U >= n) break;
    if (it + 2 * U < n)
#pragma unroll
      for (int j = 0; j < U; ++j) a[j] = __ldg(p + (it + 2 * U + j) * 32);
#pragma unroll
    for (int j = 0; j < U; ++j) acc += Fold(b[j]);
  }
  if (acc == 0x12345678u) out[gw] = acc;  // keeps the loads live
}

__device__ __forceinline__ void CopyAsync(void* smem, const void* g) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(g));
}

template <int S>
__global__ void AsyncKernel(const uint4* base, int64_t rows_per_warp, uint32_t* out) {
  constexpr int U = 4;  // rows per stage
  extern __shared__ uint4 ring[];  // [warp][S][U][32]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t gw = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const uint4* p = base + gw * rows_per_warp * 32 + lane;
  uint4* mine = ring + warp * S * U * 32 + lane;
  const int64_t batches = rows_per_warp / U;
  const auto issue = [&](int64_t bt) {
    if (bt < batches)
#pragma unroll
      for (int j = 0; j < U; ++j) CopyAsync(mine + ((bt % S) * U + j) * 32, p + (bt * U + j) * 32);
    asm volatile("cp.async.commit_group;\n" ::);
  };
  for (int s = 0; s < S - 1; ++s) issue(s);
  uint32_t acc = 0;
  for (int64_t bt = 0; bt < batches; ++bt) {
    issue(bt + S - 1);
    asm volatile("cp.async.wait_group %0;\n" ::"n"(S - 1));
#pragma unroll
    for (int j = 0; j < U; ++j) acc += Fold(mine[((bt % S) * U + j) * 32]);
  }
  if (acc == 0x12345678u) out[gw] = acc;
}

int main() {
  const int64_t kBuffer = int64_t{4} << 30;
  char* buf;
  uint32_t* out;
  if (cudaMalloc(&buf, kBuffer) != cudaSuccess) return 1;
  cudaMalloc(&out, 1 << 24);
  cudaMemset(buf, 0x5a, kBuffer);
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  const int kReps = 40;

  struct Size {
    const char* what;
    int64_t bytes;
  };
  const Size sizes[] = {{"o 8.4MB", 8388608}, {"qkv 12.6MB", 12582912}, {"down 33MB", 33030144},
                        {"glu 66MB", 66060288}, {"lm_head 296MB", 295698432}};
  // kind 0: ldg U=4, 1: ldg U=8, 2: cp.async S=4, 3: cp.async S=8
  const char* kinds[] = {"ldg U=4", "ldg U=8", "async S=4", "async S=8"};
  std::printf("%-14s %-10s %6s %8s %8s\n", "size", "kind", "w/SM", "us", "TB/s");
  for (const Size& z : sizes)
    for (int kind = 0; kind < 4; ++kind)
      for (int wps : {4, 8, 16, 32}) {
        const int warps_per_block = 4;
        const int blocks = sms * wps / warps_per_block;
        const int64_t warps = int64_t{blocks} * warps_per_block;
        int64_t rows = z.bytes / 512 / warps;
        rows = rows / 8 * 8;
        if (rows < 8) continue;
        const int64_t bytes = rows * 512 * warps;
        const int S = kind == 2 ? 4 : 8;
        const size_t smem = kind >= 2 ? static_cast<size_t>(warps_per_block) * S * 4 * 512 : 0;
        if (kind == 2) cudaFuncSetAttribute(AsyncKernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200000);
        if (kind == 3) cudaFuncSetAttribute(AsyncKernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200000);
        cudaGraph_t g;
        cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
        for (int r = 0; r < kReps; ++r) {
          const int64_t off = (static_cast<int64_t>(r) * (bytes + (1 << 20))) % (kBuffer - bytes) / 4096 * 4096;
          const uint4* b = reinterpret_cast<const uint4*>(buf + off);
          if (kind == 0) LdgKernel<4><<<blocks, warps_per_block * 32, 0, s>>>(b, rows, out);
          if (kind == 1) LdgKernel<8><<<blocks, warps_per_block * 32, 0, s>>>(b, rows, out);
          if (kind == 2) AsyncKernel<4><<<blocks, warps_per_block * 32, smem, s>>>(b, rows, out);
          if (kind == 3) AsyncKernel<8><<<blocks, warps_per_block * 32, smem, s>>>(b, rows, out);
        }
        cudaStreamEndCapture(s, &g);
        cudaGraphExec_t ge;
        if (cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
          std::printf("%-14s %-10s %6d  (failed: %s)\n", z.what, kinds[kind], wps, cudaGetErrorString(cudaGetLastError()));
          continue;
        }
        cudaGraphLaunch(ge, s);  // warm-up
        cudaEventRecord(e0, s);
        cudaGraphLaunch(ge, s);
        cudaEventRecord(e1, s);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        const cudaError_t err = cudaGetLastError();
        const double us = ms * 1000.0 / kReps;
        std::printf("%-14s %-10s %6d %8.2f %8.2f%s\n", z.what, kinds[kind], wps, us, bytes / us / 1e6,
                    err == cudaSuccess ? "" : cudaGetErrorString(err));
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
      }
  return 0;
}
