// Decode matmuls: y = x W^T for a few rows of x (T <= 8), reading each weight byte once.
//
// A warp owns R output rows (2R weight rows for the gated MLP: gate and up of the same outputs) and walks the
// whole input width: lane l takes 16-byte chunks l, l + 32, ... of each row (two chunks in flight per row), so
// a warp's loads are 512 contiguous bytes per row. Activations stay f32 and products accumulate in f32; the
// warp's partial sums are reduced with shuffles at the end. Affine weights are dequantized in registers:
// sum_j (s q_j + b) x_j = s sum_j q_j x_j + b sum_j x_j per group, so the scale and bias are applied once per
// group, and codes become floats by placing their bits under a fixed exponent (see Chunk), not by a conversion
// instruction. Tall matrices (a long input width, few rows) split the width over the four warps of a block.
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

enum class Fmt { kF32, kBF16, kF16, kA4, kA8 };

template <Fmt F>
constexpr int kElems = F == Fmt::kF32 ? 4 : (F == Fmt::kA4 ? 32 : (F == Fmt::kA8 ? 16 : 8));

struct OutDesc {
  const uint8_t* data;
  const void* scales;
  const void* biases;
  const float* bias;
  float* y;
  int64_t rows;
  int64_t row_bytes;
  int64_t groups;  // per row (affine)
};

struct Params {
  const float* x;
  int T;
  int64_t K;
  int n_outs;
  int64_t total;                        // output units: rows of all outputs (GLU: of the gate)
  int64_t row_start[kMaxGemvOuts + 1];  // prefix sums of rows (GLU: one entry, the gate's rows)
  OutDesc outs[kMaxGemvOuts];
  bool accumulate;
  Glu glu;
  float* glu_out;
  FloatType stype;  // scales/biases
  int group_size;
};

// Sums of x[t, c*E .. c*E + E) and, per weight row, sum_j w_j x_j for one 16-byte chunk of each row.
template <Fmt F, int TT, int NR>
__device__ __forceinline__ void Chunk(const Params& p, const uint4 (&w)[NR], int64_t c, float (&acc)[NR][TT],
                                      const float (&s)[NR], const float (&b)[NR]) {
  constexpr int E = kElems<F>;
#pragma unroll
  for (int t = 0; t < TT; ++t) {
    if (t >= p.T) break;
    const float4* xv = reinterpret_cast<const float4*>(p.x + t * p.K + c * E);
    if constexpr (F == Fmt::kF32) {
      const float4 x = __ldg(xv);
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        acc[r][t] += __uint_as_float(w[r].x) * x.x + __uint_as_float(w[r].y) * x.y + __uint_as_float(w[r].z) * x.z +
                     __uint_as_float(w[r].w) * x.w;
      }
    } else if constexpr (F == Fmt::kBF16 || F == Fmt::kF16) {
      const float4 x0 = __ldg(xv), x1 = __ldg(xv + 1);
      const float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        const uint32_t words[4] = {w[r].x, w[r].y, w[r].z, w[r].w};
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float lo, hi;
          if constexpr (F == Fmt::kBF16) {
            lo = __uint_as_float(words[i] << 16);
            hi = __uint_as_float(words[i] & 0xFFFF0000u);
          } else {
            const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[i]));
            lo = f.x, hi = f.y;
          }
          sum += lo * xs[2 * i] + hi * xs[2 * i + 1];
        }
        acc[r][t] += sum;
      }
    } else if constexpr (F == Fmt::kA4) {
      // 4-bit: the even and odd nibbles of a word go to separate words (a byte each), and a byte permute puts
      // byte k under the exponent of 0.5: the float 0.5 + q/256 for code q, exact. Then per group
      // sum_j (s q_j + b) x_j = 256 s F + (b - 128 s) X with F = sum_j (0.5 + q_j/256) x_j, X = sum_j x_j:
      // two instructions per weight (permute, fused multiply-add), none to convert.
      float f[NR];
#pragma unroll
      for (int r = 0; r < NR; ++r) f[r] = 0.0f;
      float xsum = 0.0f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float4 x0 = __ldg(xv + 2 * i), x1 = __ldg(xv + 2 * i + 1);
        const float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
        xsum += ((xs[0] + xs[1]) + (xs[2] + xs[3])) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
#pragma unroll
        for (int r = 0; r < NR; ++r) {
          const uint32_t word = i == 0 ? w[r].x : i == 1 ? w[r].y : i == 2 ? w[r].z : w[r].w;
          const uint32_t even = word & 0x0F0F0F0Fu, odd = (word >> 4) & 0x0F0F0F0Fu;
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const uint32_t sel = 0x7044u | (k << 8);
            f[r] += __uint_as_float(__byte_perm(even, 0x3F000000u, sel)) * xs[2 * k];
            f[r] += __uint_as_float(__byte_perm(odd, 0x3F000000u, sel)) * xs[2 * k + 1];
          }
        }
      }
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[r][t] += (256.0f * s[r]) * f[r] + (b[r] - 128.0f * s[r]) * xsum;
    } else {
      // 8-bit: a byte permute puts code q under the exponent of 2^23; subtracting 2^23 leaves q exactly. Per group
      // sum_j (s q_j + b) x_j = s sum_j q_j x_j + b sum_j x_j.
      float qx[NR];
#pragma unroll
      for (int r = 0; r < NR; ++r) qx[r] = 0.0f;
      float xsum = 0.0f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float4 x0 = __ldg(xv + i);
        const float xs[4] = {x0.x, x0.y, x0.z, x0.w};
        xsum += (xs[0] + xs[1]) + (xs[2] + xs[3]);
#pragma unroll
        for (int r = 0; r < NR; ++r) {
          const uint32_t word = i == 0 ? w[r].x : i == 1 ? w[r].y : i == 2 ? w[r].z : w[r].w;
#pragma unroll
          for (int k = 0; k < 4; ++k)
            qx[r] += (__uint_as_float(__byte_perm(word, 0x4B000000u, 0x7440u | k)) - 8388608.0f) * xs[k];
        }
      }
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[r][t] += s[r] * qx[r] + b[r] * xsum;
    }
  }
}

