#pragma once
// Device helpers shared by the kernels: loads of stored float types, warp reductions, affine dequantization.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace pensieve::backend::cuda {

__device__ __forceinline__ float Bf16Bits(uint16_t b) { return __uint_as_float(uint32_t{b} << 16); }
__device__ __forceinline__ float F16Bits(uint16_t b) { return __half2float(__ushort_as_half(b)); }

// 16 bytes from global to shared memory without a register (cp.async, bypassing L1); the copies a thread
// issued before CommitAsync() form a group, and WaitAsync<N>() returns once at most N of its groups are pending.
__device__ __forceinline__ void CopyAsync16(void* smem, const void* global) {
  const auto s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(global));
}
__device__ __forceinline__ void CommitAsync() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void WaitAsync() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");  // later shared-memory reads stay after it
}

// Element i of a float array stored as `type`.
__device__ __forceinline__ float LoadAs(FloatType type, const void* base, int64_t i) {
  if (type == FloatType::kF32) return static_cast<const float*>(base)[i];
  const uint16_t b = static_cast<const uint16_t*>(base)[i];
  return type == FloatType::kBF16 ? Bf16Bits(b) : F16Bits(b);
}

// W[r, c] as f32 for any MatRef (the generic path: one element at a time, bit streams of any width).
__device__ __forceinline__ float WeightAt(const MatRef& w, int64_t r, int64_t c) {
  if (w.kind == MatRef::Kind::kFloat) return LoadAs(w.type, w.data, r * w.cols + c);
  if (w.tiled) {  // 4-bit in 16 x 64 tiles (gemv_tiled.cu): lane g*4 + t, word per 16 columns, nibble p
    const int64_t rr = r & 15, cc = c & 63, kk = cc & 15, groups = w.cols / w.group_size, g = rr & 7;
    const int64_t lane = g * 4 + ((kk & 7) >> 1), nib = (rr >> 3) + 2 * (kk >> 3) + 4 * (kk & 1);
    const uint32_t word = static_cast<const uint32_t*>(w.data)[(((r >> 4) * (w.cols / 64) + (c >> 6)) * 32 + lane) * 4 + (cc >> 4)];
    const uint32_t q = (word >> (4 * nib)) & 15u;
    const int64_t at = (((r >> 4) * groups + c / w.group_size) * 8 + g) * 2 + (rr >> 3);  // 16-bit units
    const float scale = LoadAs(w.type, w.scales, at);
    const float bias = w.biases ? LoadAs(w.type, w.biases, at) : 0.0f;
    return __fadd_rn(__fmul_rn(scale, static_cast<float>(q)), bias);
  }
  const uint32_t* words = static_cast<const uint32_t*>(w.data) + r * (w.cols * w.bits / 32);
  const int64_t bit = c * w.bits;
  uint64_t pair = words[bit / 32];
  if (bit % 32 + w.bits > 32) pair |= uint64_t{words[bit / 32 + 1]} << 32;
  const uint32_t q = static_cast<uint32_t>(pair >> (bit % 32)) & ((1u << w.bits) - 1);
  const int64_t g = r * (w.cols / w.group_size) + c / w.group_size;
  const float scale = LoadAs(w.type, w.scales, g);
  const float bias = w.biases ? LoadAs(w.type, w.biases, g) : 0.0f;
  return __fadd_rn(__fmul_rn(scale, static_cast<float>(q)), bias);  // as the cpu: no fused multiply-add
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double WarpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of up to 1024 threads (blockDim.x a multiple of 32); every thread gets the result.
// `shared`: 32 doubles. Deterministic: fixed order.
__device__ __forceinline__ double BlockSumD(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = WarpSumD(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double t = 0;
  for (int i = 0; i < warps; ++i) t += shared[i];
  return t;
}

// 1 / sqrt(mean(x^2) + eps) of one row of `dim` floats, by a whole block: the sums in double, in one fixed
// order, so that every kernel normalising a row (RmsNormKernel, the fused norm of gemv_tiled.cu) gets the same
// bits. Where the row fits the block four floats per thread (*held), v holds this thread's four.
__device__ __forceinline__ float RowInvRms(const float* xr, int64_t dim, float eps, float4& v, bool& held, double* shared) {
  held = dim % 4 == 0 && dim <= 4 * static_cast<int64_t>(blockDim.x);
  v = make_float4(0, 0, 0, 0);
  double ss = 0;
  if (held) {
    if (4 * threadIdx.x < dim) v = reinterpret_cast<const float4*>(xr)[threadIdx.x];
    ss = double{v.x} * v.x + double{v.y} * v.y + double{v.z} * v.z + double{v.w} * v.w;
  } else {
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += double{xr[i]} * xr[i];
  }
  ss = BlockSumD(ss, shared);
  return 1.0f / sqrtf(static_cast<float>(ss / dim) + eps);
}

// Threads of a block normalising rows of `dim` (RowInvRms): four floats each where that fits.
inline int RmsNormThreads(int64_t dim) { return static_cast<int>(std::clamp<int64_t>((dim / 4 + 31) / 32 * 32, 64, 1024)); }

// The gated MLP's activation: SiLU, or GELU with the tanh approximation.
__device__ __forceinline__ float Act(Glu g, float v) {
  if (g == Glu::kSilu) return v / (1.0f + expf(-v));
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * v * (1.0f + tanhf(kC * (v + 0.044715f * v * v * v)));
}

// c += a b on tensor cores: mma.m16n8k16 with bf16 operands (a: the 16 x 16 A fragment, b: the 16 x 8 B
// fragment, two bf16 per register) and f32 sums (c: the 16 x 8 accumulator fragment).
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint2 b) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y));
}

__host__ __device__ inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace pensieve::backend::cuda
