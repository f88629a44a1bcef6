// Many-row matmuls on tiled 4-bit weights: y = x W^T for 9-64 rows of x (a decode step of many sequences),
// reading each weight byte once, where the other many-row path expands every weight to bf16 first.
//
// Each warp owns two row tiles (32 rows of W) over one key range; a block's four warps take neighbouring row
// tiles over the same keys, so they read the same activation fragments at the same time (the L1 cache serves
// three of the four). Per MMA step a lane turns its A word into 128 + q (tiled_format.cuh), then into the weight
// s q + b = s (128 + q) + (b - 128 s) in f32, rounded to bf16: the same bf16 weights as the expanding path, and
// the activations enter as bf16 too, so both many-row paths round alike (8 significant bits per operand, sums
// in f32). With up to 64 rows, two row tiles and eight MMAs per A fragment keep the tensor cores, not the loads
// of activation fragments, the limit.
//
// The key range is split so that the grid fills the GPU (few row tiles, long rows: the down projection); each
// split writes f32 partial sums, and a second kernel adds them in a fixed order (deterministic), adds biases
// and the residual, or applies the gated MLP's activation.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tiled_format.cuh"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

constexpr int kWarps = 4;     // warps of a block, on neighbouring row tiles
constexpr int kPerWarp = 2;   // row tiles per warp (each activation fragment feeds both)

struct ManyParams {
  const uint4* xb;  // [K/32][NT][32 lanes] bf16 B fragments of two MMA steps (PrepareKernel)
  float* part;      // [splits][T][rows]
  int T, ktiles, groups, kper;  // kper: key tiles per split (whole groups)
  int n_outs;
  int64_t rows;     // rows of all outputs, concatenated
  int64_t tile_start[kMaxGemvOuts + 1];
  const uint4* data[kMaxGemvOuts];
  const uint32_t* scales[kMaxGemvOuts];
  const uint32_t* biases[kMaxGemvOuts];
};

