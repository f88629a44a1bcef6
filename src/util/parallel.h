#pragma once
// Splitting independent rows over the machine's cores, for the CPU-bound offline tools (writing random models,
// quantizing). Inference has its own persistent pool (backend/cpu/thread_pool.h).
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace pensieve {

// Calls fn(begin, end) for contiguous ranges covering [0, n), on up to hardware_concurrency threads (the caller
// runs the first range); ranges hold at least min_per_thread items. fn must be safe to run concurrently.
template <class F>
void ParallelRanges(int64_t n, int64_t min_per_thread, const F& fn) {
  const int64_t hw = std::max(1u, std::thread::hardware_concurrency());
  const int64_t parts = std::clamp<int64_t>(n / std::max<int64_t>(min_per_thread, 1), 1, hw);
  std::vector<std::thread> threads;
  for (int64_t p = 1; p < parts; ++p) threads.emplace_back([&, p] { fn(n * p / parts, n * (p + 1) / parts); });
  if (n > 0) fn(0, n / parts);
  for (auto& t : threads) t.join();
}

}  // namespace pensieve
