// The engine service on a real model (stories260K): greedy tokens equal the independent NumPy reference
// (shared/data/models/stories260K/stories260K.expected.json) alone and under concurrency, cancellation frees KV
// blocks, queue limits, stop tokens, context clamping, shutdown.
#include "engine/local_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_backend.h"
#include "test_paths.h"

namespace pensieve::engine {
namespace {

using namespace std::chrono_literals;

struct Case {
  std::vector<int32_t> prompt;
  std::vector<int32_t> continuation;  // greedy tokens after the prompt
};

// What every test here reads (relative to the test data folder).
constexpr const char* kModel = "models/stories260K/stories260K-hf";
constexpr const char* kExpected = "models/stories260K/stories260K.expected.json";

std::vector<Case> LoadCases() {
  std::ifstream in(test::TestData(kExpected));
  nlohmann::json j = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (auto& g : j["generate"]) {
    Case c;
    c.prompt = g["prompt_tokens"].get<std::vector<int32_t>>();
    auto after_bos = g["tokens_after_bos"].get<std::vector<int32_t>>();
    // tokens_after_bos = prompt without BOS, then the greedy continuation.
    c.continuation.assign(after_bos.begin() + (c.prompt.size() - 1), after_bos.end());
    cases.push_back(c);
  }
  return cases;
}

std::unique_ptr<Engine> Start(EngineOptions opts, int64_t kv_bytes = 8 << 20, int max_sequences = 64) {
  auto backend = test::MakeTestBackend(1);
  model::LoadOptions lo;
  lo.kv_budget_bytes = kv_bytes;
  lo.max_batch_tokens = 64;
  lo.max_sequences = max_sequences;
  auto model = model::Model::Load(test::TestData(kModel), *backend, lo);
  return StartLocalEngine(std::move(model), opts, std::move(backend));
}

// Collects one request's output; Wait() blocks until on_finish.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  std::vector<std::pair<int, int>> progress;
  std::optional<Finish> finish;
  int finish_calls = 0;
  std::function<bool(int n)> on_token_hook;  // called with the count so far; false stops

  Sink MakeSink() {
    Sink s;
    s.on_prefill_progress = [this](int done, int total) {
      std::lock_guard lk(mu);
      progress.emplace_back(done, total);
    };
    s.on_token = [this](const TokenOut& t) {
      int n;
      {
        std::lock_guard lk(mu);
        tokens.push_back(t.id);
        n = static_cast<int>(tokens.size());
      }
      return on_token_hook ? on_token_hook(n) : true;
    };
    s.on_finish = [this](const Finish& f) {
      std::lock_guard lk(mu);
      finish = f;
      ++finish_calls;
      cv.notify_all();
    };
    return s;
  }
  Finish Wait() {
    std::unique_lock lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, 60s, [&] { return finish.has_value(); })) << "request never finished";
    return finish.value_or(Finish{});
  }
};

GenerateRequest Greedy(const std::vector<int32_t>& prompt, int max_tokens) {
  GenerateRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  return r;
}

int CommonPrefixForTest(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return static_cast<int>(std::min(n, a.size() - 1));
}

void WaitForIdle(Engine& e) {
  for (int i = 0; i < 2000; ++i) {
    EngineStats s = e.Stats();
    if (s.running == 0 && s.queued == 0) return;
    std::this_thread::sleep_for(1ms);
  }
  FAIL() << "engine did not go idle";
}

TEST(LocalEngineTest, GreedyMatchesReferenceOneAtATime) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  ASSERT_GE(cases.size(), 2u);
  auto engine = Start({});
  for (const Case& c : cases) {
    Collector col;
    engine->Submit(Greedy(c.prompt, static_cast<int>(c.continuation.size())), col.MakeSink());
    Finish f = col.Wait();
    EXPECT_EQ(f.reason, FinishReason::kLength);
    EXPECT_EQ(f.prompt_tokens, static_cast<int>(c.prompt.size()));
    EXPECT_EQ(f.generated_tokens, static_cast<int>(c.continuation.size()));
    EXPECT_EQ(col.tokens, c.continuation);
    EXPECT_EQ(col.finish_calls, 1);
  }
  WaitForIdle(*engine);
  // Only prefix-cache entries hold blocks now.
  EXPECT_LE(engine->Stats().kv_blocks_used, engine->Stats().kv_blocks_cached);
}

