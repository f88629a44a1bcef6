// Causal (optionally sliding-window) attention over the paged KV cache, with two kernels:
//  - tile kernel, for runs of many rows of one sequence (prefill): a query *vector* holds N (row, head) pairs
//    of one GQA group in its SIMD lanes, so every key and value element is loaded once and broadcast against N
//    queries (no horizontal sums). Keys are visited in chunks with an online softmax (running max and sum per
//    lane); each chunk is applied to all query vectors of the tile while it is hot in L1, so the KV cache is
//    read once per tile instead of once per query row.
//  - row kernel, for runs of a few rows (decode): one row and the query heads of one kv head per task, all
//    scores of the row, softmax, weighted sum of values; each key and value row is read once per task. With
//    few queries per key, lanes of a tile would sit idle.
#include "backend/cpu/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <cmath>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops-inl.h"

#ifndef PENSIEVE_BACKEND_CPU_ATTENTION_ONCE
#define PENSIEVE_BACKEND_CPU_ATTENTION_ONCE
namespace pensieve::backend::cpu {
// Query vectors per tile, and keys per chunk (a multiple of kSub, the keys whose scores live in registers).
constexpr int64_t kTileVectors = 8;
constexpr int64_t kChunk = 32;
constexpr int64_t kSub = 8;
// Most query heads one row-kernel job handles (their scores are kept side by side), and the keys whose value
// rows it applies to all of them at a time (64 rows of 128 floats: 32 KB, within L1).
constexpr int kMaxRowHeads = 8;
constexpr int64_t kValueRun = 64;
// Masked scores. Finite on purpose: a lane whose keys in a chunk are all masked gets exp(0) = 1 weights, and
// the correction factor exp(-1e30 - real max) = 0 erases them as soon as a visible key arrives (every row sees
// at least its own key), where -inf would give NaN from -inf - -inf.
constexpr float kMasked = -1e30f;
}  // namespace pensieve::backend::cpu
#endif

HWY_BEFORE_NAMESPACE();
namespace pensieve::backend::cpu {
namespace HWY_NAMESPACE {

// The rows [t0, t1) of one sequence and one kv head; lane i is row t0 + i / group, head kv_head * group +
// i % group (lanes past the last pair repeat it; their results are dropped).
struct TileJob {
  int64_t t0, t1;
  int kv_head;
};

// Floats of per-thread scratch one tile needs: Qt and Ot ([vectors][head_dim][N]), max, sum and position
// lanes, and the scores of one chunk.
inline int64_t TileScratchFloats(int64_t N, int head_dim) {
  return kTileVectors * N * (2 * head_dim + 3) + kChunk * N;
}

void RunTile(const HostKvStorage& cache, const HostAttention& a, const TileJob& job, float* scratch) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const int hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int64_t lanes = (job.t1 - job.t0) * group;
  const int64_t nv = (lanes + N - 1) / N;
  float* qt = scratch;                       // [nv][hd][N], pre-scaled queries
  float* ot = qt + kTileVectors * hd * N;    // [nv][hd][N], unnormalised outputs
  float* mx = ot + kTileVectors * hd * N;    // [nv][N] running max
  float* sum = mx + kTileVectors * N;        // [nv][N] running sum of weights
  float* posf = sum + kTileVectors * N;      // [nv][N] query positions (exact in f32 below 2^24)
  float* s = posf + kTileVectors * N;        // [kChunk][N] scores, then weights, of one chunk
  const auto lane_row = [&](int64_t i) { return job.t0 + std::min(i, lanes - 1) / group; };
  const auto lane_head = [&](int64_t i) { return job.kv_head * group + static_cast<int>(std::min(i, lanes - 1) % group); };

