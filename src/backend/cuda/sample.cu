// The sampling chain of backend/sampling.h on the GPU: one block of 1024 threads per row. Passes whose result
// does not depend on id order (maxima, sums, histograms) stride over the row so that a warp reads consecutive
// ids; the parts that do (ties at a threshold, the draw) give thread i a contiguous run of ids and scan over
// threads. Every reduction has a fixed order: the same row and the same uniform number always give the same
// token. Greedy rows without adjustments read the logits where they are, in one pass (max, argmax and the
// sum for the logprob with an online rescale).
//
// Truncation without sorting: top-k and top-p find their threshold logit by radix selection over the logits'
// ordered bit patterns (four passes of 8 bits), counting tokens (top-k) or adding probability mass (top-p, in
// 40-bit fixed point so that the sums do not depend on the order of atomic additions); ties at the threshold
// are kept in ascending id order, as the host chain does.
#include <cuda_runtime.h>

#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

namespace pensieve::backend::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr float kNegligibleLogitGap = 40.0f;  // as the host chain
constexpr double kFixedOne = 1099511627776.0;  // 2^40

// Larger logits give larger keys; -inf is the smallest non-NaN key.
__device__ __forceinline__ uint32_t Key(float v) {
  const uint32_t b = __float_as_uint(v);
  return b & 0x80000000u ? ~b : b | 0x80000000u;
}

struct Shared {
  double d[kWarps];
  int64_t i[kWarps];
  uint64_t u[kWarps];
  float f[kWarps];
  int32_t id[kWarps];
  uint32_t hist_count[256];
  unsigned long long hist_mass[256];
  uint32_t prefix, remaining;
  unsigned long long mass_above, target;
  double scan_base;
  int32_t pick;
};

// Block-wide exclusive scan of one value per thread (fixed order), and the total.
template <typename T>
__device__ T ExclusiveScan(T v, T* warp_totals, T* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const T n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) warp_totals[warp] = inc;
  __syncthreads();
  T base = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) base += warp_totals[w];
    all += warp_totals[w];
  }
  *total = all;
  return base + inc - v;
}

template <typename T>
__device__ T BlockSum(T v, T* warp_totals) {
  T total;
  ExclusiveScan(v, warp_totals, &total);
  return total;
}

// The best (value, id) of the block in the order value desc, id asc, among ids for which ok(i) holds; id -1 if
// none.
template <class Value, class Ok>
__device__ void BlockBest(int64_t vocab, Value value, Ok ok, Shared& sh, float* best_v, int32_t* best_id) {
  float bv = -INFINITY;
  int32_t bi = -1;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    if (!ok(i)) continue;
    const float v = value(i);
    if (bi < 0 || v > bv) bv = v, bi = static_cast<int32_t>(i);  // ascending ids: the first of equals wins
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
  }
  __syncthreads();
  if (lane == 0) sh.f[warp] = bv, sh.id[warp] = bi;
  __syncthreads();
  bv = -INFINITY, bi = -1;
  for (int k = 0; k < kWarps; ++k) {
    const float ov = sh.f[k];
    const int32_t oi = sh.id[k];
    if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
  }
  *best_v = bv, *best_id = bi;
}

// One logit into a thread's running argmax (first id wins ties) and its sum of e^(v - m) over the finite
// values, rescaled when the running maximum m grows.
__device__ __forceinline__ void Observe(float v, int32_t i, float& bv, int32_t& bi, float& m, double& s) {
  if (bi < 0 || v > bv) bv = v, bi = i;
  if (v == -INFINITY) return;
  if (v > m) {
    s = s * static_cast<double>(expf(m - v)) + 1.0;
    m = v;
  } else {
    s += static_cast<double>(expf(v - m));
  }
}