// The start-up warm-up (a prefill chunk and a decode step on a scratch sequence) leaves nothing behind: no
// blocks held, nothing offered as a cached prefix, and the same greedy tokens.
TEST(LocalEngineTest, WarmUpLeavesTheEngineAsNew) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  EngineOptions o;
  o.warm_up = true;
  o.prefill_chunk = 48;
  auto engine = Start(o);
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0u);
  Collector col;
  engine->Submit(Greedy(cases[0].prompt, static_cast<int>(cases[0].continuation.size())), col.MakeSink());
  const Finish f = col.Wait();
  EXPECT_EQ(f.cached_prompt_tokens, 0);
  EXPECT_EQ(col.tokens, cases[0].continuation);
}

TEST(LocalEngineTest, ConcurrentSequencesGiveTheSameGreedyTokens) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  EngineOptions opts;
  opts.prefill_chunk = 3;  // prefills span several steps while others decode
  opts.max_running = 8;
  auto engine = Start(opts);
  std::vector<std::unique_ptr<Collector>> cols;
  std::vector<const Case*> which;
  for (int copy = 0; copy < 3; ++copy) {
    for (const Case& c : cases) {
      cols.push_back(std::make_unique<Collector>());
      which.push_back(&c);
      engine->Submit(Greedy(c.prompt, static_cast<int>(c.continuation.size())), cols.back()->MakeSink());
    }
  }
  int reused = 0;
  for (size_t i = 0; i < cols.size(); ++i) {
    Finish f = cols[i]->Wait();
    EXPECT_EQ(f.reason, FinishReason::kLength);
    EXPECT_EQ(cols[i]->tokens, which[i]->continuation) << "request " << i;
    // Progress: chunks of 3, ending at the prompt length.
    ASSERT_FALSE(cols[i]->progress.empty());
    EXPECT_EQ(cols[i]->progress.back().first, static_cast<int>(which[i]->prompt.size()));
    int prev = f.cached_prompt_tokens;  // a reused prefix is reported done with the first chunk
    reused += f.cached_prompt_tokens > 0;
    for (auto [done, total] : cols[i]->progress) {
      EXPECT_EQ(total, static_cast<int>(which[i]->prompt.size()));
      EXPECT_GT(done - prev, 0);
      EXPECT_LE(done - prev, 3);
      prev = done;
    }
  }
  EXPECT_GT(reused, 0) << "copies of a prompt should share the running original's KV";
  WaitForIdle(*engine);
  EngineStats s = engine->Stats();
  EXPECT_LE(s.kv_blocks_used, s.kv_blocks_cached);
  EXPECT_GT(s.generated_tokens_total, 0u);
}