  // Transpose the queries into lanes (scaled), clear the accumulators, note each vector's key range.
  int64_t vec_hi[kTileVectors], vec_lo[kTileVectors], vec_pmin[kTileVectors];
  int64_t lo = INT64_MAX, hi = 0;
  for (int64_t v = 0; v < nv; ++v) {
    vec_hi[v] = 0, vec_lo[v] = INT64_MAX, vec_pmin[v] = INT64_MAX;
    for (int64_t l = 0; l < N; ++l) {
      const int64_t i = v * N + l, t = lane_row(i);
      const float* q = a.q + (t * a.n_heads + lane_head(i)) * hd;
      for (int dd = 0; dd < hd; ++dd) qt[(v * hd + dd) * N + l] = q[dd] * a.scale;
      const int64_t p = a.pos[t];
      const int64_t first = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
      posf[v * N + l] = static_cast<float>(p);
      vec_hi[v] = std::max(vec_hi[v], p);
      vec_pmin[v] = std::min(vec_pmin[v], p);
      vec_lo[v] = std::min(vec_lo[v], first);
    }
    hi = std::max(hi, vec_hi[v]);
    lo = std::min(lo, vec_lo[v]);
    for (int64_t j = 0; j < hd * N; ++j) ot[v * hd * N + j] = 0.0f;
    hn::StoreU(hn::Set(d, kMasked), d, mx + v * N);
    hn::StoreU(hn::Zero(d), d, sum + v * N);
  }

