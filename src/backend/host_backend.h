#pragma once
// The part of the cpu and reference backends that is the same for both: they compute on host memory, so
// memory is malloc'd, Upload/Download are copies, the step plan is read where the model keeps it, and the
// composite ops (residual matmul, gated MLP, PrepareAttention, sampling) are built from a few row kernels that
// each subclass provides.
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/host_kv.h"

namespace pensieve::backend {

class HostBackend : public Backend {
 public:
  bool HostMemory() const override { return true; }
  // RAM: available (MemAvailable) and total; zeros when the system does not say.
  MemoryInfo Memory() const override;
  std::unique_ptr<Buffer> Allocate(int64_t bytes, const std::string& what) override;
  void Upload(void* dst, const void* src, int64_t bytes) override;
  void Download(void* dst, const void* src, int64_t bytes) override;
  FloatType KvStorageType(FloatType) const override { return FloatType::kF32; }
  std::unique_ptr<KvStorage> CreateKvStorage(const KvLayout& layout, FloatType type) override;
  void Reserve(const ScratchSpec& spec) override;

  void SetStep(const StepPlan& plan) override { plan_ = plan; }

  void MatMul(Tensor x, const MatRef& w, Tensor bias, Tensor y, bool accumulate) override;
  void MatMulGlu(Tensor x, const MatRef& gate, Tensor gate_bias, const MatRef& up, Tensor up_bias,
                 GluActivation act, Tensor out) override;
  void PrepareAttention(KvStorage& kv, const QkvArgs& args) override;
  void GatherLogitRows(Tensor x, Tensor out) override;
  void Sample(Tensor logits) override;
  void TakeSamples(std::span<SampleResult> out) override;

 protected:
  // Row kernels of the subclass. Rope rotates rows [0, T) of x (each `heads` heads of head_dim) by pos[t].
  virtual void RopeRows(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, int rotary_dim,
                        const float* inv_freq, float attention_factor) = 0;
  virtual void AddRows(float* y, const float* x, int64_t n) = 0;
  virtual void GluRows(GluActivation act, const float* gate, const float* up, int64_t n, float* out) = 0;

  const StepPlan& plan() const { return plan_; }
  // Given to the sampler (HostSampler::ExpSumFn); set by a subclass's constructor.
  HostSampler::ExpSumFn exp_sum_ = nullptr;

 private:
  // Scratch rows for the residual matmul and the gated MLP, sized by Reserve() (grown if a call needs more).
  float* RowScratch(int which, int64_t floats);

  StepPlan plan_;
  std::vector<float> row_scratch_[2];
  std::unique_ptr<HostSampler> sampler_;
  std::vector<SampleResult> samples_;
};

}  // namespace pensieve::backend