// A short request that arrives during a long prefill is not stuck behind it: prompt chunks go to the shortest
// remaining prompt first (the long one keeps a quarter of each step), so the short one finishes while the long
// prompt is still being prefilled, and the long one then completes with its exact greedy tokens.
TEST(LocalEngineTest, ShortRequestOvertakesLongPrefill) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  EngineOptions opts;
  opts.prefill_chunk = 16;
  auto engine = Start(opts);
  std::vector<int32_t> long_prompt;
  while (long_prompt.size() < 400) long_prompt.insert(long_prompt.end(), cases[0].prompt.begin(), cases[0].prompt.end());
  long_prompt.resize(400);
  Collector long_col, short_col;
  // The long prefill's first chunk waits until the short request is queued, so both compete from then on
  // (otherwise this tiny model could prefill all 400 tokens before the second Submit).
  std::promise<void> queued;
  std::shared_future<void> queued_f = queued.get_future().share();
  Sink long_sink = long_col.MakeSink();
  long_sink.on_prefill_progress = [inner = long_sink.on_prefill_progress, queued_f](int done, int total) {
    queued_f.wait();
    inner(done, total);
  };
  // How far the long prefill had got when the short request finished, read on the engine thread as the short
  // one's finish is delivered (reading it after Wait() returns would also count the steps the engine ran while
  // this thread was waking up).
  int long_done = 0;
  Sink short_sink = short_col.MakeSink();
  short_sink.on_finish = [inner = short_sink.on_finish, &long_col, &long_done](const Finish& f) {
    {
      std::lock_guard lk(long_col.mu);
      if (!long_col.progress.empty()) long_done = long_col.progress.back().first;
    }
    inner(f);
  };
  engine->Submit(Greedy(long_prompt, 4), long_sink);
  engine->Submit(Greedy(cases[1].prompt, 2), short_sink);
  queued.set_value();
  Finish fs = short_col.Wait();
  EXPECT_EQ(fs.reason, FinishReason::kLength);
  EXPECT_EQ(short_col.tokens, std::vector<int32_t>(cases[1].continuation.begin(), cases[1].continuation.begin() + 2));
  EXPECT_LT(long_done, 200) << "the short request waited for most of the long prefill";
  Finish fl = long_col.Wait();
  EXPECT_EQ(fl.reason, FinishReason::kLength);
  EXPECT_EQ(long_col.progress.back().first, 400);
  for (size_t i = 1; i < long_col.progress.size(); ++i)  // never starved: every step moves it on
    EXPECT_GT(long_col.progress[i].first, long_col.progress[i - 1].first);
}

TEST(LocalEngineTest, CancelMidGenerationFreesBlocks) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  EngineOptions opts;
  opts.prefix_cache_entries = 0;  // so "blocks back in the pool" means free
  auto engine = Start(opts);
  // Cancel() from another thread while tokens flow.
  Collector a;
  std::promise<void> five;
  std::atomic<bool> signalled{false};
  a.on_token_hook = [&](int n) {
    if (n == 5 && !signalled.exchange(true)) five.set_value();
    return true;
  };
  uint64_t id = engine->Submit(Greedy(cases[0].prompt, 400), a.MakeSink());
  five.get_future().wait();
  engine->Cancel(id);
  Finish f = a.Wait();
  EXPECT_EQ(f.reason, FinishReason::kCancelled);
  EXPECT_LT(f.generated_tokens, 400);
  EXPECT_GE(f.generated_tokens, 5);
  // on_finish promises the blocks are back already.
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0u);

  // on_token returning false stops right after that token.
  Collector b;
  b.on_token_hook = [](int n) { return n < 7; };
  engine->Submit(Greedy(cases[0].prompt, 400), b.MakeSink());
  Finish fb = b.Wait();
  EXPECT_EQ(fb.reason, FinishReason::kCancelled);
  EXPECT_EQ(fb.generated_tokens, 7);
  EXPECT_EQ(b.tokens.size(), 7u);
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0u);
  engine->Cancel(id);  // cancelling a finished id is harmless
  engine->Cancel(999999);
}

TEST(LocalEngineTest, QueueFullThrows) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  EngineOptions opts;
  opts.max_running = 1;
  opts.max_queue = 2;
  auto engine = Start(opts);
  // The first request holds the only slot until released.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> running;
  Collector first;
  first.on_token_hook = [&](int n) {
    if (n == 1) {
      running.set_value();
      released.wait();
    }
    return true;
  };
  engine->Submit(Greedy(cases[0].prompt, 20), first.MakeSink());
  running.get_future().wait();
  Collector q1, q2, q3;
  engine->Submit(Greedy(cases[1].prompt, 5), q1.MakeSink());
  engine->Submit(Greedy(cases[1].prompt, 5), q2.MakeSink());
  EXPECT_EQ(engine->Stats().queued, 2);
  EXPECT_THROW(engine->Submit(Greedy(cases[1].prompt, 5), q3.MakeSink()), QueueFull);
  release.set_value();
  EXPECT_EQ(first.Wait().reason, FinishReason::kLength);
  EXPECT_EQ(q1.Wait().reason, FinishReason::kLength);
  EXPECT_EQ(q2.Wait().reason, FinishReason::kLength);
  EXPECT_EQ(q3.finish_calls, 0);
}

