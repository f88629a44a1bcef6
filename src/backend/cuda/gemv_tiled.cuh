#pragma once
// What a tiled decode matmul launch carries, shared by its two kernels (gemv_tiled.cu: weights batched in
// registers; gemv_stream.cu: weights streamed into shared memory by bulk copies), and how both store a row.
#include <cstdint>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/tiled_format.cuh"

namespace pensieve::backend::cuda {

struct TiledOut {
  const uint4* data;
  const uint32_t* scales;
  const uint32_t* biases;
  const float* bias;
  float* y;
  int64_t rows;
};

struct TiledParams {
  const uint2* xb;    // [K/32][ncol][4 lanes][2 MMA steps] B fragments (PrepareXKernel)
  const float* xsum;  // [T][groups]
  int T, ncol;
  int ktiles, groups, group_size;
  int kchunk;  // tiles per warp (a multiple of the tiles per group; gemv_tiled.cu)
  int warps;   // of a block (gemv_tiled.cu)
  int n_outs;
  int64_t total;  // row tiles of all outputs (GLU: of the gate)
  int64_t tile_start[kMaxGemvOuts + 1];
  TiledOut outs[kMaxGemvOuts];
  bool accumulate;
  Glu glu;
  float* glu_out;
  bool f16;  // scales/biases f16 (else bf16)
};

// Output m (selected by constants, so that the parameters are not copied to local memory to be indexed).
__device__ __forceinline__ const TiledOut& OutAt(const TiledParams& p, int m) {
  return m == 0 ? p.outs[0] : m == 1 ? p.outs[1] : m == 2 ? p.outs[2] : p.outs[3];
}
__device__ __forceinline__ int64_t FirstTileOf(const TiledParams& p, int m) {
  return m == 0 ? 0 : m == 1 ? p.tile_start[1] : m == 2 ? p.tile_start[2] : p.tile_start[3];
}
// The output that row tile `unit` of the concatenated outputs belongs to.
__device__ __forceinline__ int OutputOf(const TiledParams& p, int64_t unit) {
  return (p.n_outs > 1 && unit >= p.tile_start[1]) + (p.n_outs > 2 && unit >= p.tile_start[2]) +
         (p.n_outs > 3 && unit >= p.tile_start[3]);
}

// Stores row r of row tile `unit` for x row tok, given its sums v (NM == 2: the gate's and the up
// projection's, stored as act(gate) * up; else y = v + bias, or y += it).
template <int NM>
__device__ __forceinline__ void StoreTileRow(const TiledParams& p, int64_t unit, int r, int tok, const float (&v)[NM]) {
  if constexpr (NM == 2) {
    const int64_t n = unit * kTileRows + r;
    const TiledOut& gate = p.outs[0];
    const TiledOut& up = p.outs[1];
    const float gv = v[0] + (gate.bias ? gate.bias[n] : 0.0f);
    const float uv = v[1] + (up.bias ? up.bias[n] : 0.0f);
    p.glu_out[tok * gate.rows + n] = Act(p.glu, gv) * uv;
  } else {
    const int m0 = OutputOf(p, unit);
    const TiledOut& o = OutAt(p, m0);
    const int64_t n = (unit - FirstTileOf(p, m0)) * kTileRows + r;
    const float val = v[0] + (o.bias ? o.bias[n] : 0.0f);
    float* y = o.y + tok * o.rows + n;
    *y = p.accumulate ? *y + val : val;
  }
}

// The group sums of an affine 4-bit tile's MMAs, c (rows g and g + 8 of the tile, x's hi and lo columns of
// one x row), scaled in by the group's packed scales s2 and biases b2 (rows g low, g + 8 high) and x's sum X
// of the group: acc += s M + (b - 128 s) X (tiled_format.cuh); c is cleared.
template <bool F16>
__device__ __forceinline__ void ScaleGroup(float (&acc)[2], float (&c)[4], uint32_t s2, uint32_t b2, float xg) {
  const float s_lo = Half16(s2 & 0xFFFFu, F16), s_hi = Half16(s2 >> 16, F16);
  const float o_lo = Half16(b2 & 0xFFFFu, F16) - 128.0f * s_lo;
  const float o_hi = Half16(b2 >> 16, F16) - 128.0f * s_hi;
  acc[0] += s_lo * (c[0] + c[1]) + o_lo * xg;
  acc[1] += s_hi * (c[2] + c[3]) + o_hi * xg;
  c[0] = c[1] = c[2] = c[3] = 0.0f;
}

// Calls f(std::integral_constant<int, GS>, std::bool_constant<F16>) for the launch's group size (32, 64 or 128)
// and scale type, so that each kernel is instantiated for the types it serves; ForEveryGroupType for all six.
template <typename F>
void WithGroupType(int group_size, bool f16, F&& f) {
  const auto by_size = [&](auto f16c) {
    if (group_size == 32) return f(std::integral_constant<int, 32>{}, f16c);
    if (group_size == 64) return f(std::integral_constant<int, 64>{}, f16c);
    return f(std::integral_constant<int, 128>{}, f16c);
  };
  f16 ? by_size(std::true_type{}) : by_size(std::false_type{});
}
template <typename F>
void ForEveryGroupType(F&& f) {
  for (int gs : {32, 64, 128})
    for (bool f16 : {false, true}) WithGroupType(gs, f16, f);
}

// The streaming kernel (gemv_stream.cu), for launches of up to 4 x rows (one MMA column block) whose arrays
// are 16-byte aligned and whose x fits its shared memory: returns false (launching nothing) otherwise.
// `blocks` > 0 caps its grid (tests: one block then cycles its ring many times).
bool LaunchGemvStream(const TiledParams& p, bool glu, int sms, int blocks, cudaStream_t stream);
// Its shared-memory opt-in, once, before any launch and outside capture.
void PrepareStreamKernels();

}  // namespace pensieve::backend::cuda
