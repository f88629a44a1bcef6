#pragma once
// The CPU backend: a persistent thread pool plus Highway SIMD kernels chosen at run time for the CPU
// (AVX-512, AVX2, NEON, ... see simd_targets.h). Weights are read in their stored format.
#include <memory>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace pensieve::backend::cpu {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);  // threads <= 0: one per hardware thread
  std::string Name() const override;
  int threads() const override { return pool_.size(); }

  void Reserve(const ScratchSpec& spec) override;
  std::unique_ptr<KvCache> CreateKvCache(const KvCacheConfig& config) override;
  void MatMul(const float* x, int64_t T, const MatRef& w, const float* bias, float* y) override;
  void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) override;
  void Rope(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, const RopeParams& rope) override;
  void WriteKv(KvCache& cache, int layer, int64_t T, const int32_t* seqs, const int32_t* pos, const float* k,
               const float* v) override;
  void Attention(KvCache& cache, const AttentionArgs& args) override;
  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override;
  void GeluMul(const float* gate, const float* up, int64_t n, float* out) override;
  void Add(float* y, const float* x, int64_t n) override;
  void Softmax(float* x, int64_t rows, int64_t n) override;
  void Embed(const MatRef& table, std::span<const int32_t> ids, float* out) override;

 private:
  ThreadPool pool_;
  Scratch scratch_;
};

}  // namespace pensieve::backend::cpu
