#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "backend/reference.h"
#include "backend/cpu/simd_targets.h"
#include "hwy/highway.h"
#include "util/error.h"

namespace pensieve::backend::cpu {

namespace {
int DefaultThreads(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}
// Lower bits are better targets in Highway; HWY_DYNAMIC_DISPATCH picks the best compiled and supported one.
const char* BestTarget() {
  const int64_t t = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(t & -t);
}
// Whether two weights can share one kernel pass (same input width and storage format).
bool SameFormat(const MatRef& a, const MatRef& b) {
  return a.kind == b.kind && a.type == b.type && a.cols == b.cols && a.tiled == b.tiled &&
         (a.kind == MatRef::Kind::kFloat || (a.bits == b.bits && a.group_size == b.group_size));
}
}  // namespace

CpuBackend::CpuBackend(int threads, AffineMath math)
    : int8_(math != AffineMath::kFloat && Int8Available()),
      fine_(math == AffineMath::kInt8Fine),
      pool_(DefaultThreads(threads)) {
  exp_sum_ = &ExpSum;
}

std::string CpuBackend::Name() const {
  return std::string("cpu (") + BestTarget() + (int8_ ? (fine_ ? " + fine int8 VNNI" : " + int8 VNNI") : "") + ", " + std::to_string(threads()) +
         " threads)";
}

void CpuBackend::Reserve(const ScratchSpec& spec) {
  HostBackend::Reserve(spec);
  // Per thread: 4 widened weight rows + group scales/biases (matmul), or the scores of one attention row.
  const int64_t groups_pad = 2 * (spec.max_cols + 64);
  scratch_.EnsureThread(pool_.size(), std::max(4 * spec.max_cols + groups_pad, spec.max_context + 64));
  // Shared: permuted activations and group sums of one matmul input.
  scratch_.EnsureShared(spec.max_rows * (2 * spec.max_cols));
  scratch_.jobs.reserve(static_cast<size_t>(spec.max_rows) * 8);
}

std::unique_ptr<Buffer> CpuBackend::Relayout(MatRef& m) {
  if (!int8_ || !Int8Fits(m)) return nullptr;
  auto tiles = Allocate(Int8TiledBytes(m), "integer weight tiles");
  m = Int8Relayout(pool_, m, tiles->data());
  return tiles;
}

void CpuBackend::Embed(const MatRef& table, Tensor out) {
  if (!table.tiled) return ref::Embed(table, plan().tokens, out.data);
  const std::span<const int32_t> ids = plan().tokens;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!(ids[i] >= 0 && ids[i] < table.rows))
      throw Error("token id " + std::to_string(ids[i]) + " outside vocabulary of " + std::to_string(table.rows));
    DequantizeTiledRow(table, ids[i], out.data + static_cast<int64_t>(i) * table.cols);
  }
}

void CpuBackend::MatMulHost(const float* x, int64_t T, std::span<const MatOut> outs) {
  // Runs of consecutive same-format weights go to the kernel together (one pool synchronisation).
  for (size_t i = 0; i < outs.size();) {
    size_t j = i + 1;
    while (j < outs.size() && j - i < kMaxOuts && SameFormat(outs[i].w, outs[j].w)) ++j;
    const auto run = outs.subspan(i, j - i);
    if (outs[i].w.kind == MatRef::Kind::kFloat) {
      MatMulFloat(pool_, scratch_, x, T, run);
    } else if (outs[i].w.tiled) {
      MatMulInt8(pool_, scratch_, x, T, run, fine_);
    } else {
      MatMulAffine(pool_, scratch_, x, T, run);
    }
    i = j;
  }
}

void CpuBackend::MatMulMulti(Tensor x, std::span<const MatMulOut> outs) {
  MatOut host[kMaxOuts];
  for (size_t i = 0; i < outs.size(); i += kMaxOuts) {
    const size_t n = std::min<size_t>(kMaxOuts, outs.size() - i);
    for (size_t j = 0; j < n; ++j) {
      const MatMulOut& o = outs[i + j];
      host[j] = {o.w, o.bias.empty() ? nullptr : o.bias.data, o.y.data};
    }
    MatMulHost(x.data, x.rows, std::span<const MatOut>(host, n));
  }
}

void CpuBackend::RmsNorm(Tensor x, Tensor weight, float eps, Tensor y) {
  cpu::RmsNorm(pool_, x.data, weight.data, x.rows, x.cols, eps, y.data);
}

void CpuBackend::RopeRows(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, int rotary_dim,
                          const float* inv_freq, float attention_factor) {
  // cos/sin once per (row, frequency), then applied to every head; same float32 angle as transformers.
  const int half = rotary_dim / 2;
  pool_.Run(T, [&](int64_t t, int) {
    float cs[512], sn[512];  // half <= 512 (head_dim <= 1024), checked by the model at load
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos[t]) * inv_freq[i];
      cs[i] = static_cast<float>(std::cos(double{angle})) * attention_factor;
      sn[i] = static_cast<float>(std::sin(double{angle})) * attention_factor;
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  });
}

void CpuBackend::GluRows(GluActivation act, const float* gate, const float* up, int64_t n, float* out) {
  if (act == GluActivation::kSilu) {
    cpu::SiluMul(pool_, gate, up, n, out);
  } else {
    cpu::GeluMul(pool_, gate, up, n, out);
  }
}

void CpuBackend::Attention(KvStorage& kv, const AttentionArgs& args) {
  cpu::Attention(pool_, scratch_, static_cast<const HostKvStorage&>(kv), MakeHostAttention(plan(), args));
}

}  // namespace pensieve::backend::cpu
