// Row-wise and elementwise ops (rmsnorm, gated activations, residual add) and attention over the paged
// KV cache, one dynamic dispatch per call.
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

// One task per (query row, head): scores over the visible keys, softmax, weighted sum of values. Keys are
// visited block by block through the sequence's block table.
void AttentionImpl(ThreadPool& pool, Scratch& scratch, const KvCache& cache, const AttentionArgs& a) {
  const int group = a.n_heads / a.n_kv_heads;
  const int64_t kv_dim = cache.kv_dim();
  const int64_t bt = cache.config().block_tokens;
  int64_t longest = 1;
  for (int64_t t = 0; t < a.T; ++t) longest = std::max<int64_t>(longest, a.pos[t] + 1);
  scratch.EnsureThread(pool.size(), longest);
  pool.Run(a.T * a.n_heads, [&](int64_t task, int thread) {
    const int64_t t = task / a.n_heads;
    const int h = static_cast<int>(task % a.n_heads);
    const auto blocks = cache.BlockTable(a.seqs[t]);
    const int64_t p = a.pos[t];
    const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
    const float* q = a.q + (t * a.n_heads + h) * a.head_dim;
    const int64_t kv_off = int64_t{h / group} * a.head_dim;
    float* scores = scratch.Thread(thread);
    float max_s = -INFINITY;
    for (int64_t k = lo; k <= p; ++k) {
      const float* key = cache.Keys(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off;
      const float s = Dot(q, key, a.head_dim) * a.scale;
      scores[k - lo] = s;
      max_s = std::max(max_s, s);
    }
    float sum = 0;
    for (int64_t i = 0; i <= p - lo; ++i) sum += (scores[i] = std::exp(scores[i] - max_s));
    float* out = a.out + (t * a.n_heads + h) * a.head_dim;
    for (int d = 0; d < a.head_dim; ++d) out[d] = 0.0f;
    for (int64_t k = lo; k <= p; ++k) {
      const float* val = cache.Values(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off;
      Axpy(scores[k - lo], val, out, a.head_dim);
    }
    ScaleRow(1.0f / sum, out, a.head_dim);
  });
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
HWY_EXPORT(AttentionImpl);
HWY_EXPORT(SoftmaxImpl);

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
void Attention(ThreadPool& pool, Scratch& scratch, const KvCache& cache, const AttentionArgs& args) {
  HWY_DYNAMIC_DISPATCH(AttentionImpl)(pool, scratch, cache, args);
}
}  // namespace pensieve::backend::cpu
#endif
