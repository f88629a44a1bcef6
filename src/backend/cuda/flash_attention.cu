// Attention on tensor cores (the flash-attention scheme) over the paged bf16 KV cache.
//
// A block of four warps takes the query rows of one flash tile: its tokens (consecutive rows of one item) times
// the G query heads that share one kv head, row r being token r / G, head r % G, so every K/V tile loaded
// serves the whole group. Keys stream through shared memory 64 at a time, K and V rows fetched with cp.async
// (two stages: the next tile loads while this one is used). A warp computes S = Q K^T for 16 rows with
// mma.m16n8k16 (Q scaled by scale * log2 e and rounded to bf16 once, kept in registers; K as the B operand
// through ldmatrix), keeps the online softmax in base 2 on S's accumulator registers, then O += P V with P
// (rounded to bf16) taken straight from those registers as the A operand and V through ldmatrix.trans. Sums
// stay f32. Shared-memory rows are padded by 16 bytes so that the eight rows an ldmatrix reads fall in
// different banks.
//
// Prefill (many rows): 64 rows per block, a warp's 16 rows against all 64 keys of each tile, one pass over the
// keys. Decode (a row per sequence, long contexts): 16 rows per block, the four warps each take 16 keys of
// every tile and merge their softmax states through shared memory at the end; the key range is split over
// gridDim.z blocks (as many as the length fills, at least a tile each) whose partial results LaunchCombine
// merges, so that a long context keeps every multiprocessor streaming K and V.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

constexpr int kRows = 64;        // query rows of a prefill block (a decode block: 16)
constexpr int kDecodeRows = 16;
constexpr int kKeys = 64;        // keys of a shared-memory tile, and the fewest a decode split takes
constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