// Kernel parameters are read with constant indices only: a dynamic index would copy them to local memory.
__device__ __forceinline__ int MatOf(const Params& p, int64_t u) {
  return (p.n_outs > 1 && u >= p.row_start[1]) + (p.n_outs > 2 && u >= p.row_start[2]) +
         (p.n_outs > 3 && u >= p.row_start[3]);
}
template <class G>
__device__ __forceinline__ auto Pick(const Params& p, int m, G get) {
  switch (m) {
    case 0: return get(p.outs[0], p.row_start[0]);
    case 1: return get(p.outs[1], p.row_start[1]);
    case 2: return get(p.outs[2], p.row_start[2]);
    default: return get(p.outs[3], p.row_start[3]);
  }
}

// KS warps of a block split one set of rows' input width (KS = 1: each of the 4 warps has its own rows). Lane l
// reads chunks l, l + 32, ... of its rows, U of them per row loaded before any is used: U * NR 16-byte loads
// in flight per lane, with few enough registers that many warps share a multiprocessor.
template <Fmt F, int TT, int R, bool GLU, int KS, int U>
__global__ void __launch_bounds__(128) GemvKernel(Params p) {
  constexpr int NR = GLU ? 2 * R : R;
  constexpr int E = kElems<F>;
  constexpr bool kAffine = F == Fmt::kA4 || F == Fmt::kA8;
  const int lane = threadIdx.x & 31, kw = KS == 1 ? 0 : threadIdx.x >> 5;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t unit0 = KS == 1 ? warp * R : static_cast<int64_t>(blockIdx.x) * R;
  if (unit0 >= p.total) return;
  WaitPrevious();
  StartNext();

  // Each weight row (GLU: rows [0, R) of the gate, [R, 2R) of the up projection): data, group scales, biases.
  const int64_t gbytes = p.stype == FloatType::kF32 ? 4 : 2;
  const uint8_t* data[NR];
  const uint8_t* sc[NR];
  const uint8_t* bi[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) {
    const int64_t u = unit0 + (GLU ? r % R : r);
    const int m = GLU ? (r < R ? 0 : 1) : MatOf(p, u);
    data[r] = sc[r] = bi[r] = nullptr;
    if (u < p.total) {
      Pick(p, m, [&](const OutDesc& o, int64_t first) {
        const int64_t n = u - (GLU ? 0 : first);
        data[r] = o.data + n * o.row_bytes;
        if (kAffine) {
          sc[r] = static_cast<const uint8_t*>(o.scales) + n * o.groups * gbytes;
          bi[r] = o.biases ? static_cast<const uint8_t*>(o.biases) + n * o.groups * gbytes : nullptr;
        }
        return 0;
      });
    }
  }

  float acc[NR][TT];
#pragma unroll
  for (int r = 0; r < NR; ++r)
#pragma unroll
    for (int t = 0; t < TT; ++t) acc[r][t] = 0.0f;

  const int64_t chunks = p.K / E;
  for (int64_t c0 = kw * 32 * U + lane; c0 < chunks; c0 += 32 * U * KS) {
    uint4 w[U][NR];
    float sv[U][NR], bv[U][NR];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const int64_t c = c0 + 32 * j;
      const bool in = c < chunks;
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        w[j][r] = data[r] && in ? __ldg(reinterpret_cast<const uint4*>(data[r]) + c) : make_uint4(0, 0, 0, 0);
        sv[j][r] = bv[j][r] = 0.0f;
        if constexpr (kAffine) {
          if (data[r] && in) {
            const int64_t g = c * E / p.group_size;
            sv[j][r] = LoadAs(p.stype, sc[r], g);
            bv[j][r] = bi[r] ? LoadAs(p.stype, bi[r], g) : 0.0f;
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < U; ++j)
      if (c0 + 32 * j < chunks) Chunk<F, TT, NR>(p, w[j], c0 + 32 * j, acc, sv[j], bv[j]);
  }

#pragma unroll
  for (int r = 0; r < NR; ++r)
#pragma unroll
    for (int t = 0; t < TT; ++t) acc[r][t] = WarpSum(acc[r][t]);
  if constexpr (KS > 1) {  // the block's warps add their parts of the width
    __shared__ float part[KS][NR][TT];
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int t = 0; t < TT; ++t) part[kw][r][t] = acc[r][t];
    __syncthreads();
    if (kw != 0) return;
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
      for (int t = 0; t < TT; ++t) acc[r][t] = (part[0][r][t] + part[1][r][t]) + (part[2][r][t] + part[3][r][t]);
  }
  if (lane != 0) return;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t u = unit0 + r;
    if (u >= p.total) continue;
    if constexpr (GLU) {
      const OutDesc& g = p.outs[0];
      const OutDesc& up = p.outs[1];
#pragma unroll
      for (int t = 0; t < TT; ++t) {
        if (t >= p.T) break;
        const float gv = acc[r][t] + (g.bias ? g.bias[u] : 0.0f);
        const float uv = acc[R + r][t] + (up.bias ? up.bias[u] : 0.0f);
        p.glu_out[t * g.rows + u] = Act(p.glu, gv) * uv;
      }
    } else {
      Pick(p, MatOf(p, u), [&](const OutDesc& o, int64_t first) {
        const int64_t n = u - first;
#pragma unroll
        for (int t = 0; t < TT; ++t) {
          if (t >= p.T) break;
          const float v = acc[r][t] + (o.bias ? o.bias[n] : 0.0f);
          float* y = o.y + t * o.rows + n;
          *y = p.accumulate ? *y + v : v;
        }
        return 0;
      });
    }
  }
}