TEST(LocalEngineTest, AdmissionIsBoundedByTheKvPool) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  // stories260K: 5 layers x 4 KV heads x 8 dims x K,V x 4 bytes = 1280 bytes per token; 16-token blocks
  // of 20 KiB. A 6-block pool (120 KiB) holds one 64-token request (4 blocks) at a time, not two.
  auto engine = Start({}, 6 * 16 * 1280);
  EXPECT_EQ(engine->Stats().kv_blocks_total, 6u);
  Collector a, b;
  std::atomic<int> max_running{0};
  a.on_token_hook = [&](int) {
    max_running = std::max(max_running.load(), engine->Stats().running);
    return true;
  };
  b.on_token_hook = a.on_token_hook;
  engine->Submit(Greedy(cases[0].prompt, 64 - static_cast<int>(cases[0].prompt.size())), a.MakeSink());
  engine->Submit(Greedy(cases[0].prompt, 64 - static_cast<int>(cases[0].prompt.size())), b.MakeSink());
  EXPECT_EQ(a.Wait().reason, FinishReason::kLength);
  EXPECT_EQ(b.Wait().reason, FinishReason::kLength);
  EXPECT_EQ(max_running.load(), 1);
  EXPECT_EQ(a.tokens, b.tokens);
  // A prompt longer than the whole pool is refused at once.
  std::vector<int32_t> huge(7 * 16, 1);
  Collector c;
  EXPECT_THROW(engine->Submit(Greedy(huge, 1), c.MakeSink()), Error);
}

TEST(LocalEngineTest, StopTokensAndContextClamp) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  auto engine = Start({}, 8 << 20);
  const Case& c = cases[0];
  // Stop at the first occurrence of the continuation's 4th token; it is not reported.
  int32_t stop = c.continuation[3];
  size_t first = std::find(c.continuation.begin(), c.continuation.end(), stop) - c.continuation.begin();
  GenerateRequest r = Greedy(c.prompt, 50);
  r.stop_tokens = {stop};
  Collector s;
  engine->Submit(r, s.MakeSink());
  Finish f = s.Wait();
  EXPECT_EQ(f.reason, FinishReason::kStopToken);
  EXPECT_EQ(s.tokens, std::vector<int32_t>(c.continuation.begin(), c.continuation.begin() + first));

  // max_tokens is clamped to what the context still holds.
  const int ctx = engine->context_length();
  ASSERT_EQ(ctx, 512);
  std::vector<int32_t> prompt = c.prompt;
  while (static_cast<int>(prompt.size()) < ctx - 3) prompt.push_back(c.continuation[prompt.size() % 10]);
  Collector l;
  engine->Submit(Greedy(prompt, 100), l.MakeSink());
  Finish fl = l.Wait();
  EXPECT_EQ(fl.reason, FinishReason::kLength);
  EXPECT_EQ(fl.generated_tokens, 3);
  // Too long, or bad ids: refused with a message.
  std::vector<int32_t> too_long(ctx + 1, 1);
  Collector t;
  try {
    engine->Submit(Greedy(too_long, 1), t.MakeSink());
    FAIL() << "expected BadRequest";
  } catch (const BadRequest& e) {
    EXPECT_EQ(std::string(e.what()), "prompt is too long: 513 tokens > 512 maximum");
  }
  EXPECT_THROW(engine->Submit(Greedy({1, 9999}, 1), t.MakeSink()), BadRequest);
  EXPECT_THROW(engine->Submit(Greedy({}, 1), t.MakeSink()), BadRequest);
  GenerateRequest bad = Greedy(c.prompt, 1);
  bad.sampling.top_p = -1;
  EXPECT_THROW(engine->Submit(bad, t.MakeSink()), BadRequest);
}