  const auto blocks = a.Blocks(a.row_item[job.t0]);
  const int64_t bt = cache.block_tokens(), kv_dim = cache.kv_dim();
  const int64_t kv_off = int64_t{job.kv_head} * hd;
  const float* kp[kChunk];
  const float* vp[kChunk];
  const auto masked = hn::Set(d, kMasked);
  for (int64_t k0 = lo; k0 <= hi; k0 += kChunk) {
    const int64_t nk = std::min(kChunk, hi + 1 - k0);
    const int64_t nsub = (nk + kSub - 1) / kSub;
    for (int64_t j = 0; j < nsub * kSub; ++j) {
      const int64_t k = k0 + std::min(j, nk - 1);  // padding keys repeat the last one and are masked below
      kp[j] = cache.Keys(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off;
      vp[j] = cache.Values(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off;
    }
    for (int64_t v = 0; v < nv; ++v) {
      if (k0 > vec_hi[v] || k0 + nk <= vec_lo[v]) continue;
      const float* qv = qt + v * hd * N;
      // Scores: s[j] = q . k_j for each lane, kSub keys at a time in registers.
      for (int64_t b = 0; b < nsub; ++b) {
        const float* const* kb = kp + b * kSub;
        auto c0 = hn::Zero(d), c1 = hn::Zero(d), c2 = hn::Zero(d), c3 = hn::Zero(d);
        auto c4 = hn::Zero(d), c5 = hn::Zero(d), c6 = hn::Zero(d), c7 = hn::Zero(d);
        for (int dd = 0; dd < hd; ++dd) {
          const auto q = hn::LoadU(d, qv + dd * N);
          c0 = hn::MulAdd(q, hn::Set(d, kb[0][dd]), c0);
          c1 = hn::MulAdd(q, hn::Set(d, kb[1][dd]), c1);
          c2 = hn::MulAdd(q, hn::Set(d, kb[2][dd]), c2);
          c3 = hn::MulAdd(q, hn::Set(d, kb[3][dd]), c3);
          c4 = hn::MulAdd(q, hn::Set(d, kb[4][dd]), c4);
          c5 = hn::MulAdd(q, hn::Set(d, kb[5][dd]), c5);
          c6 = hn::MulAdd(q, hn::Set(d, kb[6][dd]), c6);
          c7 = hn::MulAdd(q, hn::Set(d, kb[7][dd]), c7);
        }
        float* sb = s + b * kSub * N;
        hn::StoreU(c0, d, sb), hn::StoreU(c1, d, sb + N), hn::StoreU(c2, d, sb + 2 * N);
        hn::StoreU(c3, d, sb + 3 * N), hn::StoreU(c4, d, sb + 4 * N), hn::StoreU(c5, d, sb + 5 * N);
        hn::StoreU(c6, d, sb + 6 * N), hn::StoreU(c7, d, sb + 7 * N);
      }
      // Mask keys past a lane's position, before its window, or past the chunk (padding).
      const bool need_mask = k0 + nk - 1 > vec_pmin[v] || (a.window > 0 && k0 < vec_hi[v] - a.window + 1) ||
                             nk < nsub * kSub;
      const auto pos = hn::LoadU(d, posf + v * N);
      if (need_mask) {
        const auto win = hn::Set(d, static_cast<float>(a.window));
        for (int64_t j = 0; j < nsub * kSub; ++j) {
          const auto kf = hn::Set(d, static_cast<float>(k0 + j));
          auto hide = hn::Gt(kf, pos);
          if (a.window > 0) hide = hn::Or(hide, hn::Ge(hn::Sub(pos, kf), win));
          if (j >= nk) hide = hn::Eq(kf, kf);
          hn::StoreU(hn::IfThenElse(hide, masked, hn::LoadU(d, s + j * N)), d, s + j * N);
        }
      }
      // Online softmax: new max, rescale factor for what was accumulated, weights of this chunk.
      auto m = hn::LoadU(d, mx + v * N);
      const auto m_old = m;
      for (int64_t j = 0; j < nsub * kSub; ++j) m = hn::Max(m, hn::LoadU(d, s + j * N));
      const auto corr = hn::Exp(d, hn::Sub(m_old, m));
      auto l = hn::Mul(hn::LoadU(d, sum + v * N), corr);
      for (int64_t j = 0; j < nsub * kSub; ++j) {
        const auto w = hn::Exp(d, hn::Sub(hn::LoadU(d, s + j * N), m));
        hn::StoreU(w, d, s + j * N);
        l = hn::Add(l, w);
      }
      hn::StoreU(m, d, mx + v * N);
      hn::StoreU(l, d, sum + v * N);
      // Outputs: o[dd] = o[dd] * corr + sum_j w_j * v_j[dd].
      float* ov = ot + v * hd * N;
      for (int64_t b = 0; b < nsub; ++b) {
        const float* sb = s + b * kSub * N;
        const float* const* vb = vp + b * kSub;
        const auto w0 = hn::LoadU(d, sb), w1 = hn::LoadU(d, sb + N), w2 = hn::LoadU(d, sb + 2 * N);
        const auto w3 = hn::LoadU(d, sb + 3 * N), w4 = hn::LoadU(d, sb + 4 * N), w5 = hn::LoadU(d, sb + 5 * N);
        const auto w6 = hn::LoadU(d, sb + 6 * N), w7 = hn::LoadU(d, sb + 7 * N);
        for (int dd = 0; dd < hd; ++dd) {
          auto o = hn::LoadU(d, ov + dd * N);
          if (b == 0) o = hn::Mul(o, corr);
          o = hn::MulAdd(w0, hn::Set(d, vb[0][dd]), o);
          o = hn::MulAdd(w1, hn::Set(d, vb[1][dd]), o);
          o = hn::MulAdd(w2, hn::Set(d, vb[2][dd]), o);
          o = hn::MulAdd(w3, hn::Set(d, vb[3][dd]), o);
          o = hn::MulAdd(w4, hn::Set(d, vb[4][dd]), o);
          o = hn::MulAdd(w5, hn::Set(d, vb[5][dd]), o);
          o = hn::MulAdd(w6, hn::Set(d, vb[6][dd]), o);
          o = hn::MulAdd(w7, hn::Set(d, vb[7][dd]), o);
          hn::StoreU(o, d, ov + dd * N);
        }
      }
    }
  }
  // Normalise and transpose back: out[row, head, :] = o / sum.
  for (int64_t i = 0; i < lanes; ++i) {
    const int64_t v = i / N, l = i % N;
    const float inv = 1.0f / sum[v * N + l];
    float* out = a.out + (lane_row(i) * a.n_heads + lane_head(i)) * hd;
    for (int dd = 0; dd < hd; ++dd) out[dd] = ot[(v * hd + dd) * N + l] * inv;
  }
}

// One row and `count` consecutive query heads from h0 that share one kv head: scores over the visible keys,
// softmax, weighted sum of values. Each key and value row is read once for all of them (at long context decode
// is bound by these reads). scores: count * (visible keys) floats.
void RunRowHeads(const HostKvStorage& cache, const HostAttention& a, int64_t t, int h0, int count, float* scores) {
  const int group = a.n_heads / a.n_kv_heads, hd = a.head_dim;
  const int64_t kv_dim = cache.kv_dim(), bt = cache.block_tokens();
  const auto blocks = a.Blocks(a.row_item[t]);
  const int64_t p = a.pos[t];
  const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
  const int64_t n = p - lo + 1;
  const float* q = a.q + (t * a.n_heads + h0) * hd;
  const int64_t kv_off = int64_t{h0 / group} * hd;
  const auto key_row = [&](int64_t k) { return cache.Keys(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off; };
  const auto value_row = [&](int64_t k) { return cache.Values(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off; };
  // Scores, four keys at a time per head: four independent FMA chains sharing each load of q.
  int64_t k = lo;
  for (; k + 4 <= p + 1; k += 4) {
    const float *k0 = key_row(k), *k1 = key_row(k + 1), *k2 = key_row(k + 2), *k3 = key_row(k + 3);
    for (int g = 0; g < count; ++g) {
      float s4[4];
      Dot4(q + g * hd, k0, k1, k2, k3, hd, s4);
      for (int j = 0; j < 4; ++j) scores[g * n + k + j - lo] = s4[j] * a.scale;
    }
  }
  for (; k <= p; ++k) {
    const float* key = key_row(k);
    for (int g = 0; g < count; ++g) scores[g * n + k - lo] = Dot(q + g * hd, key, hd) * a.scale;
  }
  float* out = a.out + (t * a.n_heads + h0) * hd;
  float inv[kMaxRowHeads];
  for (int g = 0; g < count; ++g) {
    float max_s = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max_s = std::max(max_s, scores[g * n + i]);
    inv[g] = 1.0f / ExpSumRow(scores + g * n, n, max_s);
  }
  // out_g = sum_k w_gk v_k, then / sum_k w_gk. Keys in runs of kValueRun: each run's value rows come from
  // memory once and serve every head from L1, and within a run a head's output stays in registers (four
  // vectors at a time), so no key waits for the previous key's store as a row-by-row axpy would.
  const DF d;
  const int64_t N = hn::Lanes(d);
  for (int64_t r0 = lo; r0 <= p; r0 += kValueRun) {
    const int64_t r1 = std::min(p + 1, r0 + kValueRun);
    const bool first = r0 == lo;
    for (int g = 0; g < count; ++g) {
      const float* w = scores + g * n;  // w[k - lo]: weight of key k
      float* o = out + g * hd;
      int64_t dd = 0;
      for (; dd + 4 * N <= hd; dd += 4 * N) {
        auto o0 = first ? hn::Zero(d) : hn::LoadU(d, o + dd), o1 = first ? hn::Zero(d) : hn::LoadU(d, o + dd + N);
        auto o2 = first ? hn::Zero(d) : hn::LoadU(d, o + dd + 2 * N), o3 = first ? hn::Zero(d) : hn::LoadU(d, o + dd + 3 * N);
        for (int64_t kk = r0; kk < r1; ++kk) {
          const float* v = value_row(kk) + dd;
          const auto wk = hn::Set(d, w[kk - lo]);
          o0 = hn::MulAdd(wk, hn::LoadU(d, v), o0);
          o1 = hn::MulAdd(wk, hn::LoadU(d, v + N), o1);
          o2 = hn::MulAdd(wk, hn::LoadU(d, v + 2 * N), o2);
          o3 = hn::MulAdd(wk, hn::LoadU(d, v + 3 * N), o3);
        }
        hn::StoreU(o0, d, o + dd), hn::StoreU(o1, d, o + dd + N);
        hn::StoreU(o2, d, o + dd + 2 * N), hn::StoreU(o3, d, o + dd + 3 * N);
      }
      for (; dd + N <= hd; dd += N) {
        auto o0 = first ? hn::Zero(d) : hn::LoadU(d, o + dd);
        for (int64_t kk = r0; kk < r1; ++kk) o0 = hn::MulAdd(hn::Set(d, w[kk - lo]), hn::LoadU(d, value_row(kk) + dd), o0);
        hn::StoreU(o0, d, o + dd);
      }
      for (; dd < hd; ++dd) {
        float acc = first ? 0.0f : o[dd];
        for (int64_t kk = r0; kk < r1; ++kk) acc += w[kk - lo] * value_row(kk)[dd];
        o[dd] = acc;
      }
    }
  }
  for (int g = 0; g < count; ++g) ScaleRow(inv[g], out + g * hd, hd);
}

void AttentionImpl(ThreadPool& pool, Scratch& scratch, const HostKvStorage& cache, const HostAttention& a) {
  const DF d;
  const int64_t N = hn::Lanes(d);
  const int group = a.n_heads / a.n_kv_heads;
  // Jobs: a run of rows of one sequence whose (row, head) pairs fill at least 3/4 of a vector goes to the tile
  // kernel, in tiles of kTileVectors vectors per kv head; every other row to the row kernel, one job per kv
  // head (its query heads together), split into smaller head sets only when that leaves threads idle.
  auto& jobs = scratch.jobs;
  jobs.clear();
  int64_t longest = 1, row_jobs_rows = 0;
  // Rows per tile: kTileVectors full vectors, halved (down to one vector) while the tiles would leave threads
  // idle: a 256-row prefill chunk of a 2-kv-head model makes only 8 full tiles.
  int64_t rows_per_tile = std::max<int64_t>(1, kTileVectors * N / group);
  const int64_t min_rows_per_tile = std::max<int64_t>(1, N / group);
  for (;;) {
    int64_t tiles = 0;
    row_jobs_rows = 0;
    for (int64_t t0 = 0; t0 < a.T;) {
      int64_t t1 = t0 + 1;
      while (t1 < a.T && a.row_item[t1] == a.row_item[t0]) ++t1;
      if ((t1 - t0) * group * 4 < 3 * N) {
        row_jobs_rows += t1 - t0;
      } else {
        tiles += (t1 - t0 + rows_per_tile - 1) / rows_per_tile * a.n_kv_heads;
      }
      t0 = t1;
    }
    if (tiles == 0 || tiles >= 2 * pool.size() || rows_per_tile / 2 < min_rows_per_tile) break;
    rows_per_tile /= 2;
  }
  const int64_t split = std::min<int64_t>(
      group, std::max<int64_t>(1, pool.size() / std::max<int64_t>(1, row_jobs_rows * a.n_kv_heads)));
  const int heads_per_job = static_cast<int>(std::min<int64_t>(kMaxRowHeads, (group + split - 1) / split));
  for (int64_t t0 = 0; t0 < a.T;) {
    int64_t t1 = t0 + 1;
    while (t1 < a.T && a.row_item[t1] == a.row_item[t0]) ++t1;
    if ((t1 - t0) * group * 4 >= 3 * N) {
      for (int64_t b = t0; b < t1; b += rows_per_tile)
        for (int kh = 0; kh < a.n_kv_heads; ++kh) jobs.push_back({b, std::min(t1, b + rows_per_tile), kh});
    } else {
      for (int64_t t = t0; t < t1; ++t) {
        longest = std::max<int64_t>(longest, a.pos[t] + 1);
        for (int kh = 0; kh < a.n_kv_heads; ++kh)
          for (int g = 0; g < group; g += heads_per_job)
            jobs.push_back({t, -std::min(heads_per_job, group - g), kh * group + g});
      }
    }
    t0 = t1;
  }
  scratch.EnsureThread(pool.size(), std::max(longest * heads_per_job + N, TileScratchFloats(N, a.head_dim)));
  const auto run_job = [&](int64_t j, int thread) {
    const auto& job = jobs[j];
    if (job.t1 >= 0) {
      RunTile(cache, a, TileJob{job.t0, job.t1, job.head}, scratch.Thread(thread));
    } else {
      RunRowHeads(cache, a, job.t0, job.head, static_cast<int>(-job.t1), scratch.Thread(thread));
    }
  };
  // Little work (short contexts early in decoding) is cheaper on this thread than a pool synchronisation.
  int64_t work = 0;
  for (int64_t t = 0; t < a.T; ++t) work += (a.pos[t] + 1) * int64_t{a.n_heads} * a.head_dim;
  if (work < (int64_t{1} << 18)) {
    for (int64_t j = 0; j < static_cast<int64_t>(jobs.size()); ++j) run_job(j, 0);
  } else {
    pool.Run(static_cast<int64_t>(jobs.size()), run_job);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pensieve::backend::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pensieve::backend::cpu {
HWY_EXPORT(AttentionImpl);
void Attention(ThreadPool& pool, Scratch& scratch, const HostKvStorage& cache, const HostAttention& args) {
  HWY_DYNAMIC_DISPATCH(AttentionImpl)(pool, scratch, cache, args);
}
}  // namespace pensieve::backend::cpu
#endif
