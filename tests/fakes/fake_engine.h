#pragma once
// Test fake of engine::Engine: scripted token streams on one engine thread, with the real contract's
// behaviour (the real request checks -> BadRequest, queue limit -> QueueFull, `slots` sequences decoding at once, prefill progress, max_tokens,
// stop tokens not reported, on_token false -> kCancelled, Cancel() within one step, Shutdown()).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

#include "engine/engine.h"
#include "engine/sampler.h"

namespace pensieve::test {

struct FakeScript {
  std::vector<int32_t> tokens;  // what the "model" generates (may contain a stop token)
  int prefill_ms = 0;           // delay before the first token
  int token_ms = 1;             // delay between tokens
  bool fail_after_tokens = false;  // finish with kError after the tokens
  int cached_prompt_tokens = 0;
};

class FakeEngine : public engine::Engine {
 public:
  using Scripter = std::function<FakeScript(const engine::GenerateRequest&)>;

  FakeEngine(Scripter scripter, int context_length = 4096, int slots = 4, int max_queue = 64)
      : scripter_(std::move(scripter)), ctx_(context_length), slots_(slots), max_queue_(max_queue) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeEngine() override { Shutdown(); }

  uint64_t Submit(engine::GenerateRequest request, engine::Sink sink) override {
    engine::RequireValid(!request.prompt.empty(), "request: the prompt is empty");
    engine::Sampler(request.sampling, vocab_size(), 1);  // the real engine's sampling-parameter checks
    std::lock_guard lock(mu_);
    if (stop_) throw engine::QueueFull("engine is shut down");
    if (static_cast<int>(waiting_.size()) >= max_queue_) throw engine::QueueFull("queue full (" + std::to_string(max_queue_) + " waiting)");
    Seq s;
    s.id = ++next_id_;
    s.script = scripter_(request);
    s.request = std::move(request);
    s.sink = std::move(sink);
    waiting_.push_back(std::move(s));
    ++submitted_;
    cv_.notify_all();
    return next_id_;
  }
  void Cancel(uint64_t id) override {
    std::lock_guard lock(mu_);
    cancelled_.push_back(id);
    cv_.notify_all();
  }
  engine::EngineStats Stats() const override {
    std::lock_guard lock(mu_);
    engine::EngineStats s;
    s.running = static_cast<int>(running_.size());
    s.queued = static_cast<int>(waiting_.size());
    s.generated_tokens_total = generated_;
    return s;
  }
  int context_length() const override { return ctx_; }
  int vocab_size() const override { return 265; }
  void Shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      stop_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }
  // Test introspection.
  int finished_count() const { std::lock_guard lock(mu_); return finished_; }
  int cancelled_count() const { std::lock_guard lock(mu_); return cancelled_finishes_; }
  int running_count() const { std::lock_guard lock(mu_); return static_cast<int>(running_.size() + waiting_.size()); }
  int submitted_count() const { std::lock_guard lock(mu_); return submitted_; }
  engine::GenerateRequest last_request() const { std::lock_guard lock(mu_); return last_request_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Seq {
    uint64_t id = 0;
    engine::GenerateRequest request;
    engine::Sink sink;
    FakeScript script;
    size_t pos = 0;
    int generated = 0;
    bool prefilled = false;
    Clock::time_point next;
  };

  void FinishSeq(Seq& s, engine::FinishReason reason) {
    engine::Finish f;
    f.reason = reason;
    f.prompt_tokens = static_cast<int>(s.request.prompt.size());
    f.cached_prompt_tokens = s.script.cached_prompt_tokens;
    f.generated_tokens = s.generated;
    f.stop_token = reason == engine::FinishReason::kStopToken;  // the script's stop token, as a model's
    if (reason == engine::FinishReason::kError) f.error = "injected failure";
    s.sink.on_finish(f);
    std::lock_guard lock(mu_);
    ++finished_;
    if (reason == engine::FinishReason::kCancelled) ++cancelled_finishes_;
  }

  void Loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (stop_) {
        auto all = std::move(running_);
        for (auto& s : waiting_) all.push_back(std::move(s));
        waiting_.clear();
        lock.unlock();
        for (auto& s : all) FinishSeq(s, engine::FinishReason::kCancelled);
        return;
      }
      while (static_cast<int>(running_.size()) < slots_ && !waiting_.empty()) {
        Seq s = std::move(waiting_.front());
        waiting_.pop_front();
        s.next = Clock::now() + std::chrono::milliseconds(s.script.prefill_ms);
        last_request_ = s.request;
        running_.push_back(std::move(s));
      }
      auto cancelled = std::move(cancelled_);
      cancelled_.clear();
      // Cancelled waiting sequences finish at once.
      std::vector<Seq> done;
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (std::find(cancelled.begin(), cancelled.end(), it->id) != cancelled.end()) {
          done.push_back(std::move(*it));
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      std::vector<std::pair<Seq, engine::FinishReason>> finishing;
      for (auto& s : done) finishing.emplace_back(std::move(s), engine::FinishReason::kCancelled);
      auto now = Clock::now();
      Clock::time_point wake = now + std::chrono::milliseconds(50);
      std::vector<Seq*> due;
      for (auto it = running_.begin(); it != running_.end();) {
        if (std::find(cancelled.begin(), cancelled.end(), it->id) != cancelled.end()) {
          finishing.emplace_back(std::move(*it), engine::FinishReason::kCancelled);
          it = running_.erase(it);
          continue;
        }
        if (it->next <= now) due.push_back(&*it);
        else wake = std::min(wake, it->next);
        ++it;
      }
      // Emit one token per due sequence, outside the lock (sinks may call Cancel()).
      lock.unlock();
      for (auto& [s, r] : finishing) FinishSeq(s, r);
      std::vector<std::pair<uint64_t, engine::FinishReason>> ended;
      for (Seq* s : due) {
        if (!s->prefilled) {
          s->prefilled = true;
          int n = static_cast<int>(s->request.prompt.size());
          if (s->sink.on_prefill_progress) s->sink.on_prefill_progress(n, n);
        }
        if (s->generated >= s->request.max_tokens) {
          ended.emplace_back(s->id, engine::FinishReason::kLength);
          continue;
        }
        if (s->pos >= s->script.tokens.size()) {
          ended.emplace_back(s->id, s->script.fail_after_tokens ? engine::FinishReason::kError : engine::FinishReason::kLength);
          continue;
        }
        int32_t tok = s->script.tokens[s->pos++];
        if (std::find(s->request.stop_tokens.begin(), s->request.stop_tokens.end(), tok) != s->request.stop_tokens.end()) {
          ended.emplace_back(s->id, engine::FinishReason::kStopToken);
          continue;
        }
        ++s->generated;
        engine::TokenOut out;
        out.id = tok;
        out.logprob = -0.5f;
        for (int k = 0; k < s->request.sampling.top_logprobs; ++k) out.top.emplace_back(tok, -0.5f - k);
        bool go_on = s->sink.on_token(out);
        s->next = Clock::now() + std::chrono::milliseconds(s->script.token_ms);
        if (!go_on) ended.emplace_back(s->id, engine::FinishReason::kCancelled);
      }
      lock.lock();
      generated_ += due.size();
      std::vector<std::pair<Seq, engine::FinishReason>> to_finish;
      for (auto& [id, reason] : ended) {
        for (auto it = running_.begin(); it != running_.end(); ++it) {
          if (it->id == id) {
            to_finish.emplace_back(std::move(*it), reason);
            running_.erase(it);
            break;
          }
        }
      }
      if (!to_finish.empty()) {
        lock.unlock();
        for (auto& [s, r] : to_finish) FinishSeq(s, r);
        lock.lock();
        continue;
      }
      if (!due.empty()) continue;
      for (auto& s : running_) wake = std::min(wake, s.next);
      cv_.wait_until(lock, wake, [&] { return stop_ || !cancelled_.empty() || (!waiting_.empty() && static_cast<int>(running_.size()) < slots_); });
    }
  }

  Scripter scripter_;
  int ctx_, slots_, max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Seq> waiting_;
  std::list<Seq> running_;
  std::vector<uint64_t> cancelled_;
  uint64_t next_id_ = 0;
  uint64_t generated_ = 0;
  int finished_ = 0, cancelled_finishes_ = 0, submitted_ = 0;
  engine::GenerateRequest last_request_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace pensieve::test