// Any format, any width: one warp per output unit, one element at a time.
__global__ void GemvGenericKernel(Params p, MatRef w0, MatRef w1) {
  const int lane = threadIdx.x & 31;
  const int64_t u = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const bool glu = p.glu != Glu::kNone;
  if (u >= p.total) return;
  WaitPrevious();
  StartNext();
  const int m = glu ? 0 : MatOf(p, u);
  const int64_t n = u - (glu ? 0 : Pick(p, m, [](const OutDesc&, int64_t first) { return first; }));
  // The MatRefs of matrices 0 and 1 come as arguments; others (q/k/v's third) are rebuilt from the descriptor.
  MatRef w = m == 0 ? w0 : w1;
  if (m >= 2) {
    w = w0;
    Pick(p, m, [&](const OutDesc& o, int64_t) {
      w.data = o.data, w.scales = o.scales, w.biases = o.biases, w.rows = o.rows;
      return 0;
    });
  }
  float a[kMaxGemvRows] = {}, b[kMaxGemvRows] = {};
  for (int64_t k = lane; k < p.K; k += 32) {
    const float wv = WeightAt(w, n, k);
    const float uv = glu ? WeightAt(w1, n, k) : 0.0f;
    for (int t = 0; t < p.T; ++t) {
      const float x = p.x[t * p.K + k];
      a[t] += wv * x;
      if (glu) b[t] += uv * x;
    }
  }
  for (int t = 0; t < p.T; ++t) {
    a[t] = WarpSum(a[t]);
    b[t] = WarpSum(b[t]);
  }
  if (lane != 0) return;
  const OutDesc o = Pick(p, m, [](const OutDesc& d, int64_t) { return d; });
  for (int t = 0; t < p.T; ++t) {
    if (glu) {
      const float g = a[t] + (o.bias ? o.bias[n] : 0.0f);
      const float v = b[t] + (p.outs[1].bias ? p.outs[1].bias[n] : 0.0f);
      p.glu_out[t * o.rows + n] = Act(p.glu, g) * v;
    } else {
      const float v = a[t] + (o.bias ? o.bias[n] : 0.0f);
      float* y = o.y + t * o.rows + n;
      *y = p.accumulate ? *y + v : v;
    }
  }
}

