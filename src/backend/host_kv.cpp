#include "backend/host_kv.h"

#include <sys/mman.h>

#include <cstring>
#include <string>

#include "util/error.h"

namespace pensieve::backend {

HostKvStorage::HostKvStorage(const KvLayout& layout) : KvStorage(layout) {
  if (!(layout.layers > 0 && layout.kv_heads > 0 && layout.head_dim > 0 && layout.block_tokens > 0 &&
        layout.blocks > 0))
    throw Error("kv storage: layers, kv_heads, head_dim, block_tokens and blocks must be positive");
  layer_floats_ = int64_t{layout.block_tokens} * kv_dim();
  block_floats_ = int64_t{layout.layers} * 2 * layer_floats_;
  // Anonymous mapping: pages become resident only when a block is first written.
  const size_t n = static_cast<size_t>(bytes());
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!(p != MAP_FAILED)) throw Error("kv storage: cannot reserve " + std::to_string(n) + " bytes of memory");
  pool_ = static_cast<float*>(p);
}

HostKvStorage::~HostKvStorage() {
  if (pool_) munmap(pool_, static_cast<size_t>(bytes()));
}

void HostKvStorage::CopyBlock(int32_t from, int32_t to) {
  std::memcpy(pool_ + to * block_floats_, pool_ + from * block_floats_, block_floats_ * sizeof(float));
}

HostAttention MakeHostAttention(const StepPlan& plan, const AttentionArgs& a) {
  HostAttention h;
  h.q = a.q.data;
  h.out = a.out.data;
  h.T = plan.T();
  h.row_item = plan.row_item.data();
  h.pos = plan.pos.data();
  h.tables = plan.block_tables.data();
  h.table_stride = plan.table_stride;
  h.layer = a.layer;
  h.n_heads = a.n_heads;
  h.n_kv_heads = a.n_kv_heads;
  h.head_dim = a.head_dim;
  h.scale = a.scale;
  h.window = a.window;
  return h;
}

void HostWriteKv(HostKvStorage& kv, const StepPlan& plan, int layer, const float* k, const float* v) {
  const int64_t d = kv.kv_dim(), bt = kv.block_tokens();
  for (int64_t t = 0; t < plan.T(); ++t) {
    const int32_t* table = plan.block_tables.data() + plan.row_item[t] * plan.table_stride;
    const int64_t p = plan.pos[t];
    std::memcpy(kv.Keys(table[p / bt], layer) + (p % bt) * d, k + t * d, d * sizeof(float));
    std::memcpy(kv.Values(table[p / bt], layer) + (p % bt) * d, v + t * d, d * sizeof(float));
  }
}

}  // namespace pensieve::backend
