// Row-wise kernels: embedding lookup, RMSNorm, gathering the logit rows, and the step before attention
// (per-head q/k RMSNorm, rope, K/V stored in the cache). Arithmetic follows the cpu backend's order: sums of
// squares in double, the rope angle formed in f32 and its cos/sin in double, no fused multiply-adds where the
// cpu has none.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

namespace pensieve::backend::cuda {
namespace {

// Blocks (row, slice of the columns): a decode step's single row is spread over many multiprocessors.
__global__ void EmbedKernel(MatRef table, StepView step, float* out) {
  WaitPrevious();
  StartNext();
  const int64_t t = blockIdx.x;
  const int32_t id = step.tokens[t];
  for (int64_t c = blockIdx.y * int64_t{blockDim.x} + threadIdx.x; c < table.cols; c += int64_t{gridDim.y} * blockDim.x)
    out[t * table.cols + c] = WeightAt(table, id, c);
}

// One block per row (RowInvRms): a row of up to 4 floats per thread stays in registers between the sum of
// squares and the scaling: one read of x.
__global__ void RmsNormKernel(const float* x, const float* w, float eps, float* y, int64_t dim) {
  __shared__ double shared[32];
  WaitPrevious();
  StartNext();
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float4 v;
  bool held;
  const float inv = RowInvRms(xr, dim, eps, v, held, shared);
  if (held) {
    if (4 * threadIdx.x >= dim) return;
    const float4 g = reinterpret_cast<const float4*>(w)[threadIdx.x];
    reinterpret_cast<float4*>(y + r * dim)[threadIdx.x] =
        make_float4(__fmul_rn(__fmul_rn(v.x, inv), g.x), __fmul_rn(__fmul_rn(v.y, inv), g.y),
                    __fmul_rn(__fmul_rn(v.z, inv), g.z), __fmul_rn(__fmul_rn(v.w, inv), g.w));
    return;
  }
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) y[r * dim + i] = __fmul_rn(__fmul_rn(xr[i], inv), w[i]);
}

__global__ void GatherKernel(const float* x, int64_t cols, StepView step, float* out) {
  WaitPrevious();
  StartNext();
  const int64_t r = blockIdx.x;
  const int64_t src = step.logit_rows[r];
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[r * cols + c] = x[src * cols + c];
}

// Where position p of a row's item is stored: (block, slot). Padding rows use the scratch block's slot 0.
__device__ __forceinline__ int64_t KvSlot(const StepView& s, const KvView& kv, int64_t t, int64_t* slot) {
  const int32_t item = s.row_item[t];
  if (item < 0) {
    *slot = 0;
    return kv.blocks - 1;
  }
  const int32_t p = s.pos[t];
  *slot = p % kv.block_tokens;
  return s.tables[static_cast<int64_t>(item) * s.header[1] + p / kv.block_tokens];
}

__device__ __forceinline__ int64_t KvOffset(const KvView& kv, int layer, int64_t block, int which, int head, int64_t slot) {
  return ((((static_cast<int64_t>(layer) * kv.blocks + block) * 2 + which) * kv.kv_heads + head) * kv.block_tokens +
          slot) *
         kv.head_dim;
}

__device__ __forceinline__ void StoreKv(const KvView& kv, int64_t off, int d, float v) {
  if (kv.bf16) {
    static_cast<__nv_bfloat16*>(kv.data)[off + d] = __float2bfloat16_rn(v);
  } else {
    static_cast<float*>(kv.data)[off + d] = v;
  }
}

// Blocks (row, part): first the row's cos and sin, then warp w of part p takes job p * warps + w: a head of q
// (in place), of k (to the cache) or of v (copied). Many small blocks rather than one per row: a decode step
// has a single row, whose 48-odd heads would otherwise go through one multiprocessor one after another.
__global__ void PrepareKernel(PrepareArgs a, StepView step, KvView kv) {
  extern __shared__ float buf[];  // [warps][head_dim], then cos and sin [rotary_dim / 2] each
  WaitPrevious();
  StartNext();
  const int64_t t = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float* v = buf + warp * a.head_dim;
  const int hd = a.head_dim, half = a.rotary_dim / 2;
  float* cs = buf + warps * hd;
  float* sn = cs + half;
  int64_t slot;
  const int64_t block = KvSlot(step, kv, t, &slot);
  const bool long_rope = a.inv_freq_long && step.long_rope[t];
  const float* inv_freq = long_rope ? a.inv_freq_long : a.inv_freq;
  const float pos = static_cast<float>(step.pos[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = __fmul_rn(pos, inv_freq[i]);
    double s, c;
    sincos(static_cast<double>(angle), &s, &c);
    cs[i] = __fmul_rn(static_cast<float>(c), a.attention_factor);
    sn[i] = __fmul_rn(static_cast<float>(s), a.attention_factor);
  }
  __syncthreads();
  const int jobs = a.n_heads + 2 * a.n_kv_heads;
  for (int j = blockIdx.y * warps + warp; j < jobs; j += warps * gridDim.y) {
    if (j >= a.n_heads + a.n_kv_heads) {  // v: straight into the cache
      const int h = j - a.n_heads - a.n_kv_heads;
      const float* src = a.v + (t * a.n_kv_heads + h) * hd;
      const int64_t off = KvOffset(kv, a.layer, block, 1, h, slot);
      for (int d = lane; d < hd; d += 32) StoreKv(kv, off, d, src[d]);
      continue;
    }
    const bool is_q = j < a.n_heads;
    const int h = is_q ? j : j - a.n_heads;
    const float* src = is_q ? a.q + (t * a.n_heads + h) * hd : a.k + (t * a.n_kv_heads + h) * hd;
    for (int d = lane; d < hd; d += 32) v[d] = src[d];
    __syncwarp();
    if (a.q_norm) {
      double ss = 0;
      for (int d = lane; d < hd; d += 32) ss += double{v[d]} * v[d];
      ss = WarpSumD(ss);
      const float inv = 1.0f / sqrtf(static_cast<float>(ss / hd) + a.eps);
      const float* w = is_q ? a.q_norm : a.k_norm;
      __syncwarp();
      for (int d = lane; d < hd; d += 32) v[d] = __fmul_rn(__fmul_rn(v[d], inv), w[d]);
      __syncwarp();
    }
    for (int i = lane; i < half; i += 32) {
      const float c = cs[i], s = sn[i];
      const float x0 = v[i], x1 = v[i + half];
      v[i] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
      v[i + half] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
    }
    __syncwarp();
    if (is_q) {
      for (int d = lane; d < hd; d += 32) a.q[(t * a.n_heads + h) * hd + d] = v[d];
    } else {
      const int64_t off = KvOffset(kv, a.layer, block, 0, h, slot);
      for (int d = lane; d < hd; d += 32) StoreKv(kv, off, d, v[d]);
    }
    __syncwarp();
  }
}

}  // namespace

void LaunchEmbed(const MatRef& table, StepView step, int64_t T, float* out, cudaStream_t stream) {
  const unsigned slices = static_cast<unsigned>(std::min<int64_t>(CeilDiv(table.cols, 256), 32));
  Launch(EmbedKernel, dim3(static_cast<unsigned>(T), slices), dim3(256), 0, stream, table, step, out);
}

void LaunchRmsNorm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t dim, cudaStream_t stream) {
  Launch(RmsNormKernel, dim3(static_cast<unsigned>(rows)), dim3(RmsNormThreads(dim)), 0, stream, x, w, eps, y, dim);
}

void LaunchGatherRows(const float* x, int64_t cols, StepView step, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return;
  Launch(GatherKernel, dim3(static_cast<unsigned>(n)), dim3(256), 0, stream, x, cols, step, out);
}

void LaunchPrepareAttention(const PrepareArgs& a, StepView step, KvView kv, int64_t T, cudaStream_t stream) {
  constexpr int kWarps = 4;
  const size_t smem = (static_cast<size_t>(kWarps) * a.head_dim + a.rotary_dim) * sizeof(float);
  const int parts = static_cast<int>(CeilDiv(a.n_heads + 2 * a.n_kv_heads, kWarps));
  Launch(PrepareKernel, dim3(static_cast<unsigned>(T), static_cast<unsigned>(parts)), dim3(kWarps * 32), smem, stream,
         a, step, kv);
}

}  // namespace pensieve::backend::cuda
