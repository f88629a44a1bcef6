// Decode matmuls for MLX 4-bit weights on tensor cores: y = x W^T for T <= 8 rows of x.
//
// At load a 4-bit matrix is rewritten in place (RelayoutKernel) into the tiled layout of tiled_format.cuh, in
// which an A operand register costs one logic op (and a shift).
//
// The activations go in as B: each row of x split into two bf16 numbers, hi = bf16(x) and lo = bf16(x - hi)
// (16 significant bits), in columns 2t and 2t + 1 of the MMA's n = 8 (rows 4..7 of x: a second MMA). Tensor
// cores multiply exactly and add in f32, so per group of the affine quantization
//   sum_j (s q_j + b) x_j = s M + (b - 128 s) X,  M = sum_j (128 + q_j)(hi_j + lo_j),  X = sum_j (hi_j + lo_j),
// with X precomputed per group by PrepareXKernel (which also lays hi and lo out in B fragment order).
// Weights stream once from memory, 16 bytes per lane per tile, two batches of tiles in flight per warp (the
// first issued before waiting for the kernel that writes x: launch.cuh); a batch brings its groups' scales,
// biases and X along (fetched only when a group ends, they stalled each warp once per group: the whole decode
// step went from 3.61 to 3.15 ms). A block takes one row tile; its warps
// (1 to 16) split the tile's columns and add their parts through shared memory. How many: as many as make the
// grid's warps just fill the GPU's warp slots in one wave (SplitFor), since at 100-128 registers only ~16
// warps fit a multiprocessor: a matrix of few row tiles (the output and down projections at batch 1) gets
// more warps per tile, so that enough loads are in flight, and one of many tiles (the gated MLP) fewer, so that
// no second, mostly idle wave follows.
// Forming x's fragments in this kernel instead (per block, even from shared memory) was measured slower: the
// conversion runs once per block instead of once, and its arithmetic competes with the MMAs. Reading the
// weights past L1 (ld.global.nc.L1::no_allocate) with x's fragments prefetched into L1 gained nothing.
// Measured against the bare streaming rate (tools/gpu/stream_probe.cu: 66 MB in 15-16 us), the gated MLP's
// 34 us at batch 1 is not bandwidth-bound: warps wait on loads with few warps per multiprocessor
// (bench/RESULTS_cuda.md). x's fragments through a shared-memory ring (below) took the step 3.19 -> 2.92 ms.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/gemv_tiled.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tiled_format.cuh"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

constexpr int kMaxWarps = 16;  // warps of a block: they split one row tile's columns

