#include "backend/host_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/system_memory.h"

namespace pensieve::backend {
namespace {

class HostBuffer final : public Buffer {
 public:
  HostBuffer(int64_t bytes, const std::string& what) {
    // calloc: zeroed pages that become resident only when touched.
    data_ = std::calloc(static_cast<size_t>(std::max<int64_t>(bytes, 1)), 1);
    if (!data_) throw Error(what + ": cannot allocate " + std::to_string(bytes) + " bytes of host memory");
    bytes_ = bytes;
  }
  ~HostBuffer() override { std::free(data_); }
};

}  // namespace

Tensor Buffer::AsTensor(int64_t rows, int64_t cols) const {
  if (!(rows * cols * int64_t{sizeof(float)} <= bytes_)) throw Error("buffer: tensor larger than its buffer");
  return {static_cast<float*>(data_), rows, cols};
}

std::unique_ptr<Buffer> HostBackend::Allocate(int64_t bytes, const std::string& what) {
  return std::make_unique<HostBuffer>(bytes, what);
}

void HostBackend::Upload(void* dst, const void* src, int64_t bytes) { std::memcpy(dst, src, bytes); }

MemoryInfo HostBackend::Memory() const {
  const std::optional<SystemMemory> m = ReadSystemMemory();
  return m ? MemoryInfo{m->available_bytes, m->total_bytes} : MemoryInfo{};
}
void HostBackend::Download(void* dst, const void* src, int64_t bytes) { std::memcpy(dst, src, bytes); }

std::unique_ptr<KvStorage> HostBackend::CreateKvStorage(const KvLayout& layout, FloatType) {
  return std::make_unique<HostKvStorage>(layout);
}

void HostBackend::Reserve(const ScratchSpec& spec) {
  RowScratch(0, spec.max_rows * spec.max_cols);
  RowScratch(1, spec.max_rows * spec.max_cols);
  if (spec.vocab > 1 && (!sampler_ || sampler_->vocab() != spec.vocab))
    sampler_ = std::make_unique<HostSampler>(static_cast<int>(spec.vocab), exp_sum_);
  samples_.reserve(spec.max_samples);
}

float* HostBackend::RowScratch(int which, int64_t floats) {
  auto& s = row_scratch_[which];
  if (static_cast<int64_t>(s.size()) < floats) s.resize(floats);
  return s.data();
}

void HostBackend::MatMul(Tensor x, const MatRef& w, Tensor bias, Tensor y, bool accumulate) {
  if (!accumulate) {
    const MatMulOut out{w, bias, y};
    MatMulMulti(x, std::span(&out, 1));
    return;
  }
  const Tensor tmp{RowScratch(0, y.size()), y.rows, y.cols};
  const MatMulOut out{w, bias, tmp};
  MatMulMulti(x, std::span(&out, 1));
  AddRows(y.data, tmp.data, y.size());
}

void HostBackend::MatMulGlu(Tensor x, const MatRef& gate, Tensor gate_bias, const MatRef& up, Tensor up_bias,
                            GluActivation act, Tensor out) {
  const Tensor g{RowScratch(0, out.size()), out.rows, out.cols}, u{RowScratch(1, out.size()), out.rows, out.cols};
  const MatMulOut outs[2] = {{gate, gate_bias, g}, {up, up_bias, u}};
  MatMulMulti(x, outs);
  GluRows(act, g.data, u.data, out.size(), out.data);
}

void HostBackend::PrepareAttention(KvStorage& kv, const QkvArgs& a) {
  if (!a.q_norm.empty()) {
    RmsNorm(a.q.Reshape(a.head_dim), a.q_norm, a.eps, a.q.Reshape(a.head_dim));
    RmsNorm(a.k.Reshape(a.head_dim), a.k_norm, a.eps, a.k.Reshape(a.head_dim));
  }
  // Rope in runs of rows that share short or long longrope factors.
  const int64_t T = plan_.T();
  for (int64_t r = 0; r < T;) {
    const bool long_rope = !plan_.long_rope.empty() && plan_.long_rope[r];
    int64_t e = r + 1;
    while (e < T && (!plan_.long_rope.empty() && plan_.long_rope[e]) == long_rope) ++e;
    const float* inv_freq = long_rope ? a.rope.inv_freq_long.data : a.rope.inv_freq.data;
    RopeRows(a.q.data + r * a.q.cols, e - r, a.n_heads, a.head_dim, plan_.pos.data() + r, a.rope.rotary_dim,
             inv_freq, a.rope.attention_factor);
    RopeRows(a.k.data + r * a.k.cols, e - r, a.n_kv_heads, a.head_dim, plan_.pos.data() + r, a.rope.rotary_dim,
             inv_freq, a.rope.attention_factor);
    r = e;
  }
  HostWriteKv(static_cast<HostKvStorage&>(kv), plan_, a.layer, a.k.data, a.v.data);
}

void HostBackend::GatherLogitRows(Tensor x, Tensor out) {
  for (size_t r = 0; r < plan_.logit_rows.size(); ++r)
    std::memcpy(out.data + r * out.cols, x.data + plan_.logit_rows[r] * x.cols, x.cols * sizeof(float));
}

void HostBackend::Sample(Tensor logits) {
  if (!sampler_ || sampler_->vocab() != logits.cols)
    sampler_ = std::make_unique<HostSampler>(static_cast<int>(logits.cols), exp_sum_);
  samples_.resize(plan_.samples.size());
  for (size_t i = 0; i < plan_.samples.size(); ++i) {
    const SampleRow& row = plan_.samples[i];
    sampler_->Sample(std::span<const float>(logits.data + row.logits_row * logits.cols, logits.cols), row,
                     &samples_[i]);
  }
}

void HostBackend::TakeSamples(std::span<SampleResult> out) {
  if (!(out.size() >= samples_.size())) throw Error("sample: result buffer too small");
  std::copy(samples_.begin(), samples_.end(), out.begin());
}

}  // namespace pensieve::backend