template <Fmt F, int TT, int R>
void LaunchTyped(const Params& p, bool glu, cudaStream_t stream) {
  // Quantized rows: two chunks in flight per row (their decode is the work; more rows share each x load);
  // float rows: four.
  constexpr int U = F == Fmt::kA4 || F == Fmt::kA8 ? 2 : 4;
  const int64_t units = p.total;
  const int64_t warps = CeilDiv(units, R);
  // A wide input (four or more U-chunk steps per warp when split four ways): the block's warps share rows.
  const bool split = p.K / kElems<F> >= 4 * 32 * U * 4;
  const unsigned blocks = static_cast<unsigned>(split ? warps : CeilDiv(warps, 4));
  const auto kernel = glu ? (split ? GemvKernel<F, TT, R, true, 4, U> : GemvKernel<F, TT, R, true, 1, U>)
                          : (split ? GemvKernel<F, TT, R, false, 4, U> : GemvKernel<F, TT, R, false, 1, U>);
  Launch(kernel, dim3(blocks), dim3(128), 0, stream, p);
}

template <Fmt F>
void LaunchFormat(const Params& p, bool glu, cudaStream_t stream) {
  // Rows per warp for one input row: quantized four (x loads and sums shared by more rows), float two; the
  // gated MLP reads a gate and an up row per output. One beyond.
  constexpr bool kQuant = F == Fmt::kA4 || F == Fmt::kA8;
  if (p.T == 1) {
    if constexpr (kQuant) return glu ? LaunchTyped<F, 1, 4>(p, glu, stream) : LaunchTyped<F, 1, 4>(p, glu, stream);
    return glu ? LaunchTyped<F, 1, 1>(p, glu, stream) : LaunchTyped<F, 1, 2>(p, glu, stream);
  }
  if (p.T == 2) return LaunchTyped<F, 2, 1>(p, glu, stream);
  if (p.T <= 4) return LaunchTyped<F, 4, 1>(p, glu, stream);
  return LaunchTyped<F, 8, 1>(p, glu, stream);
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

bool GemvFast(const MatRef& w) {
  if (w.tiled) return true;
  if (!Aligned16(w.data)) return false;
  if (w.kind == MatRef::Kind::kFloat) {
    const int e = w.type == FloatType::kF32 ? 4 : 8;
    return w.cols % e == 0;
  }
  if (w.bits == 4) return w.group_size % 32 == 0 && w.cols % 32 == 0;
  if (w.bits == 8) return w.group_size % 16 == 0 && w.cols % 16 == 0;
  return false;
}

void LaunchGemv(const float* x, int T, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out,
                GemvScratch scratch, TiledLaunch tiled, cudaStream_t stream) {
  if (!(T >= 1 && T <= kMaxGemvRows && !outs.empty() && outs.size() <= kMaxGemvOuts))
    throw Error("cuda gemv: bad launch shape");
  if (outs[0].w.tiled) return LaunchGemvTiled(x, T, outs, accumulate, glu, glu_out, scratch, tiled, stream);
  Params p{};
  p.x = x;
  p.T = T;
  p.K = outs[0].w.cols;
  p.accumulate = accumulate;
  p.glu = glu;
  p.glu_out = glu_out;
  p.stype = outs[0].w.type;
  p.group_size = outs[0].w.group_size;
  const bool is_glu = glu != Glu::kNone;
  p.n_outs = is_glu ? 1 : static_cast<int>(outs.size());
  int64_t start = 0;
  bool fast = true;
  for (size_t i = 0; i < outs.size(); ++i) {
    const MatRef& w = outs[i].w;
    p.outs[i] = {static_cast<const uint8_t*>(w.data), w.scales, w.biases, outs[i].bias, outs[i].y, w.rows,
                 w.RowBytes(), w.kind == MatRef::Kind::kAffine ? w.cols / w.group_size : 0};
    fast = fast && GemvFast(w);
  }
  for (int i = 0; i < p.n_outs; ++i) {
    p.row_start[i] = start;
    start += outs[i].w.rows;
  }
  p.row_start[p.n_outs] = start;
  p.total = start;
  const MatRef& w = outs[0].w;
  if (!fast) {
    const unsigned blocks = static_cast<unsigned>(CeilDiv(start, 4));
    Launch(GemvGenericKernel, dim3(blocks), dim3(128), 0, stream, p, w, outs.size() > 1 ? outs[1].w : w);
    return;
  }
  if (w.kind == MatRef::Kind::kFloat) {
    if (w.type == FloatType::kF32) return LaunchFormat<Fmt::kF32>(p, is_glu, stream);
    if (w.type == FloatType::kBF16) return LaunchFormat<Fmt::kBF16>(p, is_glu, stream);
    return LaunchFormat<Fmt::kF16>(p, is_glu, stream);
  }
  if (w.bits == 4) return LaunchFormat<Fmt::kA4>(p, is_glu, stream);
  return LaunchFormat<Fmt::kA8>(p, is_glu, stream);
}

}  // namespace pensieve::backend::cuda