template <int NT, int GS, bool F16>
__global__ void __launch_bounds__(kWarps * 32) ManyKernel(ManyParams p) {
  constexpr int R = kPerWarp;
  constexpr int MPG = GS / 16;  // MMA steps per group
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t total = p.tile_start[p.n_outs];
  const int64_t unit0 = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * R;
  if (unit0 >= total) return;
  WaitPrevious();
  StartNext();

  const uint4* wd[R];
  const uint32_t* sc[R];
  const uint32_t* bi[R];
  bool live[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    live[r] = unit0 + r < total;
    const int64_t u = live[r] ? unit0 + r : unit0;  // a dead tile reads its neighbour's bytes, never stored
    const int m = (p.n_outs > 1 && u >= p.tile_start[1]) + (p.n_outs > 2 && u >= p.tile_start[2]) +
                  (p.n_outs > 3 && u >= p.tile_start[3]);
    const int64_t lt = u - p.tile_start[m];
    wd[r] = p.data[m] + lt * p.ktiles * 32 + lane;
    sc[r] = p.scales[m] + lt * p.groups * 8 + g;
    bi[r] = p.biases[m] ? p.biases[m] + lt * p.groups * 8 + g : nullptr;
  }
  const uint4* xb = p.xb + lane;

  float acc[R][NT][4];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[r][nt][0] = acc[r][nt][1] = acc[r][nt][2] = acc[r][nt][3] = 0.0f;

  float s[R][2], o[R][2];  // the current group's scale and offset b - 128 s, rows g and g + 8
  const int last16 = p.ktiles * 4 - 1;
  // A step's half of the lane's fragment pair (the other half, the next step's, stays in L1).
  const auto bload = [&](uint2 (&dst)[NT], int j16) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) dst[nt] = __ldg(reinterpret_cast<const uint2*>(xb + ((j16 / 2) * NT + nt) * 32) + (j16 & 1));
  };
  uint2 bn[NT];  // the next MMA step's B fragments, loaded while this step multiplies
  bload(bn, min(last16, static_cast<int>(blockIdx.y) * p.kper * 4));
  const auto tile = [&](const uint4 (&w)[R], int kt) {
#pragma unroll
    for (int mm = 0; mm < 4; ++mm) {
      const int j16 = kt * 4 + mm;
      if (mm % (MPG < 4 ? MPG : 4) == 0 && (MPG <= 4 || (kt & 1) == 0)) {  // a group starts
        const int grp = j16 / MPG;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const uint32_t s2 = __ldg(sc[r] + grp * 8), b2 = bi[r] ? __ldg(bi[r] + grp * 8) : 0u;
          s[r][0] = Half16(s2 & 0xFFFFu, F16), s[r][1] = Half16(s2 >> 16, F16);
          o[r][0] = Half16(b2 & 0xFFFFu, F16) - 128.0f * s[r][0];
          o[r][1] = Half16(b2 >> 16, F16) - 128.0f * s[r][1];
        }
      }
      uint2 b[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) b[nt] = bn[nt];
      bload(bn, min(last16, j16 + 1));
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint32_t word = mm == 0 ? w[r].x : mm == 1 ? w[r].y : mm == 2 ? w[r].z : w[r].w;
        uint32_t a[4];
        Operands(word, a);
#pragma unroll
        for (int q = 0; q < 4; ++q) {  // registers 0 and 2: row g; 1 and 3: row g + 8
          const float sv = s[r][q & 1], ov = o[r][q & 1];
          const __nv_bfloat162 d = __floats2bfloat162_rn(fmaf(sv, __uint_as_float(a[q] << 16), ov),
                                                         fmaf(sv, __uint_as_float(a[q] & 0xFFFF0000u), ov));
          a[q] = *reinterpret_cast<const uint32_t*>(&d);
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) Mma(acc[r][nt], a, b[nt]);
      }
    }
  };

  // Two tiles per row tile in flight while the previous two are multiplied.
  constexpr int U = 2;
  const int kt0 = blockIdx.y * p.kper, kt1 = min(p.ktiles, kt0 + p.kper);
  const int full_end = kt0 + max(0, kt1 - kt0) / U * U;
  uint4 w[U][R], next[U][R];
  const auto load = [&](uint4 (&dst)[U][R], int at) {
#pragma unroll
    for (int j = 0; j < U; ++j)
#pragma unroll
      for (int r = 0; r < R; ++r) dst[j][r] = __ldg(wd[r] + (at + j) * 32);
  };
  if (kt0 < full_end) load(w, kt0);
  for (int kt = kt0; kt < full_end; kt += 2 * U) {
    if (kt + U < full_end) load(next, kt + U);
#pragma unroll
    for (int j = 0; j < U; ++j) tile(w[j], kt + j);
    if (kt + U >= full_end) break;
    if (kt + 2 * U < full_end) load(w, kt + 2 * U);
#pragma unroll
    for (int j = 0; j < U; ++j) tile(next[j], kt + U + j);
  }
  for (int kt = full_end; kt < kt1; ++kt) {
    uint4 one[R];
#pragma unroll
    for (int r = 0; r < R; ++r) one[r] = __ldg(wd[r] + kt * 32);
    tile(one, kt);
  }

  // Accumulator (r, nt): rows g and g + 8 of the tile, x rows 8 nt + 2t and 8 nt + 2t + 1.
  float* part = p.part + static_cast<int64_t>(blockIdx.y) * p.T * p.rows;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (!live[r]) continue;
    const int64_t row = (unit0 + r) * kTileRows + g;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int tok = 8 * nt + 2 * t + e;
        if (tok >= p.T) continue;
        part[tok * p.rows + row] = acc[r][nt][e];
        part[tok * p.rows + row + 8] = acc[r][nt][2 + e];
      }
  }
}

