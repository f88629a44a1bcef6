// Attention of prefill steps on tensor cores (the flash-attention scheme) over the paged bf16 KV cache.
//
// A block of four warps takes 64 query rows: the tokens of one flash tile (consecutive rows of one item, at
// most 64 / G of them) times the G query heads that share one kv head, row r being token r / G, head r % G,
// so every K/V tile loaded serves the whole group. Keys stream through shared memory 64 at a time, K and V
// rows fetched with cp.async (two stages: the next tile loads while this one is used). Each warp owns 16 rows:
// S = Q K^T with mma.m16n8k16 (Q scaled by scale * log2 e and rounded to bf16 once, kept in registers; K as
// the B operand through ldmatrix), the online softmax in base 2 on S's accumulator registers, then O += P V
// with P (rounded to bf16) taken straight from those registers as the A operand and V through ldmatrix.trans.
// Sums stay f32. Shared-memory rows are padded by 16 bytes so that the eight rows an ldmatrix reads fall in
// different banks.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

constexpr int kRows = 64;        // query rows of a block
constexpr int kKeys = 64;        // keys of a shared-memory tile
constexpr int kWarps = kRows / 16;
constexpr float kLog2e = 1.4426950408889634f;

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

template <int HD>
__global__ void __launch_bounds__(kWarps * 32, 2) FlashKernel(AttentionLaunch a, StepView step, KvView kv) {
  using L = Layout<HD>;
  extern __shared__ __align__(16) uint16_t smem[];  // [stage][K, V][kKeys][kStride]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int G = a.n_heads / a.n_kv_heads, kvh = blockIdx.y;
  const int r0 = step.flash_tiles[2 * blockIdx.x], nr = step.flash_tiles[2 * blockIdx.x + 1];
  const int rows = nr * G;  // live rows of the block (<= kRows)
  const int32_t item = step.row_item[r0];
  const int32_t* table = item >= 0 ? step.tables + static_cast<int64_t>(item) * step.header[1] : nullptr;

  // The block's key range, and the positions of this thread's two rows (g and g + 8 of its warp).
  int lo = INT_MAX, hi = -1, min_pos = INT_MAX;
  for (int i = 0; i < nr; ++i) {
    const int p = step.pos[r0 + i];
    lo = min(lo, a.window > 0 ? max(0, p - a.window + 1) : 0);
    hi = max(hi, p), min_pos = min(min_pos, p);
  }
  int pos[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = warp * 16 + g + 8 * h;
    pos[h] = r < rows ? step.pos[r0 + r / G] : -1;  // rows past the tile see nothing
  }

  // Q fragments (A operands), scaled and rounded once.
  uint32_t qa[HD / 16][4];
  {
    const float s = a.scale * kLog2e;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp * 16 + g + 8 * h;
      const float* q = r < rows ? a.q + (static_cast<int64_t>(r0 + r / G) * a.n_heads + kvh * G + r % G) * HD : nullptr;
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
  const int tiles = (hi - lo + kKeys) / kKeys;
  const uint32_t smem0 = SharedAddress(smem);

  // Issue the loads of key tile `it` into stage it % 2 (keys past the range: zeros).
  const auto load = [&](int it) {
    const int k0 = lo + it * kKeys;
    const uint32_t kdst = smem0 + static_cast<uint32_t>((it & 1) * 2 * L::kTile * 2);
    const uint32_t vdst = kdst + L::kTile * 2;
    constexpr int kChunks = HD / 8;  // 16-byte pieces of a row
    for (int i = threadIdx.x; i < kKeys * kChunks; i += kWarps * 32) {
      const int j = i / kChunks, c = i % kChunks, key = k0 + j;
      const bool in = key <= hi;
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

  load(0);
  for (int it = 0; it < tiles; ++it) {
    if (it + 1 < tiles) {
      load(it + 1);
      WaitCopies<1>();
    } else {
      WaitCopies<0>();
    }
    __syncthreads();
    const int k0 = lo + it * kKeys;
    const uint32_t ks = smem0 + static_cast<uint32_t>((it & 1) * 2 * L::kTile * 2), vs = ks + L::kTile * 2;

    // S = Q K^T: 16 rows x 64 keys per warp, eight 8-key accumulators.
    float s[kKeys / 8][4];
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int n = 0; n < kKeys / 8; n += 2) {
        // Matrices: keys 8n.. x dims 16kk.., the same keys x dims +8, then keys 8(n+1).. likewise.
        const int key = 8 * n + (lane >> 4) * 8 + (lane & 7), dim = 16 * kk + ((lane >> 3) & 1) * 8;
        uint32_t b[4];
        LoadMatrices(ks + static_cast<uint32_t>((key * L::kStride + dim) * 2), b);
        Mma(s[n], qa[kk], make_uint2(b[0], b[1]));
        Mma(s[n + 1], qa[kk], make_uint2(b[2], b[3]));
      }
    }

    // Masking only where some key of the tile is hidden from some row: causal edge, window, end of range.
    const bool full = k0 + kKeys - 1 <= min_pos && (a.window <= 0 || hi - k0 < a.window);
    if (!full) {
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + 8 * n + 2 * t + (e & 1), p = pos[e >> 1];
          if (key > p || (a.window > 0 && p - key >= a.window)) s[n][e] = -INFINITY;
        }
      }
    }

    // Online softmax per row (a row's 64 scores are spread over the four threads of a quad).
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = m[h];
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float base = mx == -INFINITY ? 0.0f : mx;  // nothing visible yet: every p is 0
      corr[h] = exp2f(m[h] - base);
      m[h] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) {
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
    for (int j = 0; j < kKeys / 16; ++j) {
      const uint32_t pa[4] = {PackBf16(s[2 * j][0], s[2 * j][1]), PackBf16(s[2 * j][2], s[2 * j][3]),
                              PackBf16(s[2 * j + 1][0], s[2 * j + 1][1]), PackBf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int dn = 0; dn < HD / 16; ++dn) {
        // Matrices (transposed on load): keys 16j.. x dims 16dn.., keys +8 x the same dims, then dims +8.
        const int key = 16 * j + ((lane >> 3) & 1) * 8 + (lane & 7), dim = 16 * dn + (lane >> 4) * 8;
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
    const int r = warp * 16 + g + 8 * h;
    if (r >= rows) continue;
    const float inv = 1.0f / l[h];
    float* out = a.out + (static_cast<int64_t>(r0 + r / G) * a.n_heads + kvh * G + r % G) * HD;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n)
      *reinterpret_cast<float2*>(out + 8 * n + 2 * t) = make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
  }
}

