#include "backend/cpu/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PENSIEVE_PAUSE() _mm_pause()
#else
#define PENSIEVE_PAUSE() std::this_thread::yield()
#endif

namespace pensieve::backend::cpu {
namespace {
// ~20-50 us of spinning: covers the gap between consecutive ops of a decode step.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  threads = std::max(1, threads);
  workers_.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { Work(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::Drain(uint64_t generation, int thread) {
  Job& job = jobs_[generation & 1];
  for (;;) {
    uint64_t c = claim_.load(std::memory_order_acquire);
    if ((c >> 32) != (generation & 0xffffffffu)) return;  // a newer job: ours is fully claimed
    const int64_t index = static_cast<int64_t>(c & 0xffffffffu);
    if (index >= job.tasks.load(std::memory_order_relaxed)) return;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
    // Claimed: job `generation` cannot finish (so its slot cannot be reused) before our task is done.
    job.call.load(std::memory_order_relaxed)(job.fn.load(std::memory_order_relaxed), index, thread);
    job.done.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::RunImpl(int64_t tasks, Trampoline call, const void* fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (int64_t t = 0; t < tasks; ++t) call(fn, t, 0);
    return;
  }
  const uint64_t g = ++last_generation_;
  Job& job = jobs_[g & 1];
  job.call.store(call, std::memory_order_relaxed);
  job.fn.store(fn, std::memory_order_relaxed);
  job.tasks.store(tasks, std::memory_order_relaxed);
  job.done.store(0, std::memory_order_relaxed);
  claim_.store((g & 0xffffffffu) << 32, std::memory_order_release);
  generation_.store(g, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_all();
  }
  Drain(g, 0);
  for (int i = 0; job.done.load(std::memory_order_acquire) < tasks; ++i) {
    if (i < kSpinIterations) {
      PENSIEVE_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::Work(int thread) {
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0; i < kSpinIterations && generation_.load(std::memory_order_acquire) == seen; ++i)
      PENSIEVE_PAUSE();
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    Drain(seen, thread);
  }
}

}  // namespace pensieve::backend::cpu