// NT: MMAs per A fragment (x rows 0..3, 4..7); NM: matrices per block (2: the gate and up rows of a GLU);
// GS: group size; F16: f16 scales and biases (else bf16). All compile-time: the loop's address arithmetic and
// group bookkeeping are then shifts and constants.
template <int NT, int NM, int GS, bool F16>
__global__ void __launch_bounds__(kMaxWarps * 32) TiledKernel(TiledParams p) {
  constexpr int U = 4 / NM;         // tiles per batch and matrix (two batches in flight)
  constexpr int MPG = GS / 16;      // MMAs per group
  constexpr int kB = 32 * NT;       // 16-byte B fragment pairs per two MMA steps (ncol * 4)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t unit = blockIdx.x;

  const int m0 = NM == 1 ? OutputOf(p, unit) : 0;
  const uint4* wd[NM];
  const uint32_t* sc[NM];
  const uint32_t* bi[NM];
#pragma unroll
  for (int i = 0; i < NM; ++i) {
    const int m = NM == 1 ? m0 : i;
    const TiledOut& o = OutAt(p, m);
    const int64_t lt = unit - (NM == 1 ? FirstTileOf(p, m) : 0);
    wd[i] = o.data + lt * p.ktiles * 32 + lane;
    sc[i] = o.scales + lt * p.groups * 8 + g;
    bi[i] = o.biases ? o.biases + lt * p.groups * 8 + g : nullptr;
  }
  // This lane's B fragments (columns of x rows that exist; others stay zero) and group sums.
  const uint4* xb = reinterpret_cast<const uint4*>(p.xb) + g * 4 + t;
  bool col_live[NT];
  const float* xs[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    col_live[nt] = (8 * nt + g) / 2 < p.T;
    xs[nt] = 4 * nt + t < p.T ? p.xsum + (4 * nt + t) * p.groups : nullptr;
  }

  float acc[NM][NT][2];
  float c[NM][NT][4];
#pragma unroll
  for (int i = 0; i < NM; ++i)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      acc[i][nt][0] = acc[i][nt][1] = 0.0f;
      c[i][nt][0] = c[i][nt][1] = c[i][nt][2] = c[i][nt][3] = 0.0f;
    }

  // A group's scales and biases (rows g and g + 8) and X per x-row quartet. Each batch of tiles carries those of
  // its groups, loaded with its weights: read only when the group ends, they would stall the warp for a
  // memory round trip once per group.
  struct GroupVals {
    uint32_t s[NM], b[NM];
    float xg[NT];
  };
  constexpr int GPB = U * kTileCols / GS;  // groups per batch (a batch holds whole groups)
  struct Batch {
    uint4 w[U][NM];
    GroupVals g[GPB];
  };
  const auto load_group = [&](GroupVals& v, int grp, bool weights, bool x) {
    if (weights)
#pragma unroll
      for (int i = 0; i < NM; ++i) v.s[i] = __ldg(sc[i] + grp * 8), v.b[i] = bi[i] ? __ldg(bi[i] + grp * 8) : 0u;
    if (x)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) v.xg[nt] = xs[nt] ? __ldg(xs[nt] + grp) : 0.0f;
  };

  // x's B fragments for one x-row quartet (NT == 1) come through a ring of shared memory: each batch's are
  // copied in (cp.async) along with its weights, one batch ahead, and each lane reads back only what it
  // copied. Loaded where they are used, they cost each tile two L2 round trips that the warp waited for
  // (Nsight Compute: most of its stalls), since L1 seldom still held them.
  constexpr bool kRing = NT == 1;
  extern __shared__ uint4 smem_u4[];
  uint4* ring = smem_u4 + (p.warps * NM * kTileRows * 8 * 4 / 16) + warp * (2 * U * 2 * 32) + lane;  // [slot][j][pair][lane]
  const auto ring_at = [&](int slot, int j, int pair) { return ring + ((slot * U + j) * 2 + pair) * 32; };

  // One tile (four MMAs per matrix and x-row quartet); a group's sums are scaled in when it ends, with the
  // values group(q, grp) gives for it (q: its place in the batch, a constant once unrolled; grp: its index).
  // slot >= 0: the tile's x fragments are in the ring (slot, j), else they are loaded here.
  uint4 bpair[NT];
  const auto tile = [&](const uint4 (&w)[NM], int kt, int j, int slot, auto&& group) {
#pragma unroll
    for (int mm = 0; mm < 4; ++mm) {
      const int j16 = kt * 4 + mm;
      if (mm % 2 == 0) {  // the B fragments of two MMAs in one 16-byte load
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          bpair[nt] = !col_live[nt]         ? make_uint4(0, 0, 0, 0)
                      : kRing && slot >= 0 ? *ring_at(slot, j, mm / 2)
                                           : __ldg(xb + (j16 / 2) * kB + nt * 32);
      }
      uint2 b[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) b[nt] = mm % 2 == 0 ? make_uint2(bpair[nt].x, bpair[nt].y) : make_uint2(bpair[nt].z, bpair[nt].w);
#pragma unroll
      for (int i = 0; i < NM; ++i) {
        const uint32_t word = mm == 0 ? w[i].x : mm == 1 ? w[i].y : mm == 2 ? w[i].z : w[i].w;
        uint32_t a[4];
        Operands(word, a);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) Mma(c[i][nt], a, b[nt]);
      }
      if ((mm + 1) % (MPG < 4 ? MPG : 4) == 0 && (MPG <= 4 || (kt & 1))) {
        const GroupVals v = group((j * kTileCols + (mm + 1) * 16) / GS - 1, j16 / MPG);
#pragma unroll
        for (int i = 0; i < NM; ++i)
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) ScaleGroup<F16>(acc[i][nt], c[i][nt], v.s[i], v.b[i], v.xg[nt]);
      }
    }
  };

  // Whole batches of U tiles with the next batch in flight, then the remaining tiles one by one.
  const int kt0 = warp * p.kchunk, kt1 = min(p.ktiles, kt0 + p.kchunk);
  const int full_end = kt0 + max(0, kt1 - kt0) / U * U;
  // slot: the ring slot x's fragments go to (one cp.async group per batch).
  const auto load = [&](Batch& d, int at, bool weights, bool x, int slot) {
    if (weights)
#pragma unroll
      for (int j = 0; j < U; ++j)
#pragma unroll
        for (int i = 0; i < NM; ++i) d.w[j][i] = __ldg(wd[i] + (at + j) * 32);
    if (kRing && x) {
      if (col_live[0])
#pragma unroll
        for (int j = 0; j < U; ++j)
#pragma unroll
          for (int pair = 0; pair < 2; ++pair) CopyAsync16(ring_at(slot, j, pair), xb + ((at + j) * 2 + pair) * kB);
      CommitAsync();
    }
#pragma unroll
    for (int q = 0; q < GPB; ++q) load_group(d.g[q], at * kTileCols / GS + q, weights, x);
  };
  // Runs a batch whose fragments are in `slot`; `more`: a later batch's copies were issued after them.
  const auto run = [&](const Batch& d, int at, int slot, bool more) {
    if (kRing) more ? WaitAsync<1>() : WaitAsync<0>();
#pragma unroll
    for (int j = 0; j < U; ++j) tile(d.w[j], at + j, j, slot, [&](int q, int) { return d.g[q]; });
  };
  Batch A, B;
  if (kt0 < full_end) load(A, kt0, true, false, 0);
  WaitPrevious();  // x's fragments and sums come from the kernel before
  StartNext();
  if (kt0 < full_end) load(A, kt0, false, true, 0);
  for (int kt = kt0; kt < full_end; kt += 2 * U) {  // ping-pong between the two batches (no register copies)
    const bool b_next = kt + U < full_end;
    if (b_next) load(B, kt + U, true, true, 1);
    run(A, kt, 0, b_next);
    if (!b_next) break;
    const bool a_next = kt + 2 * U < full_end;
    if (a_next) load(A, kt + 2 * U, true, true, 0);
    run(B, kt + U, 1, a_next);
  }
  for (int kt = full_end; kt < kt1; ++kt) {
    uint4 one[NM];
#pragma unroll
    for (int i = 0; i < NM; ++i) one[i] = __ldg(wd[i] + kt * 32);
    tile(one, kt, 0, -1, [&](int, int grp) {
      GroupVals v;
      load_group(v, grp, true, true);
      return v;
    });
  }
  // The warps' parts: [warp][matrix][row of the tile][x row].
  // (Sized by the launch for the block's warps: a fixed kMaxWarps would take shared memory from L1.)
  auto part = reinterpret_cast<float (*)[NM][kTileRows][8]>(smem_u4);
