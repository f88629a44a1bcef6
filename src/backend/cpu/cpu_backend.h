#pragma once
// The CPU backend: a persistent thread pool plus Highway SIMD kernels chosen at run time for the CPU
// (AVX-512, AVX2, NEON, ... see simd_targets.h). Weights are read in their stored format, in place in the
// mapped model files; KV storage is f32 host memory.
#include <memory>

#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"
#include "backend/host_backend.h"

namespace pensieve::backend::cpu {

class CpuBackend final : public HostBackend {
 public:
  explicit CpuBackend(int threads);  // threads <= 0: one per hardware thread
  std::string Name() const override;
  int threads() const override { return pool_.size(); }

  void Reserve(const ScratchSpec& spec) override;
  void Embed(const MatRef& table, Tensor out) override;
  void MatMulMulti(Tensor x, std::span<const MatMulOut> outs) override;
  void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y) override;
  void Attention(KvStorage& kv, const AttentionArgs& args) override;

  // Direct kernel entry points on host pointers (also what the tests call).
  void MatMulHost(const float* x, int64_t T, std::span<const MatOut> outs);
  void SoftmaxHost(float* x, int64_t rows, int64_t n) { cpu::Softmax(pool_, x, rows, n); }
  void RopeRows(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, int rotary_dim,
                const float* inv_freq, float attention_factor) override;
  void AddRows(float* y, const float* x, int64_t n) override { cpu::Add(pool_, y, x, n); }
  void GluRows(GluActivation act, const float* gate, const float* up, int64_t n, float* out) override;

 private:
  ThreadPool pool_;
  Scratch scratch_;
};

}  // namespace pensieve::backend::cpu