template <int HD>
struct Layout {
  static constexpr int kStride = HD + 8;                 // bf16 elements per shared row
  static constexpr int kTile = kKeys * kStride;          // one K or V tile
  static constexpr size_t kBytes = 2 * 2 * kTile * 2;    // two stages of K and V
};

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes from global to shared memory in the background; zeros when !fill.
__device__ __forceinline__ void CopyAsync(uint32_t dst, const void* src, bool fill) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(fill ? 16 : 0));
}
__device__ __forceinline__ void CommitCopies() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void WaitCopies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
// Four 8 x 8 bf16 matrices; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void LoadMatrices(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void LoadMatricesT(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int HD, bool kDecode>
__global__ void __launch_bounds__(kWarps * 32, 2) FlashKernel(AttentionLaunch a, StepView step, KvView kv) {
  using L = Layout<HD>;
  constexpr int kN = kDecode ? 2 : kKeys / 8;  // 8-key accumulators of a warp per tile
  extern __shared__ __align__(16) uint16_t smem[];  // [stage][K, V][kKeys][kStride]
  WaitPrevious();
  StartNext();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int row0 = kDecode ? 0 : warp * 16;  // the warp's first row
  const int kofs = kDecode ? warp * 16 : 0;  // its first key of each tile
  const int G = a.n_heads / a.n_kv_heads, kvh = blockIdx.y;
  const int r0 = step.flash_tiles[2 * blockIdx.x], nr = step.flash_tiles[2 * blockIdx.x + 1];
  const int rows = nr * G;  // live rows of the block
  const int32_t item = step.row_item[r0];
  const int32_t* table = item >= 0 ? step.tables + static_cast<int64_t>(item) * step.header[1] : nullptr;
  const auto out_of = [&](int r) {  // (row, head) of block row r: its offset in q, out and the partials
    return static_cast<int64_t>(r0 + r / G) * a.n_heads + kvh * G + r % G;
  };

  // The block's key range [kb, ke): the tile's visible keys, or this split's share of them.
  int lo = INT_MAX, hi = -1, min_pos = INT_MAX;
  for (int i = 0; i < nr; ++i) {
    const int p = step.pos[r0 + i];
    lo = min(lo, a.window > 0 ? max(0, p - a.window + 1) : 0);
    hi = max(hi, p), min_pos = min(min_pos, p);
  }
  int kb = lo, ke = hi + 1;
  if (kDecode) {
    // The grid has room for gridDim.z splits; short ranges use fewer (a tile each at least) and the rest report
    // "nothing seen", so a recorded decode step stays valid as the context grows.
    const int len = hi - lo + 1, splits = max(1, min((len + kKeys - 1) / kKeys, static_cast<int>(gridDim.z)));
    const int split = blockIdx.z;
    if (split >= splits) {
      if (gridDim.z > 1 && threadIdx.x < rows) {
        float* part = a.partial + (static_cast<int64_t>(split) * a.T * a.n_heads + out_of(threadIdx.x)) * (HD + 2);
        part[HD] = -INFINITY, part[HD + 1] = 0.0f;
      }
      return;
    }
    kb = lo + static_cast<int>(static_cast<int64_t>(len) * split / splits);
    ke = lo + static_cast<int>(static_cast<int64_t>(len) * (split + 1) / splits);
  }
  int pos[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row0 + g + 8 * h;
    pos[h] = r < rows ? step.pos[r0 + r / G] : -1;  // rows past the tile see nothing
  }

  // Q fragments (A operands), scaled and rounded once.
  uint32_t qa[HD / 16][4];
  {
    const float s = a.scale * kLog2e;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row0 + g + 8 * h;
      const float* q = r < rows ? a.q + out_of(r) * HD : nullptr;
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int d = 16 * kk + 8 * half + 2 * t;
          const float2 v = q ? *reinterpret_cast<const float2*>(q + d) : make_float2(0.0f, 0.0f);
          qa[kk][h + 2 * half] = PackBf16(v.x * s, v.y * s);
        }
      }
    }
  }

  float o[HD / 8][4];
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  const uint16_t* data = static_cast<const uint16_t*>(kv.data);
  const int64_t v_offset = static_cast<int64_t>(kv.block_tokens) * HD * kv.kv_heads;  // V follows K in a block
  const int bt = kv.block_tokens;
  const int tiles = (ke - kb + kKeys - 1) / kKeys;
  const uint32_t smem0 = SharedAddress(smem);

  // Issue the loads of key tile `it` into stage it % 2 (keys past the range: zeros).
  const auto load = [&](int it) {
    const int k0 = kb + it * kKeys;
    const uint32_t kdst = smem0 + static_cast<uint32_t>((it & 1) * 2 * L::kTile * 2);
    const uint32_t vdst = kdst + L::kTile * 2;
    constexpr int kChunks = HD / 8;  // 16-byte pieces of a row
    for (int i = threadIdx.x; i < kKeys * kChunks; i += kWarps * 32) {
      const int j = i / kChunks, c = i % kChunks, key = k0 + j;
      const bool in = key < ke;
      int64_t at = 0;
      if (in) {
        const int64_t block = table ? table[key / bt] : kv.blocks - 1;  // padding rows: the scratch block
        at = (((static_cast<int64_t>(a.layer) * kv.blocks + block) * 2) * kv.kv_heads + kvh) * bt * HD +
             static_cast<int64_t>(table ? key % bt : 0) * HD;
      }
      const uint32_t off = static_cast<uint32_t>((j * L::kStride + c * 8) * 2);
      CopyAsync(kdst + off, data + at + c * 8, in);
      CopyAsync(vdst + off, data + at + v_offset + c * 8, in);
    }
    CommitCopies();
  };

  if (tiles > 0) load(0);
  for (int it = 0; it < tiles; ++it) {
    if (it + 1 < tiles) {
      load(it + 1);
      WaitCopies<1>();
    } else {
      WaitCopies<0>();
    }
    __syncthreads();
    const int k0 = kb + it * kKeys;
    const uint32_t ks = smem0 + static_cast<uint32_t>((it & 1) * 2 * L::kTile * 2), vs = ks + L::kTile * 2;

    // S = Q K^T: 16 rows x the warp's keys of the tile (64, or 16 in decode), in 8-key accumulators.
    float s[kN][4];
#pragma unroll
    for (int n = 0; n < kN; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int n = 0; n < kN; n += 2) {
        // Matrices: keys 8n.. x dims 16kk.., the same keys x dims +8, then keys 8(n+1).. likewise.
        const int key = kofs + 8 * n + (lane >> 4) * 8 + (lane & 7), dim = 16 * kk + ((lane >> 3) & 1) * 8;
        uint32_t b[4];
        LoadMatrices(ks + static_cast<uint32_t>((key * L::kStride + dim) * 2), b);
        Mma(s[n], qa[kk], make_uint2(b[0], b[1]));
        Mma(s[n + 1], qa[kk], make_uint2(b[2], b[3]));
      }
    }

    // Masking only where some key of the tile is hidden from some row: causal edge, window, end of range.
    const bool full = k0 + kKeys <= ke && k0 + kKeys - 1 <= min_pos && (a.window <= 0 || hi - k0 < a.window);
    if (!full) {
#pragma unroll
      for (int n = 0; n < kN; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + kofs + 8 * n + 2 * t + (e & 1), p = pos[e >> 1];
          if (key >= ke || key > p || (a.window > 0 && p - key >= a.window)) s[n][e] = -INFINITY;
        }
      }
    }

    // Online softmax per row (a row's scores are spread over the four threads of a quad).
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = m[h];
#pragma unroll
      for (int n = 0; n < kN; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float base = mx == -INFINITY ? 0.0f : mx;  // nothing visible yet: every p is 0
      corr[h] = exp2f(m[h] - base);
      m[h] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        s[n][2 * h] = exp2f(s[n][2 * h] - base);
        s[n][2 * h + 1] = exp2f(s[n][2 * h + 1] - base);
        sum += s[n][2 * h] + s[n][2 * h + 1];
      }
      l[h] = l[h] * corr[h] + sum;
    }
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) o[n][0] *= corr[0], o[n][1] *= corr[0], o[n][2] *= corr[1], o[n][3] *= corr[1];

    // O += P V, 16 keys per step: P's A fragment is two 8-key accumulators side by side.
