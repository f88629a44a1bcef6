// Row-wise and elementwise ops (rmsnorm, gated activations, residual add, softmax), one dynamic dispatch per
// call. Attention is in attention.cpp.
#include "backend/cpu/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/ops.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <cmath>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace pensieve::backend::cpu {
namespace HWY_NAMESPACE {

// Elementwise work is split into slices of this many floats (one task each).
constexpr int64_t kSlice = 16384;

void RmsNormImpl(ThreadPool& pool, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                 float* y) {
  const int64_t per_task = std::max<int64_t>(1, kSlice / std::max<int64_t>(dim, 1));
  pool.Run((rows + per_task - 1) / per_task, [&](int64_t task, int) {
    const int64_t end = std::min(rows, (task + 1) * per_task);
    for (int64_t r = task * per_task; r < end; ++r) RmsNormRow(x + r * dim, weight, dim, eps, y + r * dim);
  });
}

template <class F>
void Sliced(ThreadPool& pool, int64_t n, const F& f) {
  pool.Run((n + kSlice - 1) / kSlice, [&](int64_t task, int) {
    const int64_t begin = task * kSlice;
    f(begin, std::min(n, begin + kSlice) - begin);
  });
}

void SiluMulImpl(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out) {
  Sliced(pool, n, [&](int64_t b, int64_t len) { SiluMulRow(gate + b, up + b, len, out + b); });
}
void GeluMulImpl(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out) {
  Sliced(pool, n, [&](int64_t b, int64_t len) { GeluMulRow(gate + b, up + b, len, out + b); });
}
void AddImpl(ThreadPool& pool, float* y, const float* x, int64_t n) {
  Sliced(pool, n, [&](int64_t b, int64_t len) { AddRow(y + b, x + b, len); });
}

void SoftmaxImpl(ThreadPool& pool, float* x, int64_t rows, int64_t n) {
  pool.Run(rows, [&](int64_t r, int) { SoftmaxRow(x + r * n, n); });
}

double ExpSumImpl(const float* x, int64_t n, float max) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const auto mv = hn::Set(d, max);
  const auto lowest = hn::Set(d, -100.0f);  // exp(-100) ~ 4e-44 adds nothing; -inf (removed tokens) stays finite
  double sum = 0;
  int64_t i = 0;
  while (i + N <= n) {  // f32 lanes over stretches of 1024 values, then added in double
    auto acc = hn::Zero(d);
    for (const int64_t end = std::min(n - N + 1, i + 1024); i < end; i += N)
      acc = hn::Add(acc, hn::Exp(d, hn::Max(hn::Sub(hn::LoadU(d, x + i), mv), lowest)));
    sum += hn::GetLane(hn::SumOfLanes(d, acc));
  }
  for (; i < n; ++i) sum += std::exp(std::max(x[i] - max, -100.0f));
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace pensieve::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pensieve::backend::cpu {
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(GeluMulImpl);
HWY_EXPORT(AddImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(ExpSumImpl);

double ExpSum(const float* x, int64_t n, float max) { return HWY_DYNAMIC_DISPATCH(ExpSumImpl)(x, n, max); }

void Softmax(ThreadPool& pool, float* x, int64_t rows, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(pool, x, rows, n); }

void RmsNorm(ThreadPool& pool, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
             float* y) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(pool, x, weight, rows, dim, eps, y);
}
void SiluMul(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMulImpl)(pool, gate, up, n, out);
}
void GeluMul(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(GeluMulImpl)(pool, gate, up, n, out);
}
void Add(ThreadPool& pool, float* y, const float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(AddImpl)(pool, y, x, n); }
}  // namespace pensieve::backend::cpu
#endif
