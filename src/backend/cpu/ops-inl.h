// Per-target SIMD building blocks (dot products, row conversions, elementwise ops). Included by the kernel
// .cpp files once per Highway target (foreach_target.h); code already inside a target calls these directly.
// No include guard on purpose: the toggle below lets each target's pass compile it again.
#if defined(PENSIEVE_BACKEND_CPU_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef PENSIEVE_BACKEND_CPU_OPS_INL_H_
#undef PENSIEVE_BACKEND_CPU_OPS_INL_H_
#else
#define PENSIEVE_BACKEND_CPU_OPS_INL_H_
#endif

#include <cstdint>

#include "backend/backend.h"
#include "backend/reference.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace pensieve::backend::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// N f32 lanes loaded from bf16 or f16 storage.
template <class D>
HWY_INLINE hn::Vec<D> LoadBf16(D d, const uint16_t* p) {
  const hn::Rebind<hwy::bfloat16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(p)));
}
template <class D>
HWY_INLINE hn::Vec<D> LoadF16(D d, const uint16_t* p) {
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}
template <FloatType kType, class D>
HWY_INLINE hn::Vec<D> LoadAs(D d, const void* base, int64_t i) {
  if constexpr (kType == FloatType::kF32) {
    return hn::LoadU(d, static_cast<const float*>(base) + i);
  } else if constexpr (kType == FloatType::kBF16) {
    return LoadBf16(d, static_cast<const uint16_t*>(base) + i);
  } else {
    return LoadF16(d, static_cast<const uint16_t*>(base) + i);
  }
}
template <FloatType kType>
HWY_INLINE float ScalarAs(const void* base, int64_t i) {
  if constexpr (kType == FloatType::kF32) {
    return static_cast<const float*>(base)[i];
  } else if constexpr (kType == FloatType::kBF16) {
    return ref::Bf16ToF32(static_cast<const uint16_t*>(base)[i]);
  } else {
    return ref::F16ToF32(static_cast<const uint16_t*>(base)[i]);
  }
}

// sum_i x[i] * w[i], w of type kType. Four accumulators hide FMA latency.
template <FloatType kType>
HWY_INLINE float DotAs(const float* HWY_RESTRICT x, const void* HWY_RESTRICT w, int64_t n) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::MulAdd(hn::LoadU(d, x + i), LoadAs<kType>(d, w, i), a0);
    a1 = hn::MulAdd(hn::LoadU(d, x + i + N), LoadAs<kType>(d, w, i + N), a1);
    a2 = hn::MulAdd(hn::LoadU(d, x + i + 2 * N), LoadAs<kType>(d, w, i + 2 * N), a2);
    a3 = hn::MulAdd(hn::LoadU(d, x + i + 3 * N), LoadAs<kType>(d, w, i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(hn::LoadU(d, x + i), LoadAs<kType>(d, w, i), a0);
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) sum += x[i] * ScalarAs<kType>(w, i);
  return sum;
}

HWY_INLINE float Dot(const float* HWY_RESTRICT x, const float* HWY_RESTRICT y, int64_t n) {
  return DotAs<FloatType::kF32>(x, y, n);
}

// out[r] = sum_i x[i] * w_r[i] for four f32 rows at once: x is loaded once per step.
HWY_INLINE void Dot4(const float* HWY_RESTRICT x, const float* w0, const float* w1, const float* w2,
                     const float* w3, int64_t n, float* out) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto xv = hn::LoadU(d, x + i);
    a0 = hn::MulAdd(xv, hn::LoadU(d, w0 + i), a0);
    a1 = hn::MulAdd(xv, hn::LoadU(d, w1 + i), a1);
    a2 = hn::MulAdd(xv, hn::LoadU(d, w2 + i), a2);
    a3 = hn::MulAdd(xv, hn::LoadU(d, w3 + i), a3);
  }
  out[0] = hn::GetLane(hn::SumOfLanes(d, a0));
  out[1] = hn::GetLane(hn::SumOfLanes(d, a1));
  out[2] = hn::GetLane(hn::SumOfLanes(d, a2));
  out[3] = hn::GetLane(hn::SumOfLanes(d, a3));
  for (; i < n; ++i) {
    out[0] += x[i] * w0[i];
    out[1] += x[i] * w1[i];
    out[2] += x[i] * w2[i];
    out[3] += x[i] * w3[i];
  }
}

