// Attention over the paged KV cache, for prefill chunks and decode rows alike.
//
// A block takes one tile (up to 16 (row, head) pairs: consecutive rows of one item times the query heads of
// one kv head that the tile covers) and one split of the tile's key range. Keys and values stream through
// shared memory 32 at a time, converted to f32; each warp owns up to four pairs, scores 32 keys at once (a key
// per lane), and keeps an online softmax (running max and sum) with the output dimensions spread over its
// lanes. With several splits (long contexts and few rows: decode) each block writes its unnormalised output
// with its max and sum, and a second kernel merges the splits.
#include <cuda_runtime.h>

#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

constexpr int kPairs = 16;       // (row, head) pairs per tile
constexpr int kKeys = 32;        // keys per shared-memory tile
constexpr int kWarps = 4;
constexpr int kDims = kMaxHeadDim / 32;  // output dims per lane
constexpr int kCombineThreads = 128;     // CombineKernel: a thread per split, so also the most splits it takes
constexpr int kKeysPerSplit = 16;        // fewest keys a split of the key range takes (decode: many short splits)

__device__ __forceinline__ int64_t KvOffset(const KvView& kv, int layer, int64_t block, int which, int head) {
  return (((static_cast<int64_t>(layer) * kv.blocks + block) * 2 + which) * kv.kv_heads + head) *
         static_cast<int64_t>(kv.block_tokens) * kv.head_dim;
}

// Four consecutive elements of a key or value row as f32 (rows are contiguous, head_dim a multiple of 4).
template <bool kBf16>
__device__ __forceinline__ float4 Load4(const KvView& kv, int64_t i) {
  if constexpr (kBf16) {
    const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const __nv_bfloat16*>(kv.data) + i);
    return make_float4(__uint_as_float(raw.x << 16), __uint_as_float(raw.x & 0xFFFF0000u),
                       __uint_as_float(raw.y << 16), __uint_as_float(raw.y & 0xFFFF0000u));
  } else {
    return *reinterpret_cast<const float4*>(static_cast<const float*>(kv.data) + i);
  }
}

template <bool kBf16>
__device__ __forceinline__ float Load1(const KvView& kv, int64_t i) {
  if constexpr (kBf16) {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(kv.data)[i]);
  } else {
    return static_cast<const float*>(kv.data)[i];
  }
}