#pragma unroll
    for (int j = 0; j < kN / 2; ++j) {
      const uint32_t pa[4] = {PackBf16(s[2 * j][0], s[2 * j][1]), PackBf16(s[2 * j][2], s[2 * j][3]),
                              PackBf16(s[2 * j + 1][0], s[2 * j + 1][1]), PackBf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int dn = 0; dn < HD / 16; ++dn) {
        // Matrices (transposed on load): keys 16j.. x dims 16dn.., keys +8 x the same dims, then dims +8.
        const int key = kofs + 16 * j + ((lane >> 3) & 1) * 8 + (lane & 7), dim = 16 * dn + (lane >> 4) * 8;
        uint32_t b[4];
        LoadMatricesT(vs + static_cast<uint32_t>((key * L::kStride + dim) * 2), b);
        Mma(o[2 * dn], pa, make_uint2(b[0], b[1]));
        Mma(o[2 * dn + 1], pa, make_uint2(b[2], b[3]));
      }
    }
    __syncthreads();  // the stage is consumed before the next iteration's load overwrites it
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  if constexpr (kDecode) {
    // The four warps' states of the same 16 rows, merged through shared memory (the K/V stages are free now):
    // [warp][row][HD dims, max, sum].
    float* red = reinterpret_cast<float*>(smem);
    __syncthreads();
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float* r = red + (warp * kDecodeRows + g + 8 * h) * (HD + 2);
#pragma unroll
      for (int n = 0; n < HD / 8; ++n) *reinterpret_cast<float2*>(r + 8 * n + 2 * t) = make_float2(o[n][2 * h], o[n][2 * h + 1]);
      if (t == 0) r[HD] = m[h], r[HD + 1] = l[h];
    }
    __syncthreads();
    // Each thread merges pairs of dimensions of the rows, the four warps' states weighted by 2^(m_w - max).
    for (int i = threadIdx.x; i < rows * (HD / 2); i += kWarps * 32) {
      const int r = i / (HD / 2), d = (i % (HD / 2)) * 2;
      float mx = -INFINITY;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, red[(w * kDecodeRows + r) * (HD + 2) + HD]);
      float sum = 0.0f, o0 = 0.0f, o1 = 0.0f;
      if (mx != -INFINITY) {
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
          const float* src = red + (w * kDecodeRows + r) * (HD + 2);
          const float wt = exp2f(src[HD] - mx);  // 0 for a warp that saw nothing
          sum += wt * src[HD + 1], o0 += wt * src[d], o1 += wt * src[d + 1];
        }
      }
      if (gridDim.z == 1) {
        *reinterpret_cast<float2*>(a.out + out_of(r) * HD + d) = make_float2(o0 / sum, o1 / sum);
      } else {
        float* part = a.partial + (static_cast<int64_t>(blockIdx.z) * a.T * a.n_heads + out_of(r)) * (HD + 2);
        part[d] = o0, part[d + 1] = o1;
        if (d == 0) part[HD] = mx == -INFINITY ? -INFINITY : mx * kLn2, part[HD + 1] = sum;  // natural log
      }
    }
  } else {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row0 + g + 8 * h;
      if (r >= rows) continue;
      const float inv = 1.0f / l[h];
      float* out = a.out + out_of(r) * HD;
#pragma unroll
      for (int n = 0; n < HD / 8; ++n)
        *reinterpret_cast<float2*>(out + 8 * n + 2 * t) = make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
    }
  }
}