#pragma unroll
  for (int i = 0; i < NM; ++i)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      part[warp][i][g][4 * nt + t] = acc[i][nt][0];
      part[warp][i][g + 8][4 * nt + t] = acc[i][nt][1];
    }
  __syncthreads();
  for (int e = threadIdx.x; e < kTileRows * p.T; e += blockDim.x) {
    const int r = e % kTileRows, tok = e / kTileRows;
    float v[NM];
#pragma unroll
    for (int i = 0; i < NM; ++i) {
      v[i] = part[0][i][r][tok];
      for (int w = 1; w < p.warps; ++w) v[i] += part[w][i][r][tok];
    }
    StoreTileRow<NM>(p, unit, r, tok, v);
  }
}

// B fragment entry (j16, col, t) of x's row behind column col: elements 2t, 2t+1, 2t+8, 2t+9 of the 16
// columns at xr (already offset by 16 j16 + 2t), as their hi parts for even col and lo parts for odd col.
__device__ __forceinline__ uint2 FragmentOf(const float* xr, int col) {
  const float v[4] = {xr[0], xr[1], xr[8], xr[9]};
  uint16_t h[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const __nv_bfloat16 hi = __float2bfloat16_rn(v[e]);
    const __nv_bfloat16 piece = (col & 1) ? __float2bfloat16_rn(v[e] - __bfloat162float(hi)) : hi;
    h[e] = __bfloat16_as_ushort(piece);
  }
  return make_uint2(h[0] | (uint32_t{h[1]} << 16), h[2] | (uint32_t{h[3]} << 16));
}