template <bool kBf16>
__global__ void __launch_bounds__(kWarps * 32) AttentionKernel(AttentionLaunch a, StepView step, KvView kv) {
  extern __shared__ float smem[];
  const int hd = a.head_dim, ks = hd | 1;  // odd key stride: lanes reading different keys hit different banks
  float* qs = smem;                        // [kPairs][hd]
  float* kt = qs + kPairs * hd;            // [kKeys][ks]
  float* vt = qs + (kPairs * hd + kKeys * ks + 3) / 4 * 4;  // [kKeys][hd], 16-byte aligned
  __shared__ int64_t key_base[kKeys];      // offset of key j's K row in the storage (its V row: + v_offset)
  WaitPrevious();
  StartNext();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  const int group = a.n_heads / a.n_kv_heads;
  const int nsub = (group + a.heads_per_tile - 1) / a.heads_per_tile;
  const int kvh = blockIdx.y / nsub, sub = blockIdx.y % nsub;
  const int h0 = kvh * group + sub * a.heads_per_tile;
  const int nh = min(a.heads_per_tile, group - sub * a.heads_per_tile);
  const int r0 = step.tiles[2 * blockIdx.x], nr = step.tiles[2 * blockIdx.x + 1];
  const int pairs = nr * nh;
  const int split = blockIdx.z;

  const int32_t item = step.row_item[r0];
  const int32_t* table = item >= 0 ? step.tables + static_cast<int64_t>(item) * step.header[1] : nullptr;
  int lo = INT_MAX, hi = -1;
  for (int i = 0; i < nr; ++i) {
    const int p = step.pos[r0 + i];
    lo = min(lo, a.window > 0 ? max(0, p - a.window + 1) : 0);
    hi = max(hi, p);
  }
  const int64_t len = hi - lo + 1;
  // The launch has room for gridDim.z splits; short ranges use fewer (each at least kKeysPerSplit keys), the
  // rest report "nothing seen" to the combine step. The grid stays the same whatever the length, so a
  // recorded decode step stays valid as the context grows.
  const int64_t fill = (len + kKeysPerSplit - 1) / kKeysPerSplit;
  const int splits = static_cast<int>(fill < 1 ? 1 : fill < static_cast<int64_t>(gridDim.z) ? fill : gridDim.z);
  if (split >= splits) {
    for (int pair = warp; pair < pairs; pair += kWarps) {
      const int64_t row = r0 + pair / nh, head = h0 + pair % nh;
      float* part = a.partial + ((static_cast<int64_t>(split) * a.T + row) * a.n_heads + head) * (hd + 2);
      if (lane == 0) part[hd] = -INFINITY, part[hd + 1] = 0.0f;
    }
    return;
  }
  const int kb = lo + static_cast<int>(len * split / splits), ke = lo + static_cast<int>(len * (split + 1) / splits);
  const int64_t v_offset = static_cast<int64_t>(kv.block_tokens) * hd * kv.kv_heads;  // V follows K in a block

  for (int i = threadIdx.x; i < pairs * hd; i += blockDim.x) {
    const int pair = i / hd, d = i % hd;
    const int row = r0 + pair / nh, head = h0 + pair % nh;
    qs[i] = a.q[(static_cast<int64_t>(row) * a.n_heads + head) * hd + d] * a.scale;
  }

  float m[kPairs / kWarps], l[kPairs / kWarps], o[kPairs / kWarps][kDims];
  int ppos[kPairs / kWarps];
#pragma unroll
  for (int i = 0; i < kPairs / kWarps; ++i) {
    m[i] = -INFINITY, l[i] = 0.0f;
    const int pair = warp + i * kWarps;
    ppos[i] = pair < pairs ? step.pos[r0 + pair / nh] : -1;
#pragma unroll
    for (int dd = 0; dd < kDims; ++dd) o[i][dd] = 0.0f;
  }

  const int bt = kv.block_tokens;
  const bool vec = hd % 4 == 0;
  for (int k0 = kb; k0 < ke; k0 += kKeys) {
    const int nk = min(kKeys, ke - k0);
    __syncthreads();  // the previous tile is consumed (and, the first time, qs is written)
    if (threadIdx.x < nk) {
      const int key = k0 + threadIdx.x;
      const int64_t block = table ? table[key / bt] : kv.blocks - 1;  // padding rows: the scratch block
      key_base[threadIdx.x] = KvOffset(kv, a.layer, block, 0, kvh) + static_cast<int64_t>(table ? key % bt : 0) * hd;
    }
    __syncthreads();
    if (vec) {
      const int per_key = hd / 4;
      for (int i = threadIdx.x; i < nk * per_key; i += blockDim.x) {
        const int j = i / per_key, d = (i - j * per_key) * 4;
        const float4 k4 = Load4<kBf16>(kv, key_base[j] + d), v4 = Load4<kBf16>(kv, key_base[j] + v_offset + d);
        float* kr = kt + j * ks + d;
        kr[0] = k4.x, kr[1] = k4.y, kr[2] = k4.z, kr[3] = k4.w;
        *reinterpret_cast<float4*>(vt + j * hd + d) = v4;
      }
    } else {
      for (int i = threadIdx.x; i < nk * hd; i += blockDim.x) {
        const int j = i / hd, d = i - j * hd;
        kt[j * ks + d] = Load1<kBf16>(kv, key_base[j] + d);
        vt[j * hd + d] = Load1<kBf16>(kv, key_base[j] + v_offset + d);
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kPairs / kWarps; ++i) {
      const int pair = warp + i * kWarps;
      if (pair >= pairs) break;
      const float* q = qs + pair * hd;
      float s = -INFINITY;
      const int key = k0 + lane;
      if (lane < nk && key <= ppos[i] && !(a.window > 0 && ppos[i] - key >= a.window)) {
        float dot = 0.0f;
        const float* k = kt + lane * ks;
        for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
        s = dot;
      }
      const float m_new = fmaxf(m[i], WarpMax(s));
      if (m_new == -INFINITY) continue;  // nothing visible yet
      const float corr = expf(m[i] - m_new);
      const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
      l[i] = l[i] * corr + WarpSum(p);
#pragma unroll
      for (int dd = 0; dd < kDims; ++dd) o[i][dd] *= corr;
      for (int j = 0; j < nk; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        const float* v = vt + j * hd;
#pragma unroll
        for (int dd = 0; dd < kDims; ++dd) {
          const int d = lane + 32 * dd;
          if (d < hd) o[i][dd] += pj * v[d];
        }
      }
      m[i] = m_new;
    }
  }

#pragma unroll
  for (int i = 0; i < kPairs / kWarps; ++i) {
    const int pair = warp + i * kWarps;
    if (pair >= pairs) break;
    const int64_t row = r0 + pair / nh, head = h0 + pair % nh;
    if (gridDim.z == 1) {
      const float inv = 1.0f / l[i];
      float* out = a.out + (row * a.n_heads + head) * hd;
#pragma unroll
      for (int dd = 0; dd < kDims; ++dd) {
        const int d = lane + 32 * dd;
        if (d < hd) out[d] = o[i][dd] * inv;
      }
    } else {
      float* part = a.partial + ((static_cast<int64_t>(split) * a.T + row) * a.n_heads + head) * (hd + 2);
#pragma unroll
      for (int dd = 0; dd < kDims; ++dd) {
        const int d = lane + 32 * dd;
        if (d < hd) part[d] = o[i][dd];
      }
      if (lane == 0) part[hd] = m[i], part[hd + 1] = l[i];
    }
  }
}

// out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s, one block per (row, head). The splits' maxima and
// weights are read in parallel (a thread per split) and kept in shared memory; splits that saw nothing (the
// room a recorded step keeps for longer contexts) are skipped.
__global__ void __launch_bounds__(kCombineThreads) CombineKernel(AttentionLaunch a) {
  __shared__ float weight[kCombineThreads];
  __shared__ float red[kCombineThreads / 32];
  __shared__ int live[kCombineThreads];
  __shared__ int count[kCombineThreads / 32];
  WaitPrevious();
  StartNext();
  const int64_t row = blockIdx.x / a.n_heads, head = blockIdx.x % a.n_heads;
  const int hd = a.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const auto part = [&](int s) { return a.partial + ((static_cast<int64_t>(s) * a.T + row) * a.n_heads + head) * (hd + 2); };
  const int s = threadIdx.x;
  const float ms = s < a.splits ? part(s)[hd] : -INFINITY;
  float mx = WarpMax(ms);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
  for (int w = 1; w < kCombineThreads / 32; ++w) mx = fmaxf(mx, red[w]);
  const float ws = ms == -INFINITY ? 0.0f : expf(ms - mx);
  float lsum = ws == 0.0f ? 0.0f : ws * part(s)[hd + 1];
  lsum = WarpSum(lsum);
  __syncthreads();  // every thread has read red[] for the maximum
  if (lane == 0) red[warp] = lsum;
  // The live splits, in order (a fixed summation order), compacted by ballot.
  const unsigned seen = __ballot_sync(0xffffffffu, ms != -INFINITY);
  if (lane == 0) count[warp] = __popc(seen);
  if (s < a.splits) weight[s] = ws;
  __syncthreads();
  int before = 0, n_live = 0;
  for (int w = 0; w < kCombineThreads / 32; ++w) {
    before += w < warp ? count[w] : 0;
    n_live += count[w];
  }
  if (ms != -INFINITY) live[before + __popc(seen & ((1u << lane) - 1))] = s;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kCombineThreads / 32; ++w) total += red[w];
  const float inv = 1.0f / total;
  for (int d = threadIdx.x; d < hd; d += kCombineThreads) {
    float acc = 0.0f;
#pragma unroll 4
    for (int i = 0; i < n_live; ++i) acc += weight[live[i]] * part(live[i])[d];
    a.out[(row * a.n_heads + head) * hd + d] = acc * inv;
  }
}

