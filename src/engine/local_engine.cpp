#include "engine/local_engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "engine/sampler.h"
#include "engine/sequences.h"
#include "util/error.h"

namespace pensieve::engine {
namespace {

using Clock = std::chrono::steady_clock;

struct Sequence {
  uint64_t id = 0;
  GenerateRequest req;
  Sink sink;
  std::unique_ptr<Sampler> sampler;
  int kv = -1;              // model sequence, -1 until admitted
  size_t prefilled = 0;     // prompt tokens already in the KV cache
  int max_new = 0;          // clamped max_tokens
  int generated = 0;
  int32_t next_token = -1;  // sampled and reported, not yet fed to the model
  std::vector<int32_t> fed;  // generated tokens fed to the model: the KV holds prompt[0, prefilled) + fed
  int cached = 0;           // prompt tokens whose KV was forked from another sequence
  int64_t reserved_blocks = 0;
  bool cancel = false;
  bool done = false;
  bool stop_sampled = false;  // ended by a stop token it generated (not by a complete constrained output)
  TokenOut out;
  std::vector<uint8_t> mask;  // constrained decoding: allowed tokens (vocab), built only when needed
  std::optional<int32_t> forced;  // this step's token decided by the constraint, not sampled
  int sample = -1;                // this step's sample row
};

// A finished sequence whose KV is kept so later prompts sharing its prefix skip that part of the prefill.
struct CacheEntry {
  int kv = -1;
  std::vector<int32_t> tokens;  // what its KV holds
  int64_t blocks = 0;           // its block-table size
  uint64_t last_used = 0;
};

// Length of the common prefix of a and (b1 then b2).
size_t CommonPrefix(std::span<const int32_t> a, std::span<const int32_t> b1, std::span<const int32_t> b2 = {}) {
  size_t n = 0;
  while (n < a.size() && n < b1.size() && a[n] == b1[n]) ++n;
  if (n < b1.size() || n >= a.size()) return n;
  size_t m = 0;
  while (n + m < a.size() && m < b2.size() && a[n + m] == b2[m]) ++m;
  return n + m;
}

// Smooths per-step rates so Stats() reports a recent average rather than the last step's noise.
void Smooth(double& avg, double sample) { avg = avg == 0 ? sample : 0.8 * avg + 0.2 * sample; }

class LocalEngine final : public Engine {
 public:
  LocalEngine(std::unique_ptr<model::Model> model, EngineOptions opts, std::unique_ptr<backend::Backend> backend)
      : backend_(std::move(backend)), model_(std::move(model)), opts_(opts) {
    Require(model_ != nullptr, "engine: no model");
    seqs_ = std::make_unique<Sequences>(*model_);
    Require(opts_.max_queue >= 0, "engine: max_queue must be >= 0");
    Require(opts_.max_running >= 1, "engine: max_running must be >= 1");
    Require(opts_.prefill_chunk >= 1, "engine: prefill_chunk must be >= 1");
    Require(opts_.prefix_cache_entries >= 0, "engine: prefix_cache_entries must be >= 0");
    const KvBlockManager& kv = seqs_->blocks();
    max_live_ = kv.config().max_sequences;
    opts_.max_running = std::min(opts_.max_running, max_live_);
    opts_.prefix_cache_entries = std::min(opts_.prefix_cache_entries, max_live_ - opts_.max_running);
    vocab_ = static_cast<int>(model_->config().vocab_size);
    context_ = static_cast<int>(model_->max_context());
    block_tokens_ = kv.block_tokens();
    total_blocks_ = kv.total_blocks();
    // One item per running sequence and step (a decode token or a prompt chunk), one sample per item at most.
    items_.reserve(opts_.max_running);
    item_seq_.reserve(opts_.max_running);
    samples_.reserve(opts_.max_running);
    results_.resize(opts_.max_running);
    prefill_order_.reserve(opts_.max_running);
    stats_.kv_blocks_total = static_cast<size_t>(total_blocks_);
    if (opts_.warm_up) WarmUp();
    thread_ = std::thread([this] { Run(); });
  }