// out[j * 4 + i] = dot(x_i, w_j) for four activation rows x_i (stride ldx) and four f32 weight rows: a 4x4
// register tile, 16 independent accumulators fed by 8 loads per step (twice Dot4's FMAs per load).
HWY_INLINE void Dot4x4(const float* HWY_RESTRICT x, int64_t ldx, const float* w0, const float* w1, const float* w2,
                       const float* w3, int64_t n, float* out) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
  auto c00 = hn::Zero(d), c01 = hn::Zero(d), c02 = hn::Zero(d), c03 = hn::Zero(d);
  auto c10 = hn::Zero(d), c11 = hn::Zero(d), c12 = hn::Zero(d), c13 = hn::Zero(d);
  auto c20 = hn::Zero(d), c21 = hn::Zero(d), c22 = hn::Zero(d), c23 = hn::Zero(d);
  auto c30 = hn::Zero(d), c31 = hn::Zero(d), c32 = hn::Zero(d), c33 = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto a0 = hn::LoadU(d, x0 + i), a1 = hn::LoadU(d, x1 + i);
    const auto a2 = hn::LoadU(d, x2 + i), a3 = hn::LoadU(d, x3 + i);
    auto b = hn::LoadU(d, w0 + i);
    c00 = hn::MulAdd(a0, b, c00), c01 = hn::MulAdd(a1, b, c01), c02 = hn::MulAdd(a2, b, c02), c03 = hn::MulAdd(a3, b, c03);
    b = hn::LoadU(d, w1 + i);
    c10 = hn::MulAdd(a0, b, c10), c11 = hn::MulAdd(a1, b, c11), c12 = hn::MulAdd(a2, b, c12), c13 = hn::MulAdd(a3, b, c13);
    b = hn::LoadU(d, w2 + i);
    c20 = hn::MulAdd(a0, b, c20), c21 = hn::MulAdd(a1, b, c21), c22 = hn::MulAdd(a2, b, c22), c23 = hn::MulAdd(a3, b, c23);
    b = hn::LoadU(d, w3 + i);
    c30 = hn::MulAdd(a0, b, c30), c31 = hn::MulAdd(a1, b, c31), c32 = hn::MulAdd(a2, b, c32), c33 = hn::MulAdd(a3, b, c33);
  }
  const float* xs[4] = {x0, x1, x2, x3};
  const float* ws[4] = {w0, w1, w2, w3};
  const hn::Vec<DF> acc[16] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33};
  for (int j = 0; j < 4; ++j)
    for (int t = 0; t < 4; ++t) {
      float sum = hn::GetLane(hn::SumOfLanes(d, acc[j * 4 + t]));
      for (int64_t k = i; k < n; ++k) sum += xs[t][k] * ws[j][k];
      out[j * 4 + t] = sum;
    }
}

// dst[i] = src[i] widened to f32.
template <FloatType kType>
HWY_INLINE void ConvertRow(const void* HWY_RESTRICT src, float* HWY_RESTRICT dst, int64_t n) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(LoadAs<kType>(d, src, i), d, dst + i);
  for (; i < n; ++i) dst[i] = ScalarAs<kType>(src, i);
}

// y[i] += a * x[i]
HWY_INLINE void Axpy(float a, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, int64_t n) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const auto av = hn::Set(d, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(av, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

// y[i] *= a
HWY_INLINE void ScaleRow(float a, float* HWY_RESTRICT y, int64_t n) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const auto av = hn::Set(d, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(av, hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] *= a;
}

// y = x / sqrt(mean(x^2) + eps) * w
HWY_INLINE void RmsNormRow(const float* x, const float* HWY_RESTRICT w, int64_t n, float eps, float* y) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  float ss = Dot(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const auto iv = hn::Set(d, inv);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), iv), hn::LoadU(d, w + i)), d, y + i);
  for (; i < n; ++i) y[i] = x[i] * inv * w[i];
}

// out = silu(g) * u, silu(g) = g / (1 + exp(-g))
HWY_INLINE void SiluMulRow(const float* g, const float* u, int64_t n, float* out) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto gv = hn::LoadU(d, g + i);
    const auto e = hn::CallExp(d, hn::Neg(gv));
    hn::StoreU(hn::Mul(hn::Div(gv, hn::Add(one, e)), hn::LoadU(d, u + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// out = gelu_tanh(g) * u
HWY_INLINE void GeluMulRow(const float* g, const float* u, int64_t n, float* out) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const auto half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  const auto c = hn::Set(d, 0.7978845608028654f), c3 = hn::Set(d, 0.044715f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto x = hn::LoadU(d, g + i);
    const auto inner = hn::Mul(c, hn::MulAdd(hn::Mul(c3, x), hn::Mul(x, x), x));
    const auto gel = hn::Mul(hn::Mul(half, x), hn::Add(one, hn::CallTanh(d, inner)));
    hn::StoreU(hn::Mul(gel, hn::LoadU(d, u + i)), d, out + i);
  }
  for (; i < n; ++i) {
    float x = g[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))) * u[i];
  }
}

// x[i] = exp(x[i] - m) in place; returns the sum (the unnormalised softmax of a row whose max is m).
HWY_INLINE float ExpSumRow(float* x, int64_t n, float m) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const auto mv = hn::Set(d, m);
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), mv));
    hn::StoreU(e, d, x + i);
    acc = hn::Add(acc, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - m));
  return sum;
}

// x = softmax(x), in place.
HWY_INLINE void SoftmaxRow(float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  ScaleRow(1.0f / ExpSumRow(x, n, m), x, n);
}

// y += x
HWY_INLINE void AddRow(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, int64_t n) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, y + i), hn::LoadU(d, x + i)), d, y + i);
  for (; i < n; ++i) y[i] += x[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace pensieve::backend::cpu
HWY_AFTER_NAMESPACE();

#endif  // toggle