// Dynamic shared memory of a block (vt rows stay 16-byte aligned: kPairs * hd + kKeys * ks is a multiple of 4).
size_t SharedBytes(int hd) {
  const size_t ks = static_cast<size_t>(hd | 1);
  const size_t before_vt = (static_cast<size_t>(kPairs) * hd + kKeys * ks + 3) / 4 * 4;
  return (before_vt + static_cast<size_t>(kKeys) * hd) * sizeof(float);
}

}  // namespace

void PrepareKernels() {
  // Opt in to more than 48 KiB of shared memory for the largest head size.
  cudaFuncSetAttribute(AttentionKernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(SharedBytes(kMaxHeadDim)));
  cudaFuncSetAttribute(AttentionKernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(SharedBytes(kMaxHeadDim)));
}

void LaunchAttention(const AttentionLaunch& a, StepView step, KvView kv, cudaStream_t stream) {
  const int group = a.n_heads / a.n_kv_heads;
  const int nsub = (group + a.heads_per_tile - 1) / a.heads_per_tile;
  const dim3 grid(a.tiles, a.n_kv_heads * nsub, a.splits);
  const size_t smem = SharedBytes(a.head_dim);
  Launch(kv.bf16 ? AttentionKernel<true> : AttentionKernel<false>, grid, dim3(kWarps * 32), smem, stream, a, step, kv);
  LaunchCombine(a, stream);
}

void LaunchCombine(const AttentionLaunch& a, cudaStream_t stream) {
  if (a.splits > kCombineThreads) throw Error("cuda attention: more key-range splits than the combine step takes");
  if (a.splits > 1) Launch(CombineKernel, dim3(static_cast<unsigned>(a.T * a.n_heads)), dim3(kCombineThreads), 0, stream, a);
}

}  // namespace pensieve::backend::cuda
