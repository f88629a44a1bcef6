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
#include "hwy/cache_control.h"

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
// With `prescale`, field k's slots are also multiplied by 2^(-k*bits) (exact: a power of two), so the decode
// kernel can use the masked field in place, q * 2^(k*bits), and skip the shift: one op less per vector.
// The top field is still shifted down (masked in place it would not fit a signed int32), so it stays unscaled.
template <int kBits>
void PermuteX(const float* x, int64_t K, float* xp, bool prescale) {
  using P = Packed<kBits>;
  const DF d;
  const int64_t N = hn::Lanes(d), block = P::kPer * N;
  const int64_t full = K / block * block;
  for (int64_t b = 0; b < full; b += block)
    for (int k = 0; k < P::kPer; ++k) {
      const float scale = prescale && k + 1 < P::kPer ? std::ldexp(1.0f, -k * kBits) : 1.0f;
      for (int64_t i = 0; i < N; ++i) xp[b + k * N + i] = x[b + P::kPer * i + k] * scale;
    }
  for (int64_t j = full; j < K; ++j) xp[j] = x[j];
}

// Field k of each lane as float: q * 2^(k*bits) for k below the top field (matching prescaled x), q for the top.
template <int kBits, int k, class DU>
HWY_INLINE hn::Vec<hn::RebindToFloat<DU>> FieldInPlace(DU du, hn::Vec<DU> words) {
  const hn::RebindToFloat<DU> d;
  const hn::RebindToSigned<DU> di;
  if constexpr (k + 1 == Packed<kBits>::kPer) {
    return hn::ConvertTo(d, hn::BitCast(di, hn::ShiftRight<32 - kBits>(words)));
  } else {
    const auto mask = hn::Set(du, Packed<kBits>::kMask << (k * kBits));
    return hn::ConvertTo(d, hn::BitCast(di, hn::And(words, mask)));
  }
}

// sum over fields k of FieldInPlace(k) * xb[k*N ..], accumulated into acc (fields unrolled at compile time).
template <int kBits, int k = 0, class DU>
HWY_INLINE hn::Vec<hn::RebindToFloat<DU>> DotFields(DU du, hn::Vec<DU> words, const float* xb, int64_t N,
                                                    hn::Vec<hn::RebindToFloat<DU>> acc) {
  if constexpr (k == Packed<kBits>::kPer) {
    return acc;
  } else {
    const hn::RebindToFloat<DU> d;
    acc = hn::MulAdd(FieldInPlace<kBits, k>(du, words), hn::LoadU(d, xb + k * N), acc);
    return DotFields<kBits, k + 1>(du, words, xb, N, acc);
  }
}

// Per-lane group scale (or bias) of block b, from the row's f32 group values g (padded by N).
template <int kBits, class D, class I>
HWY_INLINE hn::Vec<D> LaneGroups(D d, const float* g, int64_t b, int64_t gs, const I& idx) {
  const int64_t block = Packed<kBits>::kPer * hn::Lanes(d);
  if (gs >= block) return hn::Set(d, g[b * block / gs]);
  return hn::TableLookupLanes(hn::LoadU(d, g + b * (block / gs)), idx);
}

// DotFields for four rows sharing each x load.
template <int kBits, int k = 0, class DU, class VU = hn::Vec<DU>, class VF = hn::Vec<hn::RebindToFloat<DU>>>
HWY_INLINE void DotFields4(DU du, VU w0, VU w1, VU w2, VU w3, const float* xb, int64_t N, VF& a0, VF& a1, VF& a2,
                           VF& a3) {
  if constexpr (k < Packed<kBits>::kPer) {
    const hn::RebindToFloat<DU> d;
    const auto xv = hn::LoadU(d, xb + k * N);
    a0 = hn::MulAdd(FieldInPlace<kBits, k>(du, w0), xv, a0);
    a1 = hn::MulAdd(FieldInPlace<kBits, k>(du, w1), xv, a1);
    a2 = hn::MulAdd(FieldInPlace<kBits, k>(du, w2), xv, a2);
    a3 = hn::MulAdd(FieldInPlace<kBits, k>(du, w3), xv, a3);
    DotFields4<kBits, k + 1>(du, w0, w1, w2, w3, xb, N, a0, a1, a2, a3);
  }
}

