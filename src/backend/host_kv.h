#pragma once
// KV storage in host memory and the host-side view of one attention call: shared by the cpu and reference
// backends.
//
// Storage (f32): block b holds, per layer, K then V as [block_tokens, kv_heads * head_dim]. The pool is one
// anonymous mapping, not touched until used, so resident memory follows actual use.
#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace pensieve::backend {

class HostKvStorage final : public KvStorage {
 public:
  explicit HostKvStorage(const KvLayout& layout);
  ~HostKvStorage() override;

  FloatType type() const override { return FloatType::kF32; }
  int64_t bytes() const override { return layout_.blocks * block_floats_ * int64_t{sizeof(float)}; }
  void CopyBlock(int32_t from, int32_t to) override;

  int64_t kv_dim() const { return layout_.kv_dim(); }
  int block_tokens() const { return layout_.block_tokens; }
  // [block_tokens, kv_dim] for (block, layer).
  float* Keys(int32_t block, int layer) { return pool_ + block * block_floats_ + layer * layer_floats_ * 2; }
  float* Values(int32_t block, int layer) { return Keys(block, layer) + layer_floats_; }
  const float* Keys(int32_t block, int layer) const {
    return pool_ + block * block_floats_ + layer * layer_floats_ * 2;
  }
  const float* Values(int32_t block, int layer) const { return Keys(block, layer) + layer_floats_; }

 private:
  int64_t layer_floats_ = 0;  // block_tokens * kv_dim
  int64_t block_floats_ = 0;  // layers * 2 * layer_floats_
  float* pool_ = nullptr;
};

// One attention call over host memory: the step's rows with their items' block tables.
struct HostAttention {
  const float* q = nullptr;  // [T, n_heads, head_dim]
  float* out = nullptr;      // [T, n_heads, head_dim]
  int64_t T = 0;
  const int32_t* row_item = nullptr;  // [T]
  const int32_t* pos = nullptr;       // [T]
  const int32_t* tables = nullptr;    // [items, table_stride]
  int64_t table_stride = 0;
  int layer = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  int window = 0;

  std::span<const int32_t> Blocks(int32_t item) const {
    return {tables + item * table_stride, static_cast<size_t>(table_stride)};
  }
};

HostAttention MakeHostAttention(const StepPlan& plan, const AttentionArgs& args);

// k, v rows of the step stored at each row's (item, position); the host backends' half of PrepareAttention.
void HostWriteKv(HostKvStorage& kv, const StepPlan& plan, int layer, const float* k, const float* v);

}  // namespace pensieve::backend