// X of one group of one row (its group_size floats at xg), by a warp: every lane gets it.
__device__ __forceinline__ float GroupSumOf(const float* xg, int group_size) {
  float s = 0.0f;
  for (int k = threadIdx.x & 31; k < group_size; k += 32) {
    const float hi = __bfloat162float(__float2bfloat16_rn(xg[k]));
    s += hi + __bfloat162float(__float2bfloat16_rn(xg[k] - hi));
  }
  return WarpSum(s);
}

// Entry i of the fragments: ((j16 / 2) * ncol + col) * 4 + t, then j16 % 2 (two MMA steps' fragments of a
// lane side by side); its element offset in x's row and its column.
struct FragmentIndex {
  int64_t j16;
  int col, t;
  __device__ explicit FragmentIndex(int64_t i, int ncol)
      : j16((i >> 3) / ncol * 2 + (i & 1)), col(static_cast<int>((i >> 3) % ncol)), t(static_cast<int>((i >> 1) & 3)) {}
  __device__ int64_t Offset() const { return j16 * 16 + 2 * t; }
};

// B fragments of x (hi and lo halves per row, zero columns beyond T) and the group sums X.
__global__ void PrepareXKernel(const float* x, int T, int64_t K, int ncol, int group_size, uint2* xb, float* xsum) {
  WaitPrevious();
  StartNext();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (blockIdx.y == 0) {
    const int64_t n = K / 16 * ncol * 4;
    for (int64_t i = first; i < n; i += stride) {
      const FragmentIndex f(i, ncol);
      const int tok = f.col >> 1;
      xb[i] = tok < T ? FragmentOf(x + tok * K + f.Offset(), f.col) : make_uint2(0, 0);
    }
  } else {  // a warp per (x row, group)
    const int64_t groups = K / group_size;
    for (int64_t wi = first >> 5; wi < T * groups; wi += stride >> 5) {
      const float s = GroupSumOf(x + (wi / groups) * K + (wi % groups) * group_size, group_size);
      if ((threadIdx.x & 31) == 0) xsum[wi] = s;
    }
  }
}

// RmsNormKernel and PrepareXKernel of a decode step in one launch: y as RmsNormKernel writes it (the same
// sums: RowInvRms), then the fragment columns and group sums of y's row as PrepareXKernel forms them (the same
// bits). Block (row, slice) takes `slice` columns of the row (every block of a row computes the row's norm,
// a read of a few KiB from L2, so that the row is spread over many multiprocessors; in place, one block takes
// the whole row, since others would read what it writes). Columns of rows past T are not written (the tiled
// kernel never reads them).
constexpr int64_t kNormSlice = 256;  // a multiple of every group size and of the 32 columns of a j16 pair
__global__ void NormPrepareXKernel(const float* x, const float* w, float eps, float* y, int64_t K, int64_t slice,
                                   int ncol, int group_size, uint2* xb, float* xsum) {
  extern __shared__ float row[];  // [slice]
  __shared__ double shared[32];
  WaitPrevious();
  StartNext();
  const int tok = blockIdx.x;
  const int64_t c0 = blockIdx.y * slice, c1 = min(K, c0 + slice);
  const float* xr = x + tok * K;
  float4 v;
  bool held;
  const float inv = RowInvRms(xr, K, eps, v, held, shared);
  for (int64_t i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
    const float o = __fmul_rn(__fmul_rn(xr[i], inv), w[i]);
    y[tok * K + i] = row[i - c0] = o;
  }
  __syncthreads();
  // This slice's entries: columns 2 tok (hi) and 2 tok + 1 (lo) of its j16 pairs, 4 lanes t, 2 MMA steps.
  for (int64_t e = c0 / 2 + threadIdx.x; e < c1 / 2; e += blockDim.x) {
    const int64_t pair = e >> 4;
    const int col = 2 * tok + static_cast<int>((e >> 3) & 1);
    const int64_t i = ((pair * ncol + col) * 4 + ((e >> 1) & 3)) * 2 + (e & 1);
    const FragmentIndex f(i, ncol);
    xb[i] = FragmentOf(row + f.Offset() - c0, f.col);
  }
  const int64_t groups = K / group_size;
  for (int64_t grp = c0 / group_size + (threadIdx.x >> 5); grp < c1 / group_size; grp += blockDim.x >> 5) {
    const float s = GroupSumOf(row + grp * group_size - c0, group_size);
    if ((threadIdx.x & 31) == 0) xsum[tok * groups + grp] = s;
  }
}