template <int HD>
void Launch(const AttentionLaunch& a, bool decode, StepView step, KvView kv, cudaStream_t stream) {
  const dim3 grid(a.tiles, a.n_kv_heads, decode ? a.splits : 1);
  Launch(decode ? FlashKernel<HD, true> : FlashKernel<HD, false>, grid, dim3(kWarps * 32), Layout<HD>::kBytes, stream,
         a, step, kv);
}

template <int HD>
void Prepare() {
  for (auto* k : {FlashKernel<HD, true>, FlashKernel<HD, false>})
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Layout<HD>::kBytes));
}

}  // namespace

bool FlashSupports(int head_dim, int group, bool kv_bf16, bool decode) {
  return kv_bf16 && group >= 1 && group <= (decode ? kDecodeRows : kRows) &&
         (head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128);
}

int FlashTileRows(int group, bool decode) { return group >= 1 ? (decode ? kDecodeRows : kRows) / group : 0; }

void PrepareFlashKernels() {
  Prepare<64>();
  Prepare<80>();
  Prepare<96>();
  Prepare<128>();
}

int FlashDecodeResidentBlocks(int head_dim) {
  const auto resident = [](auto kernel, size_t smem) {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kWarps * 32, smem) != cudaSuccess) cudaGetLastError();
    return std::max(n, 1);
  };
  // Asked once (the first call comes after PrepareFlashKernels has set the shared-memory limits).
  static const int blocks[4] = {resident(FlashKernel<64, true>, Layout<64>::kBytes),
                                resident(FlashKernel<80, true>, Layout<80>::kBytes),
                                resident(FlashKernel<96, true>, Layout<96>::kBytes),
                                resident(FlashKernel<128, true>, Layout<128>::kBytes)};
  return blocks[head_dim == 64 ? 0 : head_dim == 80 ? 1 : head_dim == 96 ? 2 : 3];
}

void LaunchFlashAttention(const AttentionLaunch& a, bool decode, StepView step, KvView kv, cudaStream_t stream) {
  if (!FlashSupports(a.head_dim, a.n_heads / a.n_kv_heads, kv.bf16, decode))
    throw Error("cuda: flash attention does not support this shape");
  switch (a.head_dim) {
    case 64: Launch<64>(a, decode, step, kv, stream); break;
    case 80: Launch<80>(a, decode, step, kv, stream); break;
    case 96: Launch<96>(a, decode, step, kv, stream); break;
    default: Launch<128>(a, decode, step, kv, stream); break;
  }
  if (decode) LaunchCombine(a, stream);
}

}  // namespace pensieve::backend::cuda
