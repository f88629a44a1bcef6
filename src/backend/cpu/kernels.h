#pragma once
// Entry points of the CPU kernels. Each dispatches once (HWY_DYNAMIC_DISPATCH) to the best compiled SIMD
// target and then works on the whole tensor, spreading rows over the thread pool.
#include <cstdint>
#include <algorithm>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "backend/host_kv.h"

namespace pensieve::backend::cpu {

// One unit of attention work (attention.cpp): t1 >= 0: rows [t0, t1) of one sequence against kv head `head`
// (tile kernel); t1 < 0: row t0, the -t1 query heads from `head` on, which share one kv head (row kernel).
struct AttentionJob {
  int64_t t0, t1;
  int head;
};

// Scratch memory sized by CpuBackend::Reserve; kernels only grow it when a call exceeds the reservation.
struct Scratch {
  std::vector<AttentionJob> jobs;
  std::vector<float> per_thread;  // threads * per_thread_floats
  int64_t per_thread_floats = 0;
  std::vector<float> shared;
  float* Thread(int t) { return per_thread.data() + t * per_thread_floats; }
  void EnsureThread(int threads, int64_t floats) {
    if (floats > per_thread_floats) {
      per_thread_floats = floats;
      per_thread.assign(static_cast<size_t>(threads) * floats, 0.0f);
    }
  }
  void EnsureShared(int64_t floats) {
    if (static_cast<int64_t>(shared.size()) < floats) shared.assign(floats, 0.0f);
  }
};

// One output of a matmul pass, in host memory: y = x W^T (+ bias).
struct MatOut {
  MatRef w;
  const float* bias = nullptr;
  float* y = nullptr;
};

// All outs share the input width and storage format (same FloatType; for affine also bits and group size).
void MatMulFloat(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs);
void MatMulAffine(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs);

// Integer kernels (matmul_int8.cpp): affine 4- and 8-bit weights rewritten at load into 16-row tiles, times
// activations quantized to int8 per block of 32 (AVX-512 VNNI). Results differ from the float kernels by the
// activation rounding: each value moves by up to half a step of its block (max|x| / 254); the measured effect on
// logits is in bench/RESULTS.md.
bool Int8Available();                // this CPU has AVX-512 VNNI and PENSIEVE_CPU_INT8 is not 0
bool Int8Fits(const MatRef& w);      // affine, bits 4 or 8, group size a multiple of 32, not yet tiled
int64_t Int8TiledBytes(const MatRef& w);
// Writes w's tiles into dst (Int8TiledBytes bytes; the kernels load unaligned) and returns the tiled view.
MatRef Int8Relayout(ThreadPool& pool, const MatRef& w, void* dst);
void DequantizeTiledRow(const MatRef& w, int64_t row, float* out);
// All outs tiled by Int8Relayout, with the same cols, bits, group size and scale type. `fine`: each activation
// as two bytes, x ~ dx * (q + q2 / 128) (error 1/256 of a step instead of 1/2; twice the integer products).
void MatMulInt8(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs,
                bool fine);

void RmsNorm(ThreadPool& pool, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
             float* y);
void SiluMul(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out);
void GeluMul(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out);
void Add(ThreadPool& pool, float* y, const float* x, int64_t n);
void Softmax(ThreadPool& pool, float* x, int64_t rows, int64_t n);
// sum over i < n of exp(x[i] - max), on this thread (x is not changed).
double ExpSum(const float* x, int64_t n, float max);
void Attention(ThreadPool& pool, Scratch& scratch, const HostKvStorage& cache, const HostAttention& args);

// Rows per task: a multiple of 4, about 8 tasks per thread so uneven cores still finish together.
inline int64_t RowChunk(int64_t rows, int threads) {
  int64_t chunk = rows / (int64_t{threads} * 8);
  chunk = (chunk + 3) / 4 * 4;
  return chunk < 4 ? 4 : chunk;
}

// Spreads the rows of up to kMaxOuts matrices over the pool in RowChunk-sized chunks (never straddling two
// matrices) and calls fn(matrix, row_begin, row_end, thread) for each.
constexpr int kMaxOuts = 8;
template <class F>
void RunRowChunks(ThreadPool& pool, std::span<const MatOut> outs, const F& fn) {
  int64_t total = 0;
  for (const MatOut& o : outs) total += o.w.rows;
  const int64_t chunk = RowChunk(total, pool.size());
  int64_t first[kMaxOuts + 1] = {0};
  const int n = static_cast<int>(outs.size());
  for (int s = 0; s < n; ++s) first[s + 1] = first[s] + (outs[s].w.rows + chunk - 1) / chunk;
  pool.Run(first[n], [&](int64_t task, int thread) {
    int s = 0;
    while (task >= first[s + 1]) ++s;
    const int64_t begin = (task - first[s]) * chunk;
    fn(s, begin, std::min(outs[s].w.rows, begin + chunk), thread);
  });
}

}  // namespace pensieve::backend::cpu