  void WarmUp() {
    const int64_t n = std::min<int64_t>({opts_.prefill_chunk, int64_t{context_} - 1, total_blocks_ * block_tokens_ - 1});
    if (n < 1) return;
    const int s = seqs_->New();
    const std::vector<int32_t> prompt(n, 0);
    const int32_t next = seqs_->GreedyStep(s, prompt);
    seqs_->GreedyStep(s, std::span(&next, 1));
    seqs_->Free(s);
  }

  ~LocalEngine() override {
    Shutdown();
    if (thread_.joinable()) thread_.join();
  }

  uint64_t Submit(GenerateRequest request, Sink sink) override {
    const int64_t n = static_cast<int64_t>(request.prompt.size());
    RequireValid(n > 0, "request: the prompt is empty");
    for (size_t i = 0; i < request.prompt.size(); ++i) {
      int32_t t = request.prompt[i];
      RequireValid(t >= 0 && t < vocab_, "request: prompt token " + std::to_string(i) + " has id " +
                                             std::to_string(t) + ", outside the vocabulary of " +
                                             std::to_string(vocab_));
    }
    RequireValid(request.max_tokens >= 0, "request: max_tokens must be >= 0");
    RequireValid(n <= context_, "prompt is too long: " + std::to_string(n) + " tokens > " +
                                    std::to_string(context_) + " maximum");
    const int64_t pool_tokens = total_blocks_ * block_tokens_;
    RequireValid(n <= pool_tokens, "prompt is too long for the KV cache: " + std::to_string(n) + " tokens > " +
                                       std::to_string(pool_tokens) + " the pool holds");
    auto seq = std::make_unique<Sequence>();
    seq->max_new = static_cast<int>(
        std::min<int64_t>({request.max_tokens, int64_t{context_} - n, pool_tokens - n}));
    seq->reserved_blocks = (n + seq->max_new + block_tokens_ - 1) / block_tokens_;
    seq->fed.reserve(seq->max_new);
    seq->sampler = std::make_unique<Sampler>(request.sampling, vocab_, std::max(seq->max_new, 1));  // validates
    seq->sampler->AcceptPrompt(request.prompt);
    seq->req = std::move(request);
    seq->sink = std::move(sink);
    uint64_t id;
    {
      std::lock_guard lk(mu_);
      Require(!stopping_, "engine: shut down, not accepting requests");
      if (static_cast<int>(waiting_.size()) >= opts_.max_queue) {
        throw QueueFull("engine: queue full (" + std::to_string(waiting_.size()) + " requests waiting)");
      }
      id = seq->id = next_id_++;
      waiting_.push_back(std::move(seq));
      stats_.queued = static_cast<int>(waiting_.size());
    }
    cv_.notify_one();
    return id;
  }

  void Cancel(uint64_t id) override {
    {
      std::lock_guard lk(mu_);
      cancels_.insert(id);
    }
    cv_.notify_one();
  }

  EngineStats Stats() const override {
    std::lock_guard lk(mu_);
    return stats_;
  }

  int context_length() const override { return context_; }
  int vocab_size() const override { return vocab_; }

  void Shutdown() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // From a sink callback (the engine thread) we cannot join ourselves; the destructor does.
    if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
  }

