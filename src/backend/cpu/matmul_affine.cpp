// MatMul against MLX affine-quantized weights (value = scale * q + bias per group), read in place.
//
// Packed layout: a row is a little-endian bit stream of `bits`-wide fields in U32 words. With kPer = 32/bits
// fields per word, a vector of N words holds elements kPer*i + k in field k of lane i. Rather than shuffling
// the weights, we permute the activations once per call (PermuteX: element kPer*i + k of a block of kPer*N
// goes to slot k*N + i); then field k of all lanes multiplies one contiguous vector of permuted x.
//
// Decode (few rows), per weight row and block of N words:
//   acc   = sum_k float(field_k(words)) * xp[k]          (per lane; each lane lies inside one group)
//   total += acc * scale_of_lane_group                     (one FMA per block)
// and the group biases contribute sum_g bias_g * sum_{j in g} x_j (group sums of x, computed once).
// Prefill (many rows): dequantize 4 weight rows into thread scratch in the same permuted order, then Dot4.
// Bit widths that do not divide 32 (3, 5, 6), or group sizes the lane mapping cannot express, take the
// scalar reference path.
#include "backend/cpu/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/matmul_affine.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops-inl.h"
#include "backend/reference.h"

HWY_BEFORE_NAMESPACE();
namespace pensieve::backend::cpu {
namespace HWY_NAMESPACE {

constexpr int64_t kFusedMaxRows = 8;
constexpr int64_t kTBlock = 64;

template <int kBits>
struct Packed {
  static constexpr int kPer = 32 / kBits;
  static constexpr uint32_t kMask = (1u << kBits) - 1;
};

// xp: x permuted block by block (see top); elements past the last whole block keep their order.
template <int kBits>
void PermuteX(const float* x, int64_t K, float* xp) {
  const DF d;
  const int64_t N = hn::Lanes(d), block = Packed<kBits>::kPer * N;
  const int64_t full = K / block * block;
  for (int64_t b = 0; b < full; b += block)
    for (int64_t i = 0; i < N; ++i)
      for (int k = 0; k < Packed<kBits>::kPer; ++k) xp[b + k * N + i] = x[b + Packed<kBits>::kPer * i + k];
  for (int64_t j = full; j < K; ++j) xp[j] = x[j];
}

// Per-lane group scale (or bias) of block b, from the row's f32 group values g (padded by N).
template <int kBits, class D, class I>
HWY_INLINE hn::Vec<D> LaneGroups(D d, const float* g, int64_t b, int64_t gs, const I& idx) {
  const int64_t block = Packed<kBits>::kPer * hn::Lanes(d);
  if (gs >= block) return hn::Set(d, g[b * block / gs]);
  return hn::TableLookupLanes(hn::LoadU(d, g + b * (block / gs)), idx);
}

template <FloatType kType>
HWY_INLINE void GroupRow(const void* src, int64_t row, int64_t groups, float* dst) {
  ConvertRow<kType>(static_cast<const uint8_t*>(src) + row * groups * (kType == FloatType::kF32 ? 4 : 2),
                    dst, groups);
}

template <int kBits, FloatType kType>
void AffineTyped(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, const MatRef& w,
                 const float* bias, float* y) {
  using P = Packed<kBits>;
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const int64_t N = hn::Lanes(d), block = P::kPer * N;
  const int64_t rows = w.rows, K = w.cols, gs = w.group_size, groups = K / gs;
  const int64_t words_per_row = K / P::kPer, full_blocks = K / block;
  const uint32_t* packed = static_cast<const uint32_t*>(w.data);

  // Lane -> group-within-block table, used when a block spans several groups.
  HWY_ALIGN int32_t lane_group[HWY_MAX_BYTES / sizeof(int32_t)];
  for (int64_t i = 0; i < N; ++i) lane_group[i] = static_cast<int32_t>(gs >= block ? 0 : i * P::kPer / gs);
  const auto idx = hn::SetTableIndices(d, lane_group);

  // Permuted activations and their group sums, shared by all threads.
  scratch.EnsureShared(T * (K + groups));
  float* xp = scratch.shared.data();
  float* gsum = xp + T * K;
  for (int64_t t = 0; t < T; ++t) {
    PermuteX<kBits>(x + t * K, K, xp + t * K);
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0;
      for (int64_t j = 0; j < gs; ++j) s += x[t * K + g * gs + j];
      gsum[t * groups + g] = s;
    }
  }
  const int64_t chunk = RowChunk(rows, pool.size());
  const int64_t tasks = (rows + chunk - 1) / chunk;
  const auto mask = hn::Set(du, P::kMask);

  if (T <= kFusedMaxRows) {
    scratch.EnsureThread(pool.size(), 2 * (groups + N));
    pool.Run(tasks, [&](int64_t task, int thread) {
      float* sc = scratch.Thread(thread);
      float* bi = sc + groups + N;
      const int64_t end = std::min(rows, (task + 1) * chunk);
      for (int64_t n = task * chunk; n < end; ++n) {
        GroupRow<kType>(w.scales, n, groups, sc);
        if (w.biases) GroupRow<kType>(w.biases, n, groups, bi);
        const uint32_t* row = packed + n * words_per_row;
        for (int64_t t = 0; t < T; ++t) {
          const float* xt = xp + t * K;
          auto total = hn::Zero(d);
          for (int64_t b = 0; b < full_blocks; ++b) {
            const auto words = hn::LoadU(du, row + b * N);
            const float* xb = xt + b * block;
            auto acc = hn::Zero(d);
            for (int k = 0; k < P::kPer; ++k) {
              const auto q = hn::And(hn::ShiftRightSame(words, k * kBits), mask);
              acc = hn::MulAdd(hn::ConvertTo(d, hn::BitCast(di, q)), hn::LoadU(d, xb + k * N), acc);
            }
            total = hn::MulAdd(acc, LaneGroups<kBits>(d, sc, b, gs, idx), total);
          }
          float sum = hn::GetLane(hn::SumOfLanes(d, total));
          for (int64_t j = full_blocks * block; j < K; ++j) {  // tail, natural order
            const uint32_t q = (row[j / P::kPer] >> ((j % P::kPer) * kBits)) & P::kMask;
            sum += sc[j / gs] * static_cast<float>(q) * xt[j];
          }
          if (w.biases) sum += Dot(bi, gsum + t * groups, groups);
          y[t * rows + n] = sum + (bias ? bias[n] : 0.0f);
        }
      }
    });
    return;
  }