// One row tile per block, in place: its 16 rows of codes (then of scales, then of biases) into shared memory,
// then back in tile order.
__global__ void RelayoutKernel(uint8_t* data, int64_t cols, uint16_t* scales, uint16_t* biases, int groups) {
  extern __shared__ uint4 smem4[];
  auto* sm = reinterpret_cast<uint8_t*>(smem4);
  const int64_t row_bytes = cols / 2;
  uint8_t* base = data + blockIdx.x * kTileRows * row_bytes;
  const int64_t n16 = kTileRows * row_bytes / 16;
  for (int64_t i = threadIdx.x; i < n16; i += blockDim.x) smem4[i] = reinterpret_cast<const uint4*>(base)[i];
  __syncthreads();
  const int64_t words = cols / kTileCols * 32 * 4;
  for (int64_t wi = threadIdx.x; wi < words; wi += blockDim.x) {
    const int mm = static_cast<int>(wi & 3), lane = static_cast<int>((wi >> 2) & 31);
    const int64_t kb = wi >> 7;
    const int g = lane >> 2, t = lane & 3;
    uint32_t out = 0;
    for (int nib = 0; nib < 8; ++nib) {
      const int row = g + 8 * (nib & 1);
      const int64_t col = kb * kTileCols + 16 * mm + 2 * t + 8 * ((nib >> 1) & 1) + (nib >> 2);
      const uint32_t q = (sm[row * row_bytes + col / 2] >> (4 * (col & 1))) & 15u;
      out |= q << (4 * nib);
    }
    reinterpret_cast<uint32_t*>(base)[wi] = out;
  }
  for (uint16_t* arr : {scales, biases}) {
    if (!arr) continue;
    __syncthreads();
    uint16_t* gb = arr + blockIdx.x * kTileRows * static_cast<int64_t>(groups);
    auto* s16 = reinterpret_cast<uint16_t*>(smem4);
    for (int i = threadIdx.x; i < kTileRows * groups; i += blockDim.x) s16[i] = gb[i];
    __syncthreads();
    for (int i = threadIdx.x; i < groups * 8; i += blockDim.x) {
      const int grp = i / 8, g = i % 8;
      gb[2 * i] = s16[g * groups + grp];
      gb[2 * i + 1] = s16[(g + 8) * groups + grp];
    }
  }
}

constexpr int64_t kMaxRelayoutSmem = 227 * 1024;

// Shared memory of a TiledKernel block: the warps' parts, then (one x-row quartet) each warp's ring of x
// fragments, two batches of 4 / NM tiles.
size_t TiledSmemBytes(int warps, int nm, int nt) {
  const size_t part = static_cast<size_t>(warps) * nm * kTileRows * 8 * sizeof(float);
  return part + (nt == 1 ? static_cast<size_t>(warps) * 2 * (4 / nm) * 2 * 32 * sizeof(uint4) : 0);
}