// Greedy: the argmax (lowest id among equals), logprob and alternatives of the distribution at temperature 1.
// One pass: each thread keeps its best (value, id) and sum_i e^(v_i - running max), rescaled when the max grows.
__device__ void Greedy(const float* w, int64_t vocab, int n_top, Shared& sh, SampleResult* out) {
  const auto at = [&](int64_t i) {
    const float v = w[i];
    return isnan(v) ? -INFINITY : v;
  };
  float bv = -INFINITY, m = -INFINITY;
  int32_t bi = -1;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = at(i);
    Observe(v, static_cast<int32_t>(i), bv, bi, m, s);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Best (value, id): warps, then the block.
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
  }
  // Sum: every thread's sum brought to the warp's max, then to the block's.
  float wm = m;
  for (int o = 16; o > 0; o >>= 1) wm = fmaxf(wm, __shfl_xor_sync(0xffffffffu, wm, o));
  double ws = m == -INFINITY ? 0.0 : s * static_cast<double>(expf(m - wm));
  ws = WarpSumD(ws);
  __syncthreads();
  if (lane == 0) sh.f[warp] = bv, sh.id[warp] = bi, sh.d[warp] = ws, sh.u[warp] = __float_as_uint(wm);
  __syncthreads();
  bv = -INFINITY, bi = -1;
  float mx = -INFINITY;
  for (int k = 0; k < kWarps; ++k) {
    const float ov = sh.f[k];
    const int32_t oi = sh.id[k];
    if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
    mx = fmaxf(mx, __uint_as_float(static_cast<uint32_t>(sh.u[k])));
  }
  double sum = 0.0;
  for (int k = 0; k < kWarps; ++k) {
    const float wk = __uint_as_float(static_cast<uint32_t>(sh.u[k]));
    if (wk != -INFINITY) sum += sh.d[k] * static_cast<double>(expf(wk - mx));
  }
  const int32_t best = bi < 0 ? 0 : bi;
  if (!isfinite(bv)) {
    if (threadIdx.x == 0) out->id = best, out->logprob = 0.0f, out->n_top = 0;
    return;
  }
  const double log_z = log(sum);
  if (threadIdx.x == 0) out->id = best, out->logprob = static_cast<float>(-log_z), out->n_top = 0;
  const int n = min(static_cast<int64_t>(n_top), vocab);
  float pv = INFINITY;
  int32_t pi = -1;
  for (int k = 0; k < n; ++k) {
    float v;
    int32_t id;
    BlockBest(vocab, at, [&](int64_t i) { return at(i) < pv || (at(i) == pv && i > pi); }, sh, &v, &id);
    if (threadIdx.x == 0) {
      out->top_ids[k] = id;
      out->top_logprobs[k] = static_cast<float>(at(id) - bv - log_z);
      out->n_top = k + 1;
    }
    pv = v, pi = id;
  }
}

