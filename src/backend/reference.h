#pragma once
// Plain scalar implementations of every backend op: the definitions the SIMD kernels are tested against,
// and a complete (slow, single-threaded) Backend for tests. Written for clarity, not speed.
#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "backend/host_backend.h"
#include "backend/host_kv.h"

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
void Rope(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, int rotary_dim, const float* inv_freq,
          float attention_factor);
void Attention(const HostKvStorage& cache, const HostAttention& a);
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
void GeluMul(const float* gate, const float* up, int64_t n, float* out);
void Embed(const MatRef& table, std::span<const int32_t> ids, float* out);
void Softmax(float* x, int64_t rows, int64_t n);

// A Backend made of the functions above.
class ReferenceBackend final : public HostBackend {
 public:
  std::string Name() const override { return "reference"; }
  int threads() const override { return 1; }
  void Embed(const MatRef& table, Tensor out) override { ref::Embed(table, plan().tokens, out.data); }
  void MatMulMulti(Tensor x, std::span<const MatMulOut> outs) override;
  void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y) override {
    ref::RmsNorm(x.data, weight.data, x.rows, x.cols, eps, y.data);
  }
  void Attention(KvStorage& kv, const AttentionArgs& args) override {
    ref::Attention(static_cast<const HostKvStorage&>(kv), MakeHostAttention(plan(), args));
  }

 protected:
  void RopeRows(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, int rotary_dim,
                const float* inv_freq, float attention_factor) override {
    ref::Rope(x, T, heads, head_dim, pos, rotary_dim, inv_freq, attention_factor);
  }
  void AddRows(float* y, const float* x, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  void GluRows(GluActivation act, const float* gate, const float* up, int64_t n, float* out) override {
    act == GluActivation::kSilu ? ref::SiluMul(gate, up, n, out) : ref::GeluMul(gate, up, n, out);
  }
};

}  // namespace pensieve::backend::ref