TEST(LocalEngineTest, SeededSamplingIsReproducibleUnderConcurrency) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  auto engine = Start({});
  auto request = [&](uint64_t seed) {
    GenerateRequest r;
    r.prompt = cases[0].prompt;
    r.max_tokens = 40;
    r.sampling.temperature = 1.0f;
    r.sampling.top_p = 0.9f;
    r.sampling.seed = seed;
    r.sampling.top_logprobs = 2;
    return r;
  };
  Collector a, b, c;
  engine->Submit(request(7), a.MakeSink());
  engine->Submit(request(7), b.MakeSink());
  engine->Submit(request(8), c.MakeSink());
  a.Wait();
  b.Wait();
  c.Wait();
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens.size(), 40u);
  EXPECT_NE(a.tokens, c.tokens);
}

TEST(LocalEngineTest, ReusesThePrefixOfAFinishedSequence) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  auto engine = Start({});
  const Case& c = cases[0];
  const int p = static_cast<int>(c.prompt.size());
  Collector a;
  engine->Submit(Greedy(c.prompt, 10), a.MakeSink());
  EXPECT_EQ(a.Wait().cached_prompt_tokens, 0);
  EXPECT_EQ(a.tokens, std::vector<int32_t>(c.continuation.begin(), c.continuation.begin() + 10));
  // The first request's KV holds the prompt and the 9 tokens fed back; a prompt extending past that reuses
  // all of it and continues exactly as the reference does.
  std::vector<int32_t> longer = c.prompt;
  longer.insert(longer.end(), c.continuation.begin(), c.continuation.begin() + 20);
  Collector b;
  engine->Submit(Greedy(longer, 10), b.MakeSink());
  Finish fb = b.Wait();
  EXPECT_EQ(fb.cached_prompt_tokens, p + 9);
  EXPECT_EQ(b.tokens, std::vector<int32_t>(c.continuation.begin() + 20, c.continuation.begin() + 30));
  // The same prompt again: everything but its last token comes from the cache.
  Collector d;
  engine->Submit(Greedy(c.prompt, 5), d.MakeSink());
  EXPECT_EQ(d.Wait().cached_prompt_tokens, p - 1);
  EXPECT_EQ(d.tokens, std::vector<int32_t>(c.continuation.begin(), c.continuation.begin() + 5));
  // An unrelated prompt shares nothing.
  Collector e;
  engine->Submit(Greedy(cases[1].prompt, 5), e.MakeSink());
  Finish fe = e.Wait();
  EXPECT_EQ(fe.cached_prompt_tokens, CommonPrefixForTest(cases[1].prompt, c.prompt));
  EXPECT_EQ(e.tokens, std::vector<int32_t>(cases[1].continuation.begin(), cases[1].continuation.begin() + 5));
}

TEST(LocalEngineTest, ForksFromARunningSequenceWithoutDisturbingIt) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  auto engine = Start({});
  const Case& c = cases[0];
  const int p = static_cast<int>(c.prompt.size());
  Collector a;
  std::promise<void> six;
  std::promise<void> go;
  std::shared_future<void> go_f = go.get_future().share();
  a.on_token_hook = [&](int n) {
    if (n == 6) {
      six.set_value();
      go_f.wait();  // hold the engine so B is admitted while A is mid-generation
    }
    return true;
  };
  const int a_len = static_cast<int>(c.continuation.size());
  engine->Submit(Greedy(c.prompt, a_len), a.MakeSink());
  six.get_future().wait();
  // A's KV now holds the prompt and 5 fed tokens; B's prompt is the prompt and 3 of them (a partial block:
  // the first write of either side copies the shared block).
  std::vector<int32_t> bp = c.prompt;
  bp.insert(bp.end(), c.continuation.begin(), c.continuation.begin() + 3);
  Collector b;
  engine->Submit(Greedy(bp, 20), b.MakeSink());
  go.set_value();
  Finish fb = b.Wait();
  Finish fa = a.Wait();
  EXPECT_EQ(fb.cached_prompt_tokens, p + 2);  // all but B's last prompt token
  EXPECT_EQ(b.tokens, std::vector<int32_t>(c.continuation.begin() + 3, c.continuation.begin() + 23));
  EXPECT_EQ(fa.reason, FinishReason::kLength);
  EXPECT_EQ(a.tokens, c.continuation);
}