// Keeps, among tokens with keep(i), those whose key is above the threshold found by radix selection plus the
// lowest-id ties: `count_mode` keeps `want` tokens; otherwise the smallest prefix whose fixed-point mass
// reaches `want`. Removed tokens get -inf.
template <class Keep>
__device__ void Truncate(float* w, float mx, int64_t vocab, int64_t begin, int64_t end, Keep keep, bool count_mode,
                         unsigned long long want, Shared& sh) {
  const auto weight = [&](int64_t i) -> unsigned long long {
    return count_mode ? 1ull : static_cast<unsigned long long>(static_cast<double>(expf(w[i] - mx)) * kFixedOne);
  };
  if (threadIdx.x == 0) sh.prefix = 0, sh.mass_above = 0, sh.target = want;
  uint32_t mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) sh.hist_mass[b] = 0;
    __syncthreads();
    const uint32_t prefix = sh.prefix;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      if (!keep(i)) continue;
      const uint32_t k = Key(w[i]);
      if ((k & mask) == prefix) atomicAdd(&sh.hist_mass[(k >> shift) & 255], weight(i));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long above = sh.mass_above;
      int b = 255;
      for (; b > 0; --b) {
        if (above + sh.hist_mass[b] >= sh.target) break;
        above += sh.hist_mass[b];
      }
      sh.mass_above = above;
      sh.prefix = prefix | (static_cast<uint32_t>(b) << shift);
    }
    mask |= 255u << shift;
    __syncthreads();
  }
  const uint32_t tau = sh.prefix;
  const unsigned long long above = sh.mass_above, target = sh.target;
  // Ties at tau, in id order: keep while the mass before them is still short of the target.
  unsigned long long mine = 0;
  for (int64_t i = begin; i < end; ++i)
    if (keep(i) && Key(w[i]) == tau) mine += weight(i);
  unsigned long long total;
  unsigned long long before = ExclusiveScan(mine, reinterpret_cast<unsigned long long*>(sh.u), &total);
  before += above;
  for (int64_t i = begin; i < end; ++i) {
    if (!keep(i)) continue;
    const uint32_t k = Key(w[i]);
    if (k > tau) continue;
    if (k == tau && before < target) {
      before += weight(i);
      continue;
    }
    w[i] = -INFINITY;
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads) SampleKernel(const float* logits, int64_t vocab, const SampleRowDev* rows,
                                                         const TokenAdjust* adjust, const uint8_t* masks, float* work,
                                                         SampleResult* results) {
  __shared__ Shared sh;
  const SampleRowDev r = rows[blockIdx.x];
  const float* in = logits + r.logits_row * vocab;
  float* w = work + static_cast<int64_t>(blockIdx.x) * vocab;
  SampleResult* out = results + blockIdx.x;
  const int64_t chunk = CeilDiv(vocab, kThreads);
  const int64_t begin = min(vocab, threadIdx.x * chunk), end = min(vocab, begin + chunk);
  const uint8_t* mask = r.mask_offset >= 0 ? masks + r.mask_offset : nullptr;

  if (r.temperature == 0.0f && !mask && r.adjust_count == 0) return Greedy(in, vocab, r.top_logprobs, sh, out);
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) w[i] = mask && !mask[i] ? -INFINITY : in[i];
  __syncthreads();
  for (int e = threadIdx.x; e < r.adjust_count; e += blockDim.x) {
    const TokenAdjust a = adjust[r.adjust_begin + e];
    float l = __fadd_rn(w[a.token], a.bias);
    if (a.repeat) l = l > 0.0f ? __fdiv_rn(l, r.repetition_penalty) : __fmul_rn(l, r.repetition_penalty);
    w[a.token] = __fsub_rn(l, a.subtract);
  }
  __syncthreads();
  if (r.temperature == 0.0f) return Greedy(w, vocab, r.top_logprobs, sh, out);

  const float inv_t = __fdiv_rn(1.0f, r.temperature);
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) w[i] = isnan(w[i]) ? -INFINITY : __fmul_rn(w[i], inv_t);
  __syncthreads();
  float mx;
  int32_t arg;
  BlockBest(vocab, [&](int64_t i) { return w[i]; }, [](int64_t) { return true; }, sh, &mx, &arg);
  if (!isfinite(mx)) return Greedy(w, vocab, r.top_logprobs, sh, out);
  const float floor = mx - kNegligibleLogitGap;
  const auto cand = [&](int64_t i) { return w[i] >= floor; };

  if (r.top_k > 0) {
    int64_t n = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) n += cand(i);
    n = BlockSum(n, sh.i);
    if (r.top_k < n) Truncate(w, mx, vocab, begin, end, cand, true, static_cast<unsigned long long>(r.top_k), sh);
  }
  if (r.top_p < 1.0f) {
    unsigned long long mass = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
      if (cand(i)) mass += static_cast<unsigned long long>(static_cast<double>(expf(w[i] - mx)) * kFixedOne);
    mass = BlockSum(mass, reinterpret_cast<unsigned long long*>(sh.u));
    const auto want = static_cast<unsigned long long>(static_cast<double>(r.top_p) * static_cast<double>(mass));
    if (want > 0) Truncate(w, mx, vocab, begin, end, cand, false, want, sh);
  }
  if (r.min_p > 0.0f) {
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
      if (cand(i) && expf(w[i] - mx) < r.min_p) w[i] = -INFINITY;
    __syncthreads();
  }

  // The draw, in ascending id order.
  double mine = 0.0;
  for (int64_t i = begin; i < end; ++i)
    if (cand(i)) mine += static_cast<double>(expf(w[i] - mx));
  double total;
  const double before = ExclusiveScan(mine, sh.d, &total);
  const double target = r.u * total;
  if (threadIdx.x == 0) sh.pick = -1;
  __syncthreads();
  if (mine > 0.0 && before <= target && target < before + mine) {
    // This thread's run holds the crossing (rounding may let a neighbour claim it too: the larger id wins).
    double cum = before;
    int32_t found = -1;
    for (int64_t i = begin; i < end; ++i) {
      if (!cand(i)) continue;
      found = static_cast<int32_t>(i);
      cum += static_cast<double>(expf(w[i] - mx));
      if (target < cum) break;
    }
    atomicMax(&sh.pick, found);
  }
  __syncthreads();
  if (sh.pick < 0) {  // rounding left the target at the very end: the last kept token
    int32_t last = -1;
    for (int64_t i = begin; i < end; ++i)
      if (cand(i)) last = static_cast<int32_t>(i);
    atomicMax(&sh.pick, last);
    __syncthreads();
  }
  const int32_t pick = sh.pick;
  const double log_total = log(total);
  if (threadIdx.x == 0) {
    out->id = pick;
    out->logprob = static_cast<float>(log(static_cast<double>(expf(w[pick] - mx))) - log_total);
    out->n_top = 0;
  }
  int64_t kept = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) kept += cand(i);
  kept = BlockSum(kept, sh.i);
  const int n_top = static_cast<int>(min(static_cast<int64_t>(r.top_logprobs), kept));
  float pv = INFINITY;
  int32_t pi = -1;
  for (int k = 0; k < n_top; ++k) {
    float v;
    int32_t id;
    BlockBest(vocab, [&](int64_t i) { return w[i]; }, [&](int64_t i) { return cand(i) && (w[i] < pv || (w[i] == pv && i > pi)); }, sh, &v, &id);
    if (threadIdx.x == 0) {
      out->top_ids[k] = id;
      out->top_logprobs[k] = static_cast<float>(log(static_cast<double>(expf(w[id] - mx))) - log_total);
      out->n_top = k + 1;
    }
    pv = v, pi = id;
  }
}


