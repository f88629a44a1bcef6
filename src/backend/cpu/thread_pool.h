#pragma once
// Persistent worker threads for data-parallel ops. Run() hands out task indices [0, tasks) to the workers
// and the calling thread, and returns when all tasks are done. Threads are created once (constructor); a
// Run() allocates nothing.
//
// Tasks are claimed from one atomic word holding (job generation << 32 | next index), so a worker that wakes
// late can never run a task of a job that has moved on, and the caller waits for *tasks*, not for workers:
// on an oversubscribed machine (2 cores shared by a team) a descheduled worker simply gets no tasks instead
// of stalling every op. Workers spin briefly for the next job (decode issues ~100 short jobs per token, and
// a condition-variable wake-up per job costs more than the job), then sleep.
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
  // Jobs alternate between two slots: slot g % 2 is rewritten only for job g + 2, which cannot be published
  // before every task of job g has finished.
  struct Job {
    std::atomic<Trampoline> call{nullptr};
    std::atomic<const void*> fn{nullptr};
    std::atomic<int64_t> tasks{0};
    std::atomic<int64_t> done{0};
  };
  void RunImpl(int64_t tasks, Trampoline call, const void* fn);
  void Work(int thread);
  void Drain(uint64_t generation, int thread);

  std::vector<std::thread> workers_;
  Job jobs_[2];
  std::atomic<uint64_t> claim_{0};       // (generation << 32) | next task index
  std::atomic<uint64_t> generation_{0};  // latest published job
  uint64_t last_generation_ = 0;         // owner thread only
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace pensieve::backend::cpu
