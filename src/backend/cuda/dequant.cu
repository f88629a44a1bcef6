// Helpers of the many-row (prefill) matmuls, whose products cuBLAS computes on tensor cores from bf16 operands:
// weights expanded to bf16 a slab of rows at a time, activations rounded to bf16, and the elementwise bias and
// gated-activation steps.
//
// Each weight becomes s q + b in f32 (as the CPU computes it) and is then rounded to bf16, as MLX's own
// dequantization to bf16 scales does. The 4-bit expansions take a whole 32-bit word (8 codes) or, for the tiled
// layout, a lane's 16 bytes of a 16 x 64 tile per thread, so reads are coalesced and no element pays for an
// index division.
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

unsigned GridFor(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(CeilDiv(n, 256), 132 * 16)); }

#define PENSIEVE_GRID_LOOP(i, n)                                                                          \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Two values as one word of bf16 (the first in the low half, as memory order has it).
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float Affine(float s, float b, uint32_t q) {
  return __fadd_rn(__fmul_rn(s, static_cast<float>(q)), b);
}

// Any format, an element per thread (the fallback: f16, unusual bit widths).
__global__ void DequantAnyKernel(MatRef w, int64_t row0, int64_t rows, __nv_bfloat16* out) {
  PENSIEVE_GRID_LOOP(i, rows * w.cols) out[i] = __float2bfloat16_rn(WeightAt(w, row0 + i / w.cols, i % w.cols));
}

// Row-major B-bit codes (B = 4 or 8): a word holds the codes of columns E j .. E j + E - 1 (E = 32 / B, low bits
// first), all in one group; they become E / 2 words of bf16 pairs, stored at once.
template <int B>
__global__ void DequantAffineKernel(MatRef w, int64_t row0, int64_t rows, uint32_t* out) {
  constexpr int E = 32 / B;
  constexpr uint32_t kMask = (1u << B) - 1;
  const int64_t words = w.cols / E, groups = w.cols / w.group_size;
  const uint32_t* data = static_cast<const uint32_t*>(w.data) + row0 * words;
  PENSIEVE_GRID_LOOP(i, rows * words) {
    const int64_t r = row0 + i / words, j = i % words;
    const int64_t g = r * groups + j * E / w.group_size;
    const float s = LoadAs(w.type, w.scales, g), b = w.biases ? LoadAs(w.type, w.biases, g) : 0.0f;
    const uint32_t q = data[i];
    uint32_t v[E / 2];
#pragma unroll
    for (int k = 0; k < E / 2; ++k)
      v[k] = PackBf16(Affine(s, b, (q >> (2 * k * B)) & kMask), Affine(s, b, (q >> ((2 * k + 1) * B)) & kMask));
    if constexpr (E == 8) {
      reinterpret_cast<uint4*>(out)[i] = make_uint4(v[0], v[1], v[2], v[3]);
    } else {
      reinterpret_cast<uint2*>(out)[i] = make_uint2(v[0], v[1]);
    }
  }
}