// Greedy rows with nothing else to do (no adjustments, mask or alternatives): kGreedySlices blocks per row each
// reduce a slice (best value and id, and the sum of e^(v - slice max)); the last block of a row to finish
// combines the slices. Many blocks read the row at once, where one block would be limited to one
// multiprocessor's bandwidth.
constexpr int kGreedySlices = 32;
constexpr int kGreedyThreads = 256;

struct GreedyPart {
  float best, max;
  int32_t id;
  double sum;
};

__global__ void __launch_bounds__(kGreedyThreads) GreedyKernel(const float* logits, int64_t vocab,
                                                               const SampleRowDev* rows, GreedyPart* parts,
                                                               unsigned* done, SampleResult* results) {
  WaitPrevious();
  StartNext();
  const int row = blockIdx.x, slice = blockIdx.y;
  const float* in = logits + rows[row].logits_row * vocab;
  const int64_t per = CeilDiv(vocab, kGreedySlices);
  const int64_t begin = slice * per, end = min(vocab, begin + per);
  float bv = -INFINITY, m = -INFINITY;
  int32_t bi = -1;
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kGreedyThreads) {
    float v = in[i];
    if (isnan(v)) v = -INFINITY;
    Observe(v, static_cast<int32_t>(i), bv, bi, m, s);
  }
  // Combine (best, id, max, sum) over the block: shuffles, then the warps' results in shared memory.
  auto merge = [](float& bv, int32_t& bi, float& m, double& s, float obv, int32_t obi, float om, double os) {
    if (obi >= 0 && (bi < 0 || obv > bv || (obv == bv && obi < bi))) bv = obv, bi = obi;
    const float nm = fmaxf(m, om);
    if (nm == -INFINITY) return;
    s = (m == -INFINITY ? 0.0 : s * static_cast<double>(expf(m - nm))) +
        (om == -INFINITY ? 0.0 : os * static_cast<double>(expf(om - nm)));
    m = nm;
  };
  for (int o = 16; o > 0; o >>= 1)
    merge(bv, bi, m, s, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o),
          __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  __shared__ GreedyPart warp_part[kGreedyThreads / 32];
  __shared__ bool last;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = {bv, m, bi, s};
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kGreedyThreads / 32; ++w)
      merge(bv, bi, m, s, warp_part[w].best, warp_part[w].id, warp_part[w].max, warp_part[w].sum);
    parts[row * kGreedySlices + slice] = {bv, m, bi, s};
    __threadfence();
    last = atomicAdd(&done[row], 1u) == kGreedySlices - 1;
  }
  __syncthreads();
  if (!last || threadIdx.x != 0) return;
  __threadfence();
  GreedyPart p = parts[row * kGreedySlices];
  for (int k = 1; k < kGreedySlices; ++k) {
    const GreedyPart q = parts[row * kGreedySlices + k];
    merge(p.best, p.id, p.max, p.sum, q.best, q.id, q.max, q.sum);
  }
  done[row] = 0;  // ready for the next step (recorded steps replay this kernel as it is)
  SampleResult* out = results + row;
  out->id = p.id < 0 ? 0 : p.id;
  out->logprob = isfinite(p.best) ? static_cast<float>(-log(p.sum)) : 0.0f;
  out->n_top = 0;
}
}  // namespace

void LaunchGreedy(const float* logits, int64_t vocab, const SampleRowDev* rows, int n_rows, int64_t capacity,
                  void* scratch, SampleResult* results, cudaStream_t stream) {
  if (n_rows == 0) return;
  auto* parts = static_cast<GreedyPart*>(scratch);
  // The counters sit after room for `capacity` rows: at the same place whatever this step's row count.
  auto* done = reinterpret_cast<unsigned*>(parts + static_cast<size_t>(capacity) * kGreedySlices);
  Launch(GreedyKernel, dim3(n_rows, kGreedySlices), dim3(kGreedyThreads), 0, stream, logits, vocab, rows, parts, done,
         results);
}

void LaunchSample(const float* logits, int64_t vocab, const SampleRowDev* rows, int n_rows, const TokenAdjust* adjust,
                  const uint8_t* masks, float* work, SampleResult* results, cudaStream_t stream) {
  if (n_rows == 0) return;
  SampleKernel<<<n_rows, kThreads, 0, stream>>>(logits, vocab, rows, adjust, masks, work, results);
}

}  // namespace pensieve::backend::cuda