  scratch.EnsureThread(pool.size(), 4 * K + 2 * (groups + N));
  pool.Run(tasks, [&](int64_t task, int thread) {
    float* deq = scratch.Thread(thread);
    float* sc = deq + 4 * K;
    float* bi = sc + groups + N;
    const int64_t begin = task * chunk, end = std::min(rows, (task + 1) * chunk);
    for (int64_t t0 = 0; t0 < T; t0 += kTBlock) {
      const int64_t t1 = std::min(T, t0 + kTBlock);
      for (int64_t n = begin; n < end; n += 4) {
        const int64_t m = std::min<int64_t>(4, end - n);
        for (int64_t j = 0; j < m; ++j) {
          GroupRow<kType>(w.scales, n + j, groups, sc);
          if (w.biases) {
            GroupRow<kType>(w.biases, n + j, groups, bi);
          } else {
            for (int64_t g = 0; g < groups + N; ++g) bi[g] = 0.0f;
          }
          const uint32_t* row = packed + (n + j) * words_per_row;
          float* out = deq + j * K;
          for (int64_t b = 0; b < full_blocks; ++b) {
            const auto words = hn::LoadU(du, row + b * N);
            const auto sv = LaneGroups<kBits>(d, sc, b, gs, idx);
            const auto bv = LaneGroups<kBits>(d, bi, b, gs, idx);
            for (int k = 0; k < P::kPer; ++k) {
              const auto q = hn::And(hn::ShiftRightSame(words, k * kBits), mask);
              hn::StoreU(hn::MulAdd(hn::ConvertTo(d, hn::BitCast(di, q)), sv, bv), d, out + b * block + k * N);
            }
          }
          for (int64_t c = full_blocks * block; c < K; ++c) {
            const uint32_t q = (row[c / P::kPer] >> ((c % P::kPer) * kBits)) & P::kMask;
            out[c] = sc[c / gs] * static_cast<float>(q) + bi[c / gs];
          }
        }
        const float* r[4];
        for (int64_t j = 0; j < 4; ++j) r[j] = deq + (j < m ? j : 0) * K;
        for (int64_t t = t0; t < t1; ++t) {
          float out[4];
          Dot4(xp + t * K, r[0], r[1], r[2], r[3], K, out);
          for (int64_t j = 0; j < m; ++j) y[t * rows + n + j] = out[j] + (bias ? bias[n + j] : 0.0f);
        }
      }
    }
  });
}

// Whether the SIMD lane mapping covers this layout (else the scalar path runs).
template <int kBits>
bool Supported(int64_t gs) {
  const DF d;
  const int64_t block = Packed<kBits>::kPer * hn::Lanes(d);
  return gs % Packed<kBits>::kPer == 0 && (gs % block == 0 || block % gs == 0);
}

template <int kBits>
bool Run(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, const MatRef& w, const float* bias,
         float* y) {
  if (!Supported<kBits>(w.group_size)) return false;
  switch (w.type) {
    case FloatType::kF32: AffineTyped<kBits, FloatType::kF32>(pool, scratch, x, T, w, bias, y); return true;
    case FloatType::kBF16: AffineTyped<kBits, FloatType::kBF16>(pool, scratch, x, T, w, bias, y); return true;
    case FloatType::kF16: AffineTyped<kBits, FloatType::kF16>(pool, scratch, x, T, w, bias, y); return true;
    default: return false;
  }
}

bool MatMulAffineImpl(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, const MatRef& w,
                      const float* bias, float* y) {
  switch (w.bits) {
    case 2: return Run<2>(pool, scratch, x, T, w, bias, y);
    case 4: return Run<4>(pool, scratch, x, T, w, bias, y);
    case 8: return Run<8>(pool, scratch, x, T, w, bias, y);
    default: return false;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pensieve::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pensieve::backend::cpu {
HWY_EXPORT(MatMulAffineImpl);
void MatMulAffine(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, const MatRef& w,
                  const float* bias, float* y) {
  if (HWY_DYNAMIC_DISPATCH(MatMulAffineImpl)(pool, scratch, x, T, w, bias, y)) return;
  // Scalar path: dequantize one row at a time into thread scratch.
  const int64_t K = w.cols, rows = w.rows;
  scratch.EnsureThread(pool.size(), K);
  const int64_t chunk = RowChunk(rows, pool.size());
  pool.Run((rows + chunk - 1) / chunk, [&](int64_t task, int thread) {
    float* row = scratch.Thread(thread);
    const int64_t end = std::min(rows, (task + 1) * chunk);
    for (int64_t n = task * chunk; n < end; ++n) {
      ref::DequantizeRow(w, n, row);
      for (int64_t t = 0; t < T; ++t) {
        float acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += x[t * K + k] * row[k];
        y[t * rows + n] = acc + (bias ? bias[n] : 0.0f);
      }
    }
  });
}
}  // namespace pensieve::backend::cpu
#endif