 private:
  // The scheduler loop. Sinks are always called without mu_ held, so they may call Cancel()/Submit().
  void Run() {
    for (;;) {
      std::vector<std::unique_ptr<Sequence>> dropped;  // cancelled while waiting
      bool stopping;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !cancels_.empty() || !running_.empty() || !waiting_.empty(); });
        stopping = stopping_;
        if (stopping) {
          for (auto& s : waiting_) dropped.push_back(std::move(s));
          waiting_.clear();
          for (auto& s : running_) s->cancel = true;
        }
        for (uint64_t id : cancels_) {
          auto w = std::find_if(waiting_.begin(), waiting_.end(), [&](auto& s) { return s->id == id; });
          if (w != waiting_.end()) {
            dropped.push_back(std::move(*w));
            waiting_.erase(w);
            continue;
          }
          for (auto& s : running_) {
            if (s->id == id) s->cancel = true;
          }
        }
        cancels_.clear();
        Admit();
        stats_.queued = static_cast<int>(waiting_.size());
      }
      for (auto& s : dropped) End(*s, FinishReason::kCancelled);
      for (auto& s : running_) {
        if (s->cancel && !s->done) End(*s, FinishReason::kCancelled);
      }
      Reap();
      if (stopping && running_.empty()) break;
      Step();
      Reap();
    }
    while (!cache_.empty()) Evict(static_cast<int>(cache_.size()) - 1);
    std::lock_guard lk(mu_);
    stats_.running = 0;
    stats_.queued = 0;
    stats_.kv_blocks_cached = 0;
    stats_.kv_blocks_used = static_cast<size_t>(total_blocks_ - seqs_->blocks().free_blocks());
  }

  // Moves waiting requests into running_ in FIFO order while a slot and their KV are available.
  // Called with mu_ held (engine thread).
  //
  // KV accounting: a running sequence may still allocate FutureBlocks() blocks (up to its whole prompt +
  // max_new, plus one copy-on-write when its last, partly filled block is shared). A request is admitted only
  // when the free blocks cover every running sequence's future need plus its own, so no running sequence
  // ever finds the pool empty. Blocks shared with the sequence it forks from are not counted again, so a
  // long cached prefix (an agent's system prompt) stays shared while a large max_tokens is reserved.
  // Prefix-cache entries hold blocks but never grow; they are evicted, least recently used first, when the
  // free blocks fall short.
  void Admit() {
    const KvBlockManager& kv = seqs_->blocks();
    while (!waiting_.empty() && static_cast<int>(running_.size()) < opts_.max_running) {
      Sequence& head = *waiting_.front();
      // The longest reusable prefix, from a cache entry or a running sequence. At least the last prompt token
      // is always computed: its logits give the first generated token.
      const std::span<const int32_t> prompt = head.req.prompt;
      const size_t usable = prompt.size() - 1;
      size_t best_n = 0;
      int best_entry = -1;
      Sequence* best_running = nullptr;
      if (opts_.prefix_cache_entries > 0) {
        for (size_t i = 0; i < cache_.size(); ++i) {
          size_t n = std::min(usable, CommonPrefix(prompt, cache_[i].tokens));
          if (n > best_n) best_n = n, best_entry = static_cast<int>(i), best_running = nullptr;
        }
        for (auto& r : running_) {
          if (r->done) continue;
          std::span<const int32_t> done_prompt(r->req.prompt.data(), r->prefilled);
          size_t n = std::min(usable, CommonPrefix(prompt, done_prompt, r->fed));
          if (n > best_n) best_n = n, best_entry = -1, best_running = r.get();
        }
      }
      auto need = [&] {
        int64_t n = head.reserved_blocks - static_cast<int64_t>(best_n) / block_tokens_;
        // Forking into the running source's partly filled last block makes the source copy it later.
        if (best_running && best_n % block_tokens_ != 0) {
          int64_t len = kv.Length(best_running->kv);
          if (len % block_tokens_ != 0 && (len - 1) / block_tokens_ == static_cast<int64_t>(best_n - 1) / block_tokens_)
            ++n;
        }
        return n;
      };
      int64_t committed = 0;
      for (auto& r : running_) {
        if (!r->done) committed += FutureBlocks(*r);
      }
      while (kv.free_blocks() < committed + need() && !cache_.empty()) {
        int victim = LeastRecentlyUsed(best_entry);
        if (victim == best_entry) best_n = 0, best_entry = -1;  // only the source is left
        Evict(victim);
        if (best_entry > victim) --best_entry;
      }
      if (kv.free_blocks() < committed + need()) break;  // FIFO: no overtaking; wait for blocks
      auto seq = std::move(waiting_.front());
      waiting_.pop_front();
      if (best_n > 0) {
        seq->kv = seqs_->Fork(best_running ? best_running->kv : cache_[best_entry].kv, static_cast<int64_t>(best_n));
        seq->prefilled = best_n;
        seq->cached = static_cast<int>(best_n);
        if (best_entry >= 0) cache_[best_entry].last_used = ++use_clock_;
      } else {
        seq->kv = seqs_->New();
      }
      running_.push_back(std::move(seq));
    }
  }

  // Blocks a running sequence may still take from the pool.
  int64_t FutureBlocks(const Sequence& s) const {
    const KvBlockManager& kv = seqs_->blocks();
    std::span<const int32_t> table = kv.BlockTable(s.kv);
    const int64_t len = kv.Length(s.kv);
    const bool cow = len % block_tokens_ != 0 && !table.empty() && kv.RefCount(table.back()) > 1;
    return std::max<int64_t>(0, s.reserved_blocks - static_cast<int64_t>(table.size())) + (cow ? 1 : 0);
  }

  // The least recently used cache entry, preferring any other than `keep`.
  int LeastRecentlyUsed(int keep) const {
    int victim = -1;
    for (size_t i = 0; i < cache_.size(); ++i) {
      if (static_cast<int>(i) == keep && cache_.size() > 1) continue;
      if (victim < 0 || cache_[i].last_used < cache_[victim].last_used) victim = static_cast<int>(i);
    }
    return victim;
  }

  void Evict(int i) {
    seqs_->Free(cache_[i].kv);
    cached_blocks_ -= cache_[i].blocks;
    cache_.erase(cache_.begin() + i);
  }

  // Keeps a finished sequence's KV as a cache entry (engine thread). Entries whose tokens are a prefix of the
  // new one are redundant: it shares their blocks and answers every prefix they could.
  void KeepForReuse(Sequence& s) {
    CacheEntry e;
    e.kv = s.kv;
    e.tokens.assign(s.req.prompt.begin(), s.req.prompt.begin() + s.prefilled);
    e.tokens.insert(e.tokens.end(), s.fed.begin(), s.fed.end());
    e.blocks = (static_cast<int64_t>(e.tokens.size()) + block_tokens_ - 1) / block_tokens_;
    e.last_used = ++use_clock_;
    for (size_t i = cache_.size(); i-- > 0;) {
      if (CommonPrefix(e.tokens, cache_[i].tokens) == cache_[i].tokens.size()) Evict(static_cast<int>(i));
    }
    cached_blocks_ += e.blocks;
    cache_.push_back(std::move(e));
    while (static_cast<int>(cache_.size()) > opts_.prefix_cache_entries) Evict(LeastRecentlyUsed(-1));
  }

  // Whether s draws its next token in this step (false when it ended: its constraint failed). Sets s.forced
  // when the constraint decides the token (markup, closing brackets: no choice to sample).
  bool WillSample(Sequence& s) {
    s.forced.reset();
    s.sample = -1;
    if (TokenConstraint* c = s.req.constraint.get()) {
      try {
        s.forced = c->Plan(s.max_new - s.generated);
      } catch (const std::exception& e) {
        End(s, FinishReason::kError, std::string("sampling failed: ") + e.what());
        return false;
      }
    }
    return true;
  }

  // Adds one item; a sequence that draws from it gets its logits and, unless forced, a sample row.
  void AddItem(Sequence& s, std::span<const int32_t> tokens, bool draws) {
    model::Logits logits = model::Logits::kNone;
    if (draws && !s.forced) {
      logits = model::Logits::kLast;
      backend::SampleRow row;
      row.logits_row = logit_rows_++;
      s.sampler->Prepare(&row);
      s.sample = static_cast<int>(samples_.size());
      samples_.push_back(row);
    }
    items_.push_back({s.kv, tokens, logits});
    item_seq_.push_back(&s);
  }

  // One batched forward step over all running sequences.
  void Step() {
    items_.clear();
    item_seq_.clear();
    samples_.clear();
    logit_rows_ = 0;
    int64_t decode_tokens = 0, prefill_tokens = 0;
    for (auto& s : running_) {
      if (s->done) continue;
      if (s->max_new == 0) {
        End(*s, FinishReason::kLength);
        continue;
      }
      if (s->prefilled == s->req.prompt.size() && s->next_token >= 0) {
        if (!WillSample(*s)) continue;
        AddItem(*s, std::span<const int32_t>(&s->next_token, 1), true);
        s->fed.push_back(s->next_token);
        ++decode_tokens;
      }
    }
    // Prompt chunks, shortest remaining prompt first: a short request is not stuck behind a long prefill (it
    // gets its first token after its own few chunks). The oldest prefilling sequence (running_ is in admission
    // order) is still guaranteed a quarter of every step's budget, so a stream of short requests cannot starve it.
    prefill_order_.clear();
    for (auto& s : running_)
      if (!s->done && s->prefilled < s->req.prompt.size()) prefill_order_.push_back(s.get());
    if (!prefill_order_.empty()) {
      Sequence* oldest = prefill_order_.front();
      const auto remaining = [](const Sequence* s) { return s->req.prompt.size() - s->prefilled; };
      for (size_t i = 1; i < prefill_order_.size(); ++i)  // stable insertion sort: few entries, no allocation
        for (size_t j = i; j > 0 && remaining(prefill_order_[j]) < remaining(prefill_order_[j - 1]); --j)
          std::swap(prefill_order_[j], prefill_order_[j - 1]);
      const int64_t reserved = prefill_order_.front() == oldest
                                   ? 0
                                   : std::min<int64_t>(static_cast<int64_t>(remaining(oldest)), opts_.prefill_chunk / 4);
      int64_t budget = opts_.prefill_chunk - reserved;
      for (Sequence* s : prefill_order_) {
        int64_t allowance = s == oldest ? budget + reserved : budget;
        if (allowance <= 0) continue;
        const size_t n = std::min<size_t>(remaining(s), static_cast<size_t>(allowance));
        const bool completes = n == remaining(s);
        if (completes && !WillSample(*s)) continue;
        AddItem(*s, std::span<const int32_t>(s->req.prompt.data() + s->prefilled, n), completes);
        if (s == oldest) {
          const int64_t from_reserved = std::min<int64_t>(static_cast<int64_t>(n), reserved);
          budget -= static_cast<int64_t>(n) - from_reserved;
        } else {
          budget -= static_cast<int64_t>(n);
        }
        prefill_tokens += static_cast<int64_t>(n);
      }
    }
    if (items_.empty()) return;

    const auto t0 = Clock::now();
    try {
      seqs_->Forward(items_, samples_, results_);
    } catch (const std::exception& e) {
      for (Sequence* s : item_seq_) {
        if (!s->done) End(*s, FinishReason::kError, std::string("forward step failed: ") + e.what());
      }
      return;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();

    for (size_t i = 0; i < items_.size(); ++i) {
      Sequence& s = *item_seq_[i];
      const bool prefill = s.prefilled < s.req.prompt.size();
      if (prefill) {
        s.prefilled += items_[i].tokens.size();
        const int total = static_cast<int>(s.req.prompt.size());
        if (s.sink.on_prefill_progress && !CallSafely([&] { s.sink.on_prefill_progress(int(s.prefilled), total); })) {
          End(s, FinishReason::kCancelled);
          continue;
        }
        if (s.prefilled < s.req.prompt.size()) continue;
      }
      if (!s.done) Report(s);
    }

    std::lock_guard lk(mu_);
    stats_.prompt_tokens_total += prefill_tokens;
    if (secs > 0 && prefill_tokens > 0) Smooth(stats_.prefill_tokens_per_s, prefill_tokens / secs);
    if (secs > 0 && decode_tokens > 0) Smooth(stats_.decode_tokens_per_s, decode_tokens / secs);
  }

  // Takes the step's token for s (forced, drawn, or drawn again under the constraint's mask) and reports it.
  void Report(Sequence& s) {
    int32_t token;
    TokenConstraint* c = s.req.constraint.get();
    try {
      if (s.forced) {
        token = *s.forced;
        s.out.id = token;
        s.out.logprob = 0.0f;
        s.out.top.clear();
      } else {
        const backend::SampleResult& r = results_[s.sample];
        token = r.id;
        if (c && !c->Allows(token)) {
          // Only now pay for the full mask (see constraint.h: this samples the masked distribution).
          s.mask.resize(vocab_);
          c->Mask(s.mask);
          backend::SampleRow row;
          row.logits_row = samples_[s.sample].logits_row;
          s.sampler->Prepare(&row, s.mask);
          backend::SampleResult again;
          model_->Resample(row, &again);
          token = again.id;
          Sampler::ToTokenOut(again, &s.out);
          if (!c->Allows(token)) throw Error("constrained decoding: no token can continue the output");
        } else {
          Sampler::ToTokenOut(r, &s.out);
        }
      }
      if (c) c->Accept(token);
    } catch (const std::exception& e) {
      End(s, FinishReason::kError, std::string("sampling failed: ") + e.what());
      return;
    }
    s.sampler->Accept(token);
    const auto& stops = s.req.stop_tokens;
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
      s.stop_sampled = true;
      End(s, FinishReason::kStopToken);
      return;
    }
    ++s.generated;
    {
      std::lock_guard lk(mu_);
      ++stats_.generated_tokens_total;
    }
    bool keep = true;
    if (s.sink.on_token && !CallSafely([&] { keep = s.sink.on_token(s.out); })) keep = false;
    if (!keep || s.cancel) {
      End(s, FinishReason::kCancelled);
    } else if (c && c->Complete()) {
      End(s, FinishReason::kStopToken);  // the constrained output is whole: the stop token is implied
    } else if (s.generated >= s.max_new) {
      End(s, FinishReason::kLength);
    } else {
      s.next_token = token;
    }
  }

  // Runs a sink callback; a throwing sink is treated as a disconnected client.
  template <typename F>
  static bool CallSafely(F&& f) {
    try {
      f();
      return true;
    } catch (...) {
      return false;
    }
  }

  // Frees the sequence's KV blocks, then reports on_finish exactly once.
  void End(Sequence& s, FinishReason reason, std::string error = "") {
    if (s.done) return;
    s.done = true;
    if (s.kv >= 0) {
      // An errored sequence's KV may be partly written: never reuse it.
      if (opts_.prefix_cache_entries > 0 && reason != FinishReason::kError && s.prefilled > 0) {
        KeepForReuse(s);
      } else {
        seqs_->Free(s.kv);
      }
      s.kv = -1;
      std::lock_guard lk(mu_);
      stats_.kv_blocks_used = static_cast<size_t>(total_blocks_ - seqs_->blocks().free_blocks());
      stats_.kv_blocks_cached = static_cast<size_t>(cached_blocks_);
    }
    engine::Finish f;
    f.reason = reason;
    f.prompt_tokens = static_cast<int>(s.req.prompt.size());
    f.cached_prompt_tokens = s.cached;
    f.generated_tokens = s.generated;
    f.stop_token = s.stop_sampled;
    f.error = std::move(error);
    if (s.sink.on_finish) CallSafely([&] { s.sink.on_finish(f); });
    s.sink = Sink();  // never touched again
  }

  // Drops finished sequences and publishes the counters.
  void Reap() {
    running_.erase(std::remove_if(running_.begin(), running_.end(), [](auto& s) { return s->done; }),
                   running_.end());
    std::lock_guard lk(mu_);
    stats_.running = static_cast<int>(running_.size());
    stats_.kv_blocks_used = static_cast<size_t>(total_blocks_ - seqs_->blocks().free_blocks());
    stats_.kv_blocks_cached = static_cast<size_t>(cached_blocks_);
  }

  std::unique_ptr<backend::Backend> backend_;  // declared first: outlives the model
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<Sequences> seqs_;
  EngineOptions opts_;
  int vocab_ = 0;
  int context_ = 0;
  int64_t block_tokens_ = 0;
  int64_t total_blocks_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_;  // guarded by mu_
  std::unordered_set<uint64_t> cancels_;           // guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  uint64_t next_id_ = 1;                           // guarded by mu_
  EngineStats stats_;                              // guarded by mu_

  // Engine thread only (Admit runs there too, under mu_).
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<CacheEntry> cache_;
  int64_t cached_blocks_ = 0;
  uint64_t use_clock_ = 0;
  int max_live_ = 0;
  std::vector<Sequences::Item> items_;
  std::vector<Sequence*> item_seq_;
  std::vector<Sequence*> prefill_order_;  // prefilling sequences of one step, shortest remaining first
  std::vector<backend::SampleRow> samples_;   // this step's draws, one per sampling item
  std::vector<backend::SampleResult> results_;
  int64_t logit_rows_ = 0;                    // logit rows of this step's items so far

  std::thread thread_;  // last: starts after everything above is constructed
};

}  // namespace

std::unique_ptr<Engine> StartLocalEngine(std::unique_ptr<model::Model> model, EngineOptions options,
                                         std::unique_ptr<backend::Backend> backend) {
  return std::make_unique<LocalEngine>(std::move(model), options, std::move(backend));
}

}  // namespace pensieve::engine
