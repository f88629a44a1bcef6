#pragma once
// Entry points of the CPU kernels. Each dispatches once (HWY_DYNAMIC_DISPATCH) to the best compiled SIMD
// target and then works on the whole tensor, spreading rows over the thread pool.
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"

namespace pensieve::backend::cpu {

// Scratch memory sized by CpuBackend::Reserve; kernels only grow it when a call exceeds the reservation.
struct Scratch {
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

void MatMulFloat(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, const MatRef& w,
                 const float* bias, float* y);
void MatMulAffine(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, const MatRef& w,
                  const float* bias, float* y);
void RmsNorm(ThreadPool& pool, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
             float* y);
void SiluMul(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out);
void GeluMul(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out);
void Add(ThreadPool& pool, float* y, const float* x, int64_t n);
void Softmax(ThreadPool& pool, float* x, int64_t rows, int64_t n);
void Attention(ThreadPool& pool, Scratch& scratch, const KvCache& cache, const AttentionArgs& args);

// Rows per task: a multiple of 4, about 8 tasks per thread so uneven cores still finish together.
inline int64_t RowChunk(int64_t rows, int threads) {
  int64_t chunk = rows / (int64_t{threads} * 8);
  chunk = (chunk + 3) / 4 * 4;
  return chunk < 4 ? 4 : chunk;
}

}  // namespace pensieve::backend::cpu
