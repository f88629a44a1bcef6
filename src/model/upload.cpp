#include "model/upload.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "util/error.h"

namespace pensieve::model {
namespace {

constexpr int64_t kAlign = 256;

// The distinct host byte ranges a binding reads, merged where they overlap, each with its offset in the
// backend allocation.
class RangeMap {
 public:
  void Add(const void* p, int64_t bytes) {
    if (p && bytes > 0) ranges_.push_back({static_cast<const std::byte*>(p), static_cast<const std::byte*>(p) + bytes, 0});
  }
  // Merges overlapping ranges and lays them out; returns the total bytes.
  int64_t Layout() {
    std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    std::vector<Range> merged;
    for (const Range& r : ranges_) {
      if (!merged.empty() && r.begin < merged.back().end) {
        merged.back().end = std::max(merged.back().end, r.end);
      } else {
        merged.push_back(r);
      }
    }
    int64_t offset = 0;
    for (Range& r : merged) {
      r.offset = offset;
      offset += (r.end - r.begin + kAlign - 1) / kAlign * kAlign;
    }
    ranges_ = std::move(merged);
    return offset;
  }
  template <class F>
  void ForEachRange(F&& f) const {
    for (const Range& r : ranges_) f(r.begin, r.end - r.begin, r.offset);
  }
  // The backend address of host address p (which lies in one of the ranges).
  const void* Translate(const void* p, std::byte* base) const {
    if (!p) return nullptr;
    const auto* b = static_cast<const std::byte*>(p);
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), b, [](const std::byte* v, const Range& r) { return v < r.begin; });
    if (!(it != ranges_.begin() && b < (it - 1)->end)) throw Error("upload: weight address outside every uploaded range");
    --it;
    return base + it->offset + (b - it->begin);
  }

 private:
  struct Range {
    const std::byte* begin;
    const std::byte* end;
    int64_t offset;
  };
  std::vector<Range> ranges_;
};

int64_t GroupBytes(const backend::MatRef& m) {
  return m.rows * (m.cols / m.group_size) * static_cast<int64_t>(backend::FloatTypeSize(m.type));
}

RangeMap Ranges(ModelWeights& w) {
  RangeMap map;
  w.ForEach(
      [&](backend::MatRef& m) {
        map.Add(m.data, m.rows * m.RowBytes());
        if (m.kind == backend::MatRef::Kind::kAffine) {
          map.Add(m.scales, GroupBytes(m));
          map.Add(m.biases, GroupBytes(m));
        }
      },
      [&](backend::Tensor& v) { map.Add(v.data, v.size() * int64_t{sizeof(float)}); });
  return map;
}

}  // namespace

int64_t UploadBytes(ModelWeights& host) { return Ranges(host).Layout(); }

BackendWeights UploadWeights(ModelWeights& host, backend::Backend& backend,
                             const std::function<void(const void*, int64_t)>& copied) {
  BackendWeights out;
  ModelWeights& w = out.weights;
  w.embed = host.embed, w.lm_head = host.lm_head, w.final_norm = host.final_norm;
  w.layers = host.layers;
  w.matrix_bytes = host.matrix_bytes;
  if (!backend.HostMemory()) {
    RangeMap map = Ranges(host);
    out.bytes = map.Layout();
    out.storage = backend.Allocate(out.bytes, "model weights");
    auto* base = static_cast<std::byte*>(out.storage->data());
    map.ForEachRange([&](const std::byte* p, int64_t n, int64_t offset) { backend.Upload(base + offset, p, n); });
    w.ForEach(
        [&](backend::MatRef& m) {
          m.data = map.Translate(m.data, base);
          m.scales = map.Translate(m.scales, base);
          m.biases = map.Translate(m.biases, base);
        },
        [&](backend::Tensor& v) { v.data = const_cast<float*>(static_cast<const float*>(map.Translate(v.data, base))); });
  }
  // Each distinct matrix once (a tied embedding is also the lm_head): the backend may reorder its bytes.
  std::map<std::pair<const void*, int64_t>, backend::MatRef> relaid;
  w.ForEach(
      [&](backend::MatRef& m) {
        if (!m.data) return;
        const auto key = std::make_pair(m.data, m.rows);
        auto it = relaid.find(key);
        if (it == relaid.end()) {
          const backend::MatRef before = m;
          if (auto moved = backend.Relayout(m)) {
            out.bytes += moved->bytes();
            out.relaid.push_back(std::move(moved));
            if (copied && backend.HostMemory()) {
              copied(before.data, before.rows * before.RowBytes());
              if (before.kind == backend::MatRef::Kind::kAffine) {
                copied(before.scales, GroupBytes(before));
                if (before.biases) copied(before.biases, GroupBytes(before));
              }
            }
          }
          relaid.emplace(key, m);
        } else {
          m = it->second;
        }
      },
      [](backend::Tensor&) {});
  return out;
}

}  // namespace pensieve::model