TEST(LocalEngineTest, CacheEntriesAreEvictedWhenTheirBlocksAreNeeded) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  auto engine = Start({}, 6 * 16 * 1280);  // 6 blocks of 16 tokens
  for (int round = 0; round < 3; ++round) {
    for (const Case& c : cases) {
      Collector col;
      int n = std::min<int>(40, static_cast<int>(c.continuation.size()));
      engine->Submit(Greedy(c.prompt, n), col.MakeSink());
      EXPECT_EQ(col.Wait().reason, FinishReason::kLength);
      EXPECT_EQ(col.tokens, std::vector<int32_t>(c.continuation.begin(), c.continuation.begin() + n));
      EngineStats s = engine->Stats();
      EXPECT_LE(s.kv_blocks_used, s.kv_blocks_total);
    }
  }
}

TEST(LocalEngineTest, LongCachedPrefixSurvivesALargeReservation) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  const Case& c = cases[0];
  ASSERT_GE(c.continuation.size(), 60u);
  auto engine = Start({}, 8 * 16 * 1280);  // 8 blocks of 16 tokens
  const int p = static_cast<int>(c.prompt.size());
  std::vector<int32_t> prompt = c.prompt;  // 48 tokens: 3 blocks
  prompt.insert(prompt.end(), c.continuation.begin(), c.continuation.begin() + (48 - p));
  Collector a;
  engine->Submit(Greedy(prompt, 2), a.MakeSink());
  a.Wait();
  EXPECT_EQ(engine->Stats().kv_blocks_used, 4u);  // 49 tokens kept for reuse
  // 48 + 48 tokens reserve 6 blocks; only 4 are free, but 2 full blocks are shared with the cache entry and
  // the partial third is copied on write: it fits without evicting the entry.
  Collector b;
  b.on_token_hook = [](int n) { return n < 17; };
  engine->Submit(Greedy(prompt, 48), b.MakeSink());
  Finish fb = b.Wait();
  EXPECT_EQ(fb.cached_prompt_tokens, 47);
  EXPECT_EQ(b.tokens, std::vector<int32_t>(c.continuation.begin() + (48 - p), c.continuation.begin() + (65 - p)));
}

TEST(LocalEngineTest, ShutdownFinishesEveryone) {
  PENSIEVE_REQUIRE_TEST_DATA(kModel, kExpected);
  auto cases = LoadCases();
  EngineOptions opts;
  opts.max_running = 2;
  auto engine = Start(opts);
  std::vector<std::unique_ptr<Collector>> cols;
  for (int i = 0; i < 6; ++i) {
    cols.push_back(std::make_unique<Collector>());
    engine->Submit(Greedy(cases[i % cases.size()].prompt, 400), cols.back()->MakeSink());
  }
  engine->Shutdown();
  for (auto& c : cols) {
    Finish f = c->Wait();
    EXPECT_EQ(c->finish_calls, 1);
    EXPECT_TRUE(f.reason == FinishReason::kCancelled || f.reason == FinishReason::kLength);
  }
  Collector late;
  EXPECT_THROW(engine->Submit(Greedy(cases[0].prompt, 1), late.MakeSink()), Error);
  engine->Shutdown();  // idempotent
}

}  // namespace
}  // namespace pensieve::engine
