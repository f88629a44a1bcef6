#pragma once
// Persistent worker threads for data-parallel ops. Run() hands out task indices [0, tasks) to the workers
// and the calling thread, and returns when all are done. Threads are created once (constructor); a Run()
// allocates nothing. Workers spin briefly for the next job (decode issues ~100 short jobs per token, and a
// condition-variable wake-up per job would cost more than the job), then sleep.
// Not reentrant: one Run() at a time, from the owner's thread.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace pensieve::backend::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // total threads including the caller; at least 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(task, thread) for every task in [0, tasks); thread in [0, size()) is unique among concurrent
  // calls (use it to index per-thread scratch).
  template <class F>
  void Run(int64_t tasks, const F& fn) {
    RunImpl(tasks, [](const void* f, int64_t task, int thread) { (*static_cast<const F*>(f))(task, thread); },
            &fn);
  }

 private:
  using Trampoline = void (*)(const void*, int64_t, int);
  void RunImpl(int64_t tasks, Trampoline call, const void* fn);
  void Work(int thread);
  void Drain(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> busy_{0};
  std::atomic<bool> stop_{false};
  int64_t tasks_ = 0;
  Trampoline call_ = nullptr;
  const void* fn_ = nullptr;
};

}  // namespace pensieve::backend::cpu