template <FloatType kType>
HWY_INLINE void GroupRow(const void* src, int64_t row, int64_t groups, float* dst) {
  ConvertRow<kType>(static_cast<const uint8_t*>(src) + row * groups * (kType == FloatType::kF32 ? 4 : 2),
                    dst, groups);
}

template <int kBits, FloatType kType>
void AffineTyped(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  using P = Packed<kBits>;
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const int64_t N = hn::Lanes(d), block = P::kPer * N;
  const int64_t K = outs[0].w.cols, gs = outs[0].w.group_size, groups = K / gs;
  const int64_t words_per_row = K / P::kPer, full_blocks = K / block;

  // Lane -> group-within-block table, used when a block spans several groups.
  HWY_ALIGN int32_t lane_group[HWY_MAX_BYTES / sizeof(int32_t)];
  for (int64_t i = 0; i < N; ++i) lane_group[i] = static_cast<int32_t>(gs >= block ? 0 : i * P::kPer / gs);
  const auto idx = hn::SetTableIndices(d, lane_group);

  // Permuted activations and their group sums, shared by all threads.
  scratch.EnsureShared(T * (K + groups));
  float* xp = scratch.shared.data();
  float* gsum = xp + T * K;
  const bool fused = T <= kFusedMaxRows;
  for (int64_t t = 0; t < T; ++t) {
    PermuteX<kBits>(x + t * K, K, xp + t * K, /*prescale=*/fused);
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0;
      for (int64_t j = 0; j < gs; ++j) s += x[t * K + g * gs + j];
      gsum[t * groups + g] = s;
    }
  }
  const auto mask = hn::Set(du, P::kMask);

  if (fused) {
    // Four weight rows at a time: four independent FMA chains (one chain would wait on FMA latency every
    // field) sharing each load of x.
    const int64_t gstride = groups + N;  // padded: LaneGroups may read N values past a row's last group
    scratch.EnsureThread(pool.size(), 8 * gstride);
    RunRowChunks(pool, outs, [&](int s, int64_t begin, int64_t end, int thread) {
      const MatRef& w = outs[s].w;
      const float* bias = outs[s].bias;
      float* y = outs[s].y;
      const int64_t rows = w.rows;
      const uint32_t* packed = static_cast<const uint32_t*>(w.data);
      float* sc = scratch.Thread(thread);
      float* bi = sc + 4 * gstride;
      for (int64_t n = begin; n < end; n += 4) {
        const int64_t m = std::min<int64_t>(4, end - n);
        const uint32_t* r[4];
        for (int64_t j = 0; j < 4; ++j) {
          const int64_t row = n + std::min(j, m - 1);  // short tail: repeat the last row, store only m
          r[j] = packed + row * words_per_row;
          GroupRow<kType>(w.scales, row, groups, sc + j * gstride);
          if (w.biases) GroupRow<kType>(w.biases, row, groups, bi + j * gstride);
        }
        for (int64_t t = 0; t < T; ++t) {
          const float* xt = xp + t * K;
          auto t0 = hn::Zero(d), t1 = hn::Zero(d), t2 = hn::Zero(d), t3 = hn::Zero(d);
          for (int64_t b = 0; b < full_blocks; ++b) {
            // Software prefetch of the next four rows (contiguous after these, 4 lines per block step): doubles
            // streaming throughput on the development VM over the hardware prefetcher alone with four
            // interleaved row streams. (Plain bf16 rows, one long stream each, got slower with it: not used there.)
            if (t == 0) {
              const uint32_t* ahead = r[3] + words_per_row + 4 * b * N;
              for (int64_t j = 0; j < 4; ++j) hwy::Prefetch(ahead + j * N);
            }
            auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
            DotFields4<kBits>(du, hn::LoadU(du, r[0] + b * N), hn::LoadU(du, r[1] + b * N),
                              hn::LoadU(du, r[2] + b * N), hn::LoadU(du, r[3] + b * N), xt + b * block, N, a0, a1,
                              a2, a3);
            t0 = hn::MulAdd(a0, LaneGroups<kBits>(d, sc, b, gs, idx), t0);
            t1 = hn::MulAdd(a1, LaneGroups<kBits>(d, sc + gstride, b, gs, idx), t1);
            t2 = hn::MulAdd(a2, LaneGroups<kBits>(d, sc + 2 * gstride, b, gs, idx), t2);
            t3 = hn::MulAdd(a3, LaneGroups<kBits>(d, sc + 3 * gstride, b, gs, idx), t3);
          }
          float sums[4] = {hn::GetLane(hn::SumOfLanes(d, t0)), hn::GetLane(hn::SumOfLanes(d, t1)),
                           hn::GetLane(hn::SumOfLanes(d, t2)), hn::GetLane(hn::SumOfLanes(d, t3))};
          for (int64_t j = 0; j < m; ++j) {
            const float* scj = sc + j * gstride;
            float sum = sums[j];
            for (int64_t c = full_blocks * block; c < K; ++c) {  // tail, natural order
              const uint32_t q = (r[j][c / P::kPer] >> ((c % P::kPer) * kBits)) & P::kMask;
              sum += scj[c / gs] * static_cast<float>(q) * xt[c];
            }
            if (w.biases) sum += Dot(bi + j * gstride, gsum + t * groups, groups);
            y[t * rows + n + j] = sum + (bias ? bias[n + j] : 0.0f);
          }
        }
      }
    });
    return;
  }

  scratch.EnsureThread(pool.size(), 4 * K + 2 * (groups + N));
  RunRowChunks(pool, outs, [&](int s, int64_t begin, int64_t end, int thread) {
    const MatRef& w = outs[s].w;
    const float* bias = outs[s].bias;
    float* y = outs[s].y;
    const int64_t rows = w.rows;
    const uint32_t* packed = static_cast<const uint32_t*>(w.data);
    float* deq = scratch.Thread(thread);
    float* sc = deq + 4 * K;
    float* bi = sc + groups + N;
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
        int64_t t = t0;
        for (; t + 4 <= t1; t += 4) {
          float out[16];
          Dot4x4(xp + t * K, K, r[0], r[1], r[2], r[3], K, out);
          for (int64_t j = 0; j < m; ++j)
            for (int64_t i = 0; i < 4; ++i) y[(t + i) * rows + n + j] = out[j * 4 + i] + (bias ? bias[n + j] : 0.0f);
        }
        for (; t < t1; ++t) {
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
bool Run(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  if (!Supported<kBits>(outs[0].w.group_size)) return false;
  switch (outs[0].w.type) {
    case FloatType::kF32: AffineTyped<kBits, FloatType::kF32>(pool, scratch, x, T, outs); return true;
    case FloatType::kBF16: AffineTyped<kBits, FloatType::kBF16>(pool, scratch, x, T, outs); return true;
    case FloatType::kF16: AffineTyped<kBits, FloatType::kF16>(pool, scratch, x, T, outs); return true;
    default: return false;
  }
}

bool MatMulAffineImpl(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  switch (outs[0].w.bits) {
    case 2: return Run<2>(pool, scratch, x, T, outs);
    case 4: return Run<4>(pool, scratch, x, T, outs);
    case 8: return Run<8>(pool, scratch, x, T, outs);
    default: return false;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pensieve::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pensieve::backend::cpu {
HWY_EXPORT(MatMulAffineImpl);
void MatMulAffine(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs) {
  if (HWY_DYNAMIC_DISPATCH(MatMulAffineImpl)(pool, scratch, x, T, outs)) return;
  // Scalar path: dequantize one row at a time into thread scratch.
  const int64_t K = outs[0].w.cols;
  scratch.EnsureThread(pool.size(), K);
  RunRowChunks(pool, outs, [&](int s, int64_t begin, int64_t end, int thread) {
    const MatRef& w = outs[s].w;
    const float* bias = outs[s].bias;
    float* y = outs[s].y;
    const int64_t rows = w.rows;
    float* row = scratch.Thread(thread);
    for (int64_t n = begin; n < end; ++n) {
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
