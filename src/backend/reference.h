#pragma once
// Plain scalar implementations of every backend op: the definitions the SIMD kernels are tested against,
// and a complete (slow, single-threaded) Backend for tests. Written for clarity, not speed.
#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace pensieve::backend::ref {

float Bf16ToF32(uint16_t bits);
float F16ToF32(uint16_t bits);
uint16_t F32ToBf16(float f);  // round to nearest even
uint16_t F32ToF16(float f);   // round to nearest even
float LoadFloat(FloatType type, const void* base, int64_t index);

// Row r of W as f32 (dequantized for affine weights).
void DequantizeRow(const MatRef& w, int64_t r, float* out);

void MatMul(const float* x, int64_t T, const MatRef& w, const float* bias, float* y);
void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);
void Rope(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, const RopeParams& rope);
void Attention(const KvCache& cache, const AttentionArgs& a);
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
void GeluMul(const float* gate, const float* up, int64_t n, float* out);
void Embed(const MatRef& table, std::span<const int32_t> ids, float* out);
void Softmax(float* x, int64_t rows, int64_t n);

// A Backend made of the functions above.
class ReferenceBackend final : public Backend {
 public:
  std::string Name() const override { return "reference"; }
  int threads() const override { return 1; }
  void Reserve(const ScratchSpec&) override {}
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
  void Softmax(float* x, int64_t rows, int64_t n) override { ref::Softmax(x, rows, n); }
  void Embed(const MatRef& table, std::span<const int32_t> ids, float* out) override;
};

}  // namespace pensieve::backend::ref