template <int HD>
void Launch(const AttentionLaunch& a, int tiles, StepView step, KvView kv, cudaStream_t stream) {
  FlashKernel<HD><<<dim3(tiles, a.n_kv_heads), kWarps * 32, Layout<HD>::kBytes, stream>>>(a, step, kv);
}

template <int HD>
void Prepare() {
  cudaFuncSetAttribute(FlashKernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Layout<HD>::kBytes));
}

}  // namespace

bool FlashSupports(int head_dim, int group, bool kv_bf16) {
  return kv_bf16 && group >= 1 && group <= kRows &&
         (head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128);
}

int FlashTileRows(int group) { return kRows / group; }

void PrepareFlashKernels() {
  Prepare<64>();
  Prepare<80>();
  Prepare<96>();
  Prepare<128>();
}

void LaunchFlashAttention(const AttentionLaunch& a, StepView step, KvView kv, cudaStream_t stream) {
  const int flash_tiles = a.tiles;
  if (!FlashSupports(a.head_dim, a.n_heads / a.n_kv_heads, kv.bf16)) throw Error("cuda: flash attention does not support this shape");
  switch (a.head_dim) {
    case 64: return Launch<64>(a, flash_tiles, step, kv, stream);
    case 80: return Launch<80>(a, flash_tiles, step, kv, stream);
    case 96: return Launch<96>(a, flash_tiles, step, kv, stream);
    default: return Launch<128>(a, flash_tiles, step, kv, stream);
  }
}

}  // namespace pensieve::backend::cuda