// x rows as bf16 B fragments: entry ((k32 * NT + nt) * 32 + lane) holds, for x row 8 nt + g (zero beyond T),
// columns 32 k32 + 2t, +1, +8, +9 (one MMA step) and the same 16 columns on (the next step).
__global__ void PrepareKernel(const float* x, int T, int64_t K, int NT, uint4* xb) {
  WaitPrevious();
  StartNext();
  const int64_t n = K / 32 * NT * 32;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int lane = static_cast<int>(i & 31), nt = static_cast<int>((i >> 5) % NT);
    const int64_t k32 = (i >> 5) / NT;
    const int tok = 8 * nt + (lane >> 2), t = lane & 3;
    if (tok >= T) {
      xb[i] = make_uint4(0, 0, 0, 0);
      continue;
    }
    const float* xr = x + tok * K + k32 * 32 + 2 * t;
    uint32_t v[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {  // step e / 2, columns +0/+1 (e even) or +8/+9 (e odd)
      const float* at = xr + 16 * (e >> 1) + 8 * (e & 1);
      const __nv_bfloat162 h = __floats2bfloat162_rn(at[0], at[1]);
      v[e] = *reinterpret_cast<const uint32_t*>(&h);
    }
    xb[i] = make_uint4(v[0], v[1], v[2], v[3]);
  }
}

struct ReduceParams {
  const float* part;
  int T, splits, n_outs;
  int64_t rows;
  int64_t row_start[kMaxGemvOuts + 1];
  float* y[kMaxGemvOuts];
  const float* bias[kMaxGemvOuts];
  bool accumulate;
  Glu glu;
  float* glu_out;
};

// The splits' sums in a fixed order, then y (=|+=) sum + bias, or the gated MLP's act(gate) * up.
__global__ void ReduceKernel(ReduceParams p) {
  WaitPrevious();
  StartNext();
  const int64_t width = p.glu != Glu::kNone ? p.row_start[1] : p.rows;
  const int64_t n = p.T * width, stride = p.T * p.rows;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t tok = i / width, col = i % width;
    const float* at = p.part + tok * p.rows + col;
    if (p.glu != Glu::kNone) {
      float gv = 0.0f, uv = 0.0f;
      for (int s = 0; s < p.splits; ++s) gv += at[s * stride], uv += at[s * stride + width];
      if (p.bias[0]) gv += p.bias[0][col];
      if (p.bias[1]) uv += p.bias[1][col];
      p.glu_out[tok * width + col] = Act(p.glu, gv) * uv;
      continue;
    }
    float v = 0.0f;
    for (int s = 0; s < p.splits; ++s) v += at[s * stride];
    const int m = (p.n_outs > 1 && col >= p.row_start[1]) + (p.n_outs > 2 && col >= p.row_start[2]) +
                  (p.n_outs > 3 && col >= p.row_start[3]);
    const int64_t r = col - p.row_start[m], out_rows = p.row_start[m + 1] - p.row_start[m];
    if (p.bias[m]) v += p.bias[m][r];
    float* y = p.y[m] + tok * out_rows + r;
    *y = p.accumulate ? *y + v : v;
  }
}

int NtFor(int T) { return T <= 16 ? 2 : T <= 32 ? 4 : 8; }
int64_t FragmentBytes(int T, int64_t K) { return (K / 32 * NtFor(T) * 32 * 16 + 255) / 256 * 256; }

template <int NT>
void LaunchNt(const ManyParams& p, int group_size, bool f16, dim3 grid, cudaStream_t stream) {
  constexpr unsigned kThreads = kWarps * 32;
  const auto kernel = f16 ? (group_size == 32   ? ManyKernel<NT, 32, true>
                             : group_size == 64 ? ManyKernel<NT, 64, true>
                                                : ManyKernel<NT, 128, true>)
                          : (group_size == 32   ? ManyKernel<NT, 32, false>
                             : group_size == 64 ? ManyKernel<NT, 64, false>
                                                : ManyKernel<NT, 128, false>);
  Launch(kernel, grid, dim3(kThreads), 0, stream, p);
}

}  // namespace