// The kernel instance for the launch's x rows, matrices, group size and scale type.
template <int GS, bool F16>
void LaunchTypedTiled(const TiledParams& p, int nt, bool glu, cudaStream_t stream) {
  const auto kernel = glu ? (nt == 1 ? TiledKernel<1, 2, GS, F16> : TiledKernel<2, 2, GS, F16>)
                          : (nt == 1 ? TiledKernel<1, 1, GS, F16> : TiledKernel<2, 1, GS, F16>);
  Launch(kernel, dim3(static_cast<unsigned>(p.total)), dim3(p.warps * 32), TiledSmemBytes(p.warps, glu ? 2 : 1, nt), stream,
         p);
}
template <int GS, bool F16>
void AllowTiledSmem() {
  const auto allow = [](auto kernel, int nm, int nt) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(TiledSmemBytes(kMaxWarps, nm, nt)));
  };
  allow(TiledKernel<1, 1, GS, F16>, 1, 1);
  allow(TiledKernel<2, 1, GS, F16>, 1, 2);
  allow(TiledKernel<1, 2, GS, F16>, 2, 1);
  allow(TiledKernel<2, 2, GS, F16>, 2, 2);
}

void LaunchTiled(const TiledParams& p, int nt, bool glu, cudaStream_t stream) {
  WithGroupType(p.group_size, p.f16, [&](auto gs, auto f16) {
    LaunchTypedTiled<decltype(gs)::value, decltype(f16)::value>(p, nt, glu, stream);
  });
}

}  // namespace

bool CanTile(const MatRef& w) {
  const auto aligned = [](const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; };
  return w.kind == MatRef::Kind::kAffine && w.bits == 4 && !w.tiled && w.rows % kTileRows == 0 &&
         w.cols % kTileCols == 0 && (w.group_size == 32 || w.group_size == 64 || w.group_size == 128) &&
         w.cols % w.group_size == 0 && (w.type == FloatType::kBF16 || w.type == FloatType::kF16) &&
         aligned(w.data, 16) && aligned(w.scales, 4) && (!w.biases || aligned(w.biases, 4)) &&
         kTileRows * w.cols / 2 <= kMaxRelayoutSmem;
}

void LaunchRelayout(MatRef& w, cudaStream_t stream) {
  if (!CanTile(w)) throw Error("cuda relayout: matrix not tileable");
  const int64_t smem = kTileRows * w.cols / 2;
  if (smem > 48 * 1024)
    cudaFuncSetAttribute(RelayoutKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kMaxRelayoutSmem));
  const int groups = static_cast<int>(w.cols / w.group_size);
  RelayoutKernel<<<static_cast<unsigned>(w.rows / kTileRows), 256, static_cast<size_t>(smem), stream>>>(
      static_cast<uint8_t*>(const_cast<void*>(w.data)), w.cols, static_cast<uint16_t*>(const_cast<void*>(w.scales)),
      static_cast<uint16_t*>(const_cast<void*>(w.biases)), groups);
  w.tiled = true;
}

namespace {
// Bytes of the B fragments of x for K columns and ncol B columns (PrepareXKernel's layout), padded to 256.
int64_t FragmentBytes(int64_t K, int ncol) { return (K / 16 * ncol * 4 * int64_t{sizeof(uint2)} + 255) / 256 * 256; }
// B columns of a launch of T rows (hi and lo per row, in MMAs of 8 columns).
int ColumnsFor(int T) { return T <= 4 ? 8 : 16; }

int SplitFor(int64_t row_tiles, int chunks, int warp_slots) {
  if (row_tiles >= warp_slots) return 4;  // several waves anyway: a moderate split keeps blocks short
  return static_cast<int>(std::clamp<int64_t>(warp_slots / row_tiles, 1, std::min(kMaxWarps, chunks)));
}

constexpr int64_t kMaxNormRowBytes = 48 * 1024;  // NormPrepareXKernel's slice in shared memory (no opt-in needed)
}  // namespace

void PrepareTiledKernels() {
  ForEveryGroupType([](auto gs, auto f16) { AllowTiledSmem<decltype(gs)::value, decltype(f16)::value>(); });
  PrepareStreamKernels();
}

int64_t TiledScratchBytes(int64_t max_cols) {
  const int64_t xsum = kMaxGemvRows * (max_cols / 32 + 1) * 4;  // group sums (groups of 32 or more)
  return FragmentBytes(max_cols, 16) + (xsum + 255) / 256 * 256;  // up to 16 columns of B (8 rows of x)
}

