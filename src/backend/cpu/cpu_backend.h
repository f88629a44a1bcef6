#pragma once
// The CPU backend: a persistent thread pool plus Highway SIMD kernels chosen at run time for the CPU
// (AVX-512, AVX2, NEON, ... see simd_targets.h). Weights are read in their stored format, in place in the
// mapped model files, except affine 4/8-bit matrices on CPUs with AVX-512 VNNI, which are rewritten once at
// load into the integer kernels' tiles (matmul_int8.cpp); KV storage is f32 host memory.
#include <memory>

#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"
#include "backend/host_backend.h"

namespace pensieve::backend::cpu {

// How affine 4/8-bit matrices are multiplied. kInt8: activations rounded to int8 per block of 32 and integer
// dot products (matmul_int8.cpp; llama.cpp's arithmetic for its Q4_0/Q8_0 files), where the CPU has them
// (Int8Available), else as kFloat. kInt8Fine: the same with a second byte per activation holding the first
// one's rounding error (logits within ~1e-3 relative of f32 instead of ~1e-1 on tiny random models; prefill
// about 40% slower, decode a few %). kFloat: weights widened to f32, exact up to f32 rounding: what tests
// against f32 references use.
enum class AffineMath : uint8_t { kInt8, kInt8Fine, kFloat };

class CpuBackend final : public HostBackend {
 public:
  // threads <= 0: one per hardware thread
  explicit CpuBackend(int threads, AffineMath math = AffineMath::kInt8);
  std::string Name() const override;
  int threads() const override { return pool_.size(); }

  // Affine 4/8-bit matrices go into the integer kernels' tiles where this CPU has them (Int8Available).
  std::unique_ptr<Buffer> Relayout(MatRef& m) override;
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
  bool int8_;  // affine matrices go to the integer kernels
  bool fine_;  // ... with two bytes per activation
  ThreadPool pool_;
  Scratch scratch_;
};

}  // namespace pensieve::backend::cpu