int64_t GemmTiledScratchBytes(int T, int64_t K, int64_t rows) { return FragmentBytes(T, K) + int64_t{T} * rows * 4; }

void LaunchGemmTiled(const float* x, int T, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out,
                     GemvScratch scratch, int target_blocks, cudaStream_t stream) {
  const MatRef& w = outs[0].w;
  const int64_t K = w.cols;
  const bool is_glu = glu != Glu::kNone;
  if (!(T >= 1 && T <= kMaxGemmTiledRows && !outs.empty() && outs.size() <= kMaxGemvOuts && (!is_glu || outs.size() == 2)))
    throw Error("cuda gemm: bad tiled launch");
  ManyParams p{};
  ReduceParams r{};
  p.T = r.T = T;
  p.ktiles = static_cast<int>(K / kTileCols);
  p.groups = static_cast<int>(K / w.group_size);
  p.n_outs = r.n_outs = static_cast<int>(outs.size());
  int64_t tiles = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    const MatRef& m = outs[i].w;
    if (!(m.tiled && m.cols == K && m.group_size == w.group_size && m.type == w.type && (!is_glu || m.rows == w.rows)))
      throw Error("cuda gemm: tiled outputs differ in shape");
    p.tile_start[i] = tiles;
    r.row_start[i] = tiles * kTileRows;
    tiles += m.rows / kTileRows;
    p.data[i] = static_cast<const uint4*>(m.data);
    p.scales[i] = static_cast<const uint32_t*>(m.scales);
    p.biases[i] = static_cast<const uint32_t*>(m.biases);
    r.y[i] = outs[i].y;
    r.bias[i] = outs[i].bias;
  }
  p.tile_start[outs.size()] = tiles;
  r.row_start[outs.size()] = tiles * kTileRows;
  p.rows = r.rows = tiles * kTileRows;

  // Key splits (whole groups each) until the grid fills the GPU, as far as the scratch holds their sums.
  const int64_t row_blocks = CeilDiv(tiles, kWarps * kPerWarp);
  const int tpg = std::max(1, w.group_size / kTileCols);
  const int64_t chunks = p.ktiles / tpg;
  const int64_t fit = (scratch.bytes - FragmentBytes(T, K)) / (int64_t{T} * p.rows * 4);
  int64_t splits = std::min(std::min<int64_t>(CeilDiv(target_blocks, row_blocks), std::max<int64_t>(1, chunks / 4)), fit);
  if (splits < 1) throw Error("cuda gemm: tiled scratch too small");
  p.kper = static_cast<int>(CeilDiv(chunks, splits) * tpg);
  splits = CeilDiv(p.ktiles, p.kper);
  r.splits = static_cast<int>(splits);

  auto* xb = static_cast<uint4*>(scratch.data);
  p.xb = xb;
  p.part = reinterpret_cast<float*>(static_cast<char*>(scratch.data) + FragmentBytes(T, K));
  r.part = p.part;
  r.accumulate = accumulate;
  r.glu = glu;
  r.glu_out = glu_out;

  const int NT = NtFor(T);
  const int64_t frags = K / 32 * NT * 32;
  Launch(PrepareKernel, dim3(static_cast<unsigned>(std::min<int64_t>(CeilDiv(frags, 256), 4096))), dim3(256), 0, stream,
         x, T, K, NT, xb);
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(splits));
  const bool f16 = w.type == FloatType::kF16;
  NT == 2 ? LaunchNt<2>(p, w.group_size, f16, grid, stream)
  : NT == 4 ? LaunchNt<4>(p, w.group_size, f16, grid, stream)
            : LaunchNt<8>(p, w.group_size, f16, grid, stream);
  const int64_t n = int64_t{T} * (is_glu ? r.row_start[1] : r.rows);
  Launch(ReduceKernel, dim3(static_cast<unsigned>(std::min<int64_t>(CeilDiv(n, 256), 8192))), dim3(256), 0, stream, r);
}

}  // namespace pensieve::backend::cuda