bool CanNormPrepareX(int T, int64_t K, int group_size) {
  return T >= 1 && T <= kMaxGemvRows && K % kTileCols == 0 && group_size > 0 && K % group_size == 0 &&
         K * 4 <= kMaxNormRowBytes;
}

void LaunchNormPrepareX(const float* x, const float* w, float eps, float* y, int T, int64_t K, int group_size,
                        GemvScratch scratch, cudaStream_t stream) {
  if (!(CanNormPrepareX(T, K, group_size) && TiledScratchBytes(K) <= scratch.bytes))
    throw Error("cuda: bad fused norm launch");
  const int ncol = ColumnsFor(T);
  auto* xb = static_cast<uint2*>(scratch.data);
  auto* xsum = reinterpret_cast<float*>(static_cast<char*>(scratch.data) + FragmentBytes(K, ncol));
  const int64_t slice = x == y ? K : kNormSlice;
  Launch(NormPrepareXKernel, dim3(static_cast<unsigned>(T), static_cast<unsigned>(CeilDiv(K, slice))),
         dim3(RmsNormThreads(K)), static_cast<size_t>(slice * 4), stream, x, w, eps, y, K, slice, ncol, group_size, xb,
         xsum);
}

void LaunchGemvTiled(const float* x, int T, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out,
                     GemvScratch scratch, TiledLaunch tiled, cudaStream_t stream) {
  const MatRef& w = outs[0].w;
  const int64_t K = w.cols;
  const bool is_glu = glu != Glu::kNone;
  if (!(T >= 1 && T <= kMaxGemvRows && TiledScratchBytes(K) <= scratch.bytes)) throw Error("cuda gemv: bad tiled launch");
  TiledParams p{};
  p.T = T;
  p.ncol = ColumnsFor(T);
  const int NT = p.ncol / 8;
  p.ktiles = static_cast<int>(K / kTileCols);
  p.group_size = w.group_size;
  p.groups = static_cast<int>(K / w.group_size);
  const int tiles_per_group = std::max(1, w.group_size / kTileCols);
  const int chunks = static_cast<int>(CeilDiv(p.ktiles, tiles_per_group));
  p.accumulate = accumulate;
  p.glu = glu;
  p.glu_out = glu_out;
  p.f16 = w.type == FloatType::kF16;
  p.n_outs = is_glu ? 1 : static_cast<int>(outs.size());
  int64_t start = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    const MatRef& m = outs[i].w;
    if (!(m.tiled && m.cols == K && m.group_size == w.group_size && m.type == w.type))
      throw Error("cuda gemv: tiled outputs differ in shape");
    p.outs[i] = {static_cast<const uint4*>(m.data), static_cast<const uint32_t*>(m.scales),
                 static_cast<const uint32_t*>(m.biases), outs[i].bias, outs[i].y, m.rows};
  }
  for (int i = 0; i < p.n_outs; ++i) {
    p.tile_start[i] = start;
    start += outs[i].w.rows / kTileRows;
  }
  p.tile_start[p.n_outs] = start;
  p.total = start;
  p.warps = tiled.force_split > 0 ? std::min({tiled.force_split, kMaxWarps, chunks})
                                  : SplitFor(start, chunks, tiled.warp_slots);
  p.kchunk = static_cast<int>(CeilDiv(chunks, p.warps)) * tiles_per_group;

  auto* xb = static_cast<uint2*>(scratch.data);
  auto* xsum = reinterpret_cast<float*>(static_cast<char*>(scratch.data) + FragmentBytes(K, p.ncol));
  p.xb = xb;
  p.xsum = xsum;
  const int64_t prep = std::max<int64_t>(K / 16 * p.ncol * 4, int64_t{T} * p.groups * 32);
  if (!tiled.x_prepared)
    Launch(PrepareXKernel, dim3(static_cast<unsigned>(CeilDiv(prep, 256)), 2), dim3(256), 0, stream, x, T, K, p.ncol,
         w.group_size, xb, xsum);
  if (tiled.stream && tiled.force_split == 0 && LaunchGemvStream(p, is_glu, tiled.sms, tiled.stream_blocks, stream)) return;
  LaunchTiled(p, NT, is_glu, stream);
}

}  // namespace pensieve::backend::cuda
