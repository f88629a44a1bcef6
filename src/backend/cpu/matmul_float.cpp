// MatMul against f32 / bf16 / f16 weights, read in place.
//  - Few activation rows (decode): one dot product per (row, weight row), widening the weight in registers.
//  - Many rows (prefill): widen 4 weight rows into thread scratch once per block of activation rows, then
//    Dot4 each activation row against them, so the conversion cost is shared by up to kTBlock rows.
#include "backend/cpu/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/matmul_float.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace pensieve::backend::cpu {
namespace HWY_NAMESPACE {

constexpr int64_t kDirectMaxRows = 2;
constexpr int64_t kTBlock = 64;

template <FloatType kType>
void MatMulTyped(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  const int64_t K = outs[0].w.cols;
  if (T <= kDirectMaxRows) {
    RunRowChunks(pool, outs, [&](int s, int64_t begin, int64_t end, int) {
      const MatRef& w = outs[s].w;
      const float* bias = outs[s].bias;
      const uint8_t* base = static_cast<const uint8_t*>(w.data);
      const int64_t row_bytes = w.RowBytes(), N = w.rows;
      for (int64_t n = begin; n < end; ++n) {
        const float b = bias ? bias[n] : 0.0f;
        for (int64_t t = 0; t < T; ++t) outs[s].y[t * N + n] = DotAs<kType>(x + t * K, base + n * row_bytes, K) + b;
      }
    });
    return;
  }
  scratch.EnsureThread(pool.size(), 4 * K);
  RunRowChunks(pool, outs, [&](int s, int64_t begin, int64_t end, int thread) {
    const MatRef& w = outs[s].w;
    const float* bias = outs[s].bias;
    float* y = outs[s].y;
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t row_bytes = w.RowBytes(), N = w.rows;
    float* rows = scratch.Thread(thread);
    for (int64_t t0 = 0; t0 < T; t0 += kTBlock) {
      const int64_t t1 = std::min(T, t0 + kTBlock);
      for (int64_t n = begin; n < end; n += 4) {
        const int64_t m = std::min<int64_t>(4, end - n);
        const float* r[4];
        for (int64_t j = 0; j < 4; ++j) {
          if (j >= m) {
            r[j] = r[0];
          } else if constexpr (kType == FloatType::kF32) {
            r[j] = reinterpret_cast<const float*>(base + (n + j) * row_bytes);
          } else {
            ConvertRow<kType>(base + (n + j) * row_bytes, rows + j * K, K);
            r[j] = rows + j * K;
          }
        }
        int64_t t = t0;
        for (; t + 4 <= t1; t += 4) {
          float out[16];
          Dot4x4(x + t * K, K, r[0], r[1], r[2], r[3], K, out);
          for (int64_t j = 0; j < m; ++j)
            for (int64_t i = 0; i < 4; ++i) y[(t + i) * N + n + j] = out[j * 4 + i] + (bias ? bias[n + j] : 0.0f);
        }
        for (; t < t1; ++t) {
          float out[4];
          Dot4(x + t * K, r[0], r[1], r[2], r[3], K, out);
          for (int64_t j = 0; j < m; ++j) y[t * N + n + j] = out[j] + (bias ? bias[n + j] : 0.0f);
        }
      }
    }
  });
}

void MatMulFloatImpl(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  switch (outs[0].w.type) {
    case FloatType::kF32: return MatMulTyped<FloatType::kF32>(pool, scratch, x, T, outs);
    case FloatType::kBF16: return MatMulTyped<FloatType::kBF16>(pool, scratch, x, T, outs);
    case FloatType::kF16: return MatMulTyped<FloatType::kF16>(pool, scratch, x, T, outs);
    default: return;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pensieve::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pensieve::backend::cpu {
HWY_EXPORT(MatMulFloatImpl);
void MatMulFloat(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  HWY_DYNAMIC_DISPATCH(MatMulFloatImpl)(pool, scratch, x, T, outs);
}
}  // namespace pensieve::backend::cpu
#endif