// Tiled 4-bit (gemv_tiled.cu's order; row0 a multiple of 16): lane l = 4 g + t of a 16 x 64 tile holds, in
// word k, rows g and g + 8 at columns 16 k + 2 t + {0, 1, 8, 9}; nibble h + 2 e8 + 4 e of the word is row
// g + 8 h, column 16 k + 2 t + 8 e8 + e. Its scale and bias for row g + 8 h sit at ((tile row * groups +
// group) * 8 + g) * 2 + h.
__global__ void DequantTiledKernel(MatRef w, int64_t row0, int64_t rows, uint32_t* out) {
  const int64_t ctiles = w.cols / 64, groups = w.cols / w.group_size;
  const int64_t units = rows / 16 * ctiles * 32;  // lanes of the slab's tiles
  PENSIEVE_GRID_LOOP(i, units) {
    const int lane = static_cast<int>(i & 31), g = lane >> 2, t = lane & 3;
    const int64_t tile = i >> 5, rt = row0 / 16 + tile / ctiles, ct = tile % ctiles;
    const uint4 q4 = reinterpret_cast<const uint4*>(w.data)[(rt * ctiles + ct) * 32 + lane];
    const uint32_t words[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t c = ct * 64 + 16 * k + 2 * t;
      const int64_t at = ((rt * groups + c / w.group_size) * 8 + g) * 2;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float s = LoadAs(w.type, w.scales, at + h), b = w.biases ? LoadAs(w.type, w.biases, at + h) : 0.0f;
        const uint32_t q = words[k] >> (4 * h);
        uint32_t* row = out + ((rt * 16 + g + 8 * h - row0) * w.cols + c) / 2;
        row[0] = PackBf16(Affine(s, b, q & 15), Affine(s, b, (q >> 16) & 15));
        row[4] = PackBf16(Affine(s, b, (q >> 8) & 15), Affine(s, b, (q >> 24) & 15));
      }
    }
  }
}

__global__ void ToBf16Kernel(const float* x, int64_t n, uint32_t* out) {
  PENSIEVE_GRID_LOOP(i, n / 2) {
    const float2 v = reinterpret_cast<const float2*>(x)[i];
    out[i] = PackBf16(v.x, v.y);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0 && n % 2) reinterpret_cast<__nv_bfloat16*>(out)[n - 1] = __float2bfloat16_rn(x[n - 1]);
}

__global__ void BiasAddKernel(float* y, const float* bias, int64_t rows, int64_t cols) {
  PENSIEVE_GRID_LOOP(i, rows * cols) y[i] += bias[i % cols];
}

__global__ void GluActKernel(Glu act, const float* gate, const float* up, int64_t n, float* out) {
  PENSIEVE_GRID_LOOP(i, n) out[i] = Act(act, gate[i]) * up[i];
}

#undef PENSIEVE_GRID_LOOP

}  // namespace

void LaunchDequantBf16(const MatRef& w, int64_t row0, int64_t rows, uint16_t* out, cudaStream_t stream) {
  if (w.tiled) {
    if (!(row0 % 16 == 0 && rows % 16 == 0)) throw Error("cuda: a tiled weight's slab must start and end on a tile row");
    DequantTiledKernel<<<GridFor(rows / 16 * w.cols / 64 * 32), 256, 0, stream>>>(w, row0, rows, reinterpret_cast<uint32_t*>(out));
  } else if (w.kind == MatRef::Kind::kAffine && w.bits == 4 && w.cols % 8 == 0 && w.group_size % 8 == 0) {
    DequantAffineKernel<4><<<GridFor(rows * w.cols / 8), 256, 0, stream>>>(w, row0, rows, reinterpret_cast<uint32_t*>(out));
  } else if (w.kind == MatRef::Kind::kAffine && w.bits == 8 && w.cols % 4 == 0 && w.group_size % 4 == 0) {
    DequantAffineKernel<8><<<GridFor(rows * w.cols / 4), 256, 0, stream>>>(w, row0, rows, reinterpret_cast<uint32_t*>(out));
  } else {
    DequantAnyKernel<<<GridFor(rows * w.cols), 256, 0, stream>>>(w, row0, rows, reinterpret_cast<__nv_bfloat16*>(out));
  }
}

void LaunchToBf16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream) {
  ToBf16Kernel<<<GridFor(std::max<int64_t>(n / 2, 1)), 256, 0, stream>>>(x, n, reinterpret_cast<uint32_t*>(out));
}
void LaunchBiasAdd(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  BiasAddKernel<<<GridFor(rows * cols), 256, 0, stream>>>(y, bias, rows, cols);
}
void LaunchGluAct(Glu act, const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  GluActKernel<<<GridFor(n), 256, 0, stream>>>(act, gate, up, n, out);
}

}  // namespace pensieve::backend::cuda
