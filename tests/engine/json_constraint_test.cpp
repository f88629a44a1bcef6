// Constrained decoding: TokenBytes (token byte strings, from a fake table, the fake byte tokenizer and the
// real Qwen3 vocabulary), the JSON constraint's forcing, masking and budget guarantee (random walks always end
// in opener + valid JSON object + closer within the token budget; Allows agrees with Mask), mask speed on a
// 150k vocabulary, and the engine on a real model: constrained greedy/seeded output is one JSON object,
// deterministic, finishing with kStopToken.
#include "engine/json_constraint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "test_backend.h"
#include "engine/local_engine.h"
#include "fakes/fake_tokenizer.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace pensieve::engine {
namespace {

// A small vocabulary: printable ASCII and '\n' as single bytes (ids 0..95), then multi-byte pieces.
struct Vocab {
  std::vector<std::string> bytes;
  std::vector<bool> special;
  int32_t Add(std::string b, bool sp = false) {
    bytes.push_back(std::move(b));
    special.push_back(sp);
    return static_cast<int32_t>(bytes.size() - 1);
  }
  int32_t Id(std::string_view b) const {
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] == b) return static_cast<int32_t>(i);
    }
    return -1;
  }
};

Vocab SmallVocab() {
  Vocab v;
  for (int c = 0x20; c < 0x7F; ++c) v.Add(std::string(1, static_cast<char>(c)));
  v.Add("\n");
  for (const char* s : {"{\"", "\":", " {\"", "\"}", "\"}}", "hello", " world", "\"a\"", "\\u", "\xC3\xA9", "\xF0\x9F\x91\x8B",
                        "get", "_weather", "_time", "name", "arguments", "}\n", "1234", "true", "  ", "    ", "\"\n"}) {
    v.Add(s);
  }
  v.Add("<tool_call>", true);
  v.Add("</tool_call>", true);
  v.Add("<eos>", true);
  v.Add("");  // an unusable id (no known bytes)
  return v;
}

std::string Spell(const Vocab& v, const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t t : ids) s += v.bytes[t];
  return s;
}

struct WalkResult {
  std::string text;
  bool complete = false;
  int steps = 0;
};

// Drives the constraint like the engine does, picking uniformly among allowed tokens, checking on every
// step that Allows agrees with Mask and that stop tokens are never allowed.
WalkResult Walk(TokenConstraint& c, const Vocab& v, int budget, uint32_t seed, int32_t stop) {
  std::mt19937 rng(seed);
  WalkResult r;
  std::vector<uint8_t> mask(v.bytes.size());
  std::vector<int32_t> ids;
  while (r.steps < budget && !c.Complete()) {
    int32_t t;
    if (auto f = c.Plan(budget - r.steps)) {
      t = *f;
      EXPECT_TRUE(c.Allows(t));
    } else {
      c.Mask(mask);
      std::vector<int32_t> ok;
      for (size_t i = 0; i < mask.size(); ++i) {
        EXPECT_EQ(mask[i] != 0, c.Allows(static_cast<int32_t>(i))) << "token " << i << " after '" << Spell(v, ids) << "'";
        if (mask[i]) ok.push_back(static_cast<int32_t>(i));
      }
      EXPECT_EQ(mask[stop], 0);
      if (ok.empty()) {
        ADD_FAILURE() << "no allowed token after '" << Spell(v, ids) << "'";
        break;
      }
      t = ok[rng() % ok.size()];
    }
    c.Accept(t);
    ids.push_back(t);
    ++r.steps;
  }
  r.text = Spell(v, ids);
  r.complete = c.Complete();
  return r;
}

TEST(TokenBytesTest, FakeTokenizerBytesAndFlags) {
  test::FakeTokenizer tok;
  auto t = TokenBytes::Build(tok, tok.vocab_size() + 3);  // padded like a model's embedding
  EXPECT_EQ(t->size(), tok.vocab_size() + 3);
  EXPECT_EQ(t->bytes('a'), "a");
  EXPECT_TRUE(t->flags('a') & TokenBytes::kPlainString);
  EXPECT_FALSE(t->flags('"') & TokenBytes::kPlainString);
  EXPECT_FALSE(t->flags('\n') & TokenBytes::kPlainString);
  EXPECT_TRUE(t->flags('\n') & TokenBytes::kUsable);
  EXPECT_FALSE(t->flags(0xC3) & TokenBytes::kUsable);  // half a UTF-8 character
  EXPECT_EQ(t->bytes(257), "<tool_call>");
  EXPECT_TRUE(t->flags(257) & TokenBytes::kSpecial);
  EXPECT_FALSE(t->flags(257) & TokenBytes::kPlainString);
  EXPECT_EQ(t->flags(tok.vocab_size() + 1), 0);  // padding
  EXPECT_EQ(t->LongestPrefixToken("<tool_call>\n{"), 257);
  EXPECT_EQ(t->LongestPrefixToken("xyz"), 'x');
}

TEST(TokenBytesTest, QwenVocabularyAndSentencePieceSpaces) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3", "tokenizers/mistral-7b-v0.1");
  auto qwen = LoadTokenizer(test::TestData("tokenizers/qwen3"));
  auto t0 = std::chrono::steady_clock::now();
  auto table = TokenBytes::Build(*qwen, 151936);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("TokenBytes::Build(qwen3, 151936): %.0f ms, longest token %zu bytes\n", ms, table->max_length());
  auto hello = qwen->Encode(" hello", false, false);
  ASSERT_EQ(hello.size(), 1u);
  EXPECT_EQ(table->bytes(hello[0]), " hello");
  int32_t tc = *qwen->TokenId("<tool_call>");
  EXPECT_EQ(table->bytes(tc), "<tool_call>");
  EXPECT_EQ(table->LongestPrefixToken("<tool_call>\n{\"name\""), tc);
  int usable = 0;
  for (int i = 0; i < table->size(); ++i) usable += (table->flags(i) & TokenBytes::kUsable) != 0;
  EXPECT_GT(usable, 140000);
  EXPECT_LT(usable, 151669);  // partial UTF-8 byte tokens are left out

  auto llama2 = LoadTokenizer(test::TestData("tokenizers/mistral-7b-v0.1"));
  auto lt = TokenBytes::Build(*llama2, llama2->vocab_size());
  auto world = llama2->Encode(" world", false, false);
  ASSERT_FALSE(world.empty());
  EXPECT_EQ(lt->bytes(world.back()), " world");  // SentencePiece's "▁" is a space mid-text
}

TEST(JsonConstraintTest, NamedToolOpenerIsForcedThenArgumentsAreFree) {
  Vocab v = SmallVocab();
  auto table = TokenBytes::FromStrings(v.bytes, v.special);
  JsonShape shape;
  shape.openers = {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\":"};
  shape.closer = "}\n</tool_call>";
  shape.json.leading_space = true;
  auto c = MakeJsonConstraint(shape, table, {v.Id("<eos>")});
  std::vector<int32_t> forced;
  while (auto f = c->Plan(1000)) {
    forced.push_back(*f);
    c->Accept(*f);
  }
  EXPECT_EQ(Spell(v, forced), shape.openers[0]);
  EXPECT_EQ(forced.front(), v.Id("<tool_call>"));  // markup with the special token
  EXPECT_TRUE(c->Allows(v.Id(" {\"")));
  EXPECT_TRUE(c->Allows(v.Id("{")));
  EXPECT_TRUE(c->Allows(v.Id(" ")));
  EXPECT_FALSE(c->Allows(v.Id("hello")));
  EXPECT_FALSE(c->Allows(v.Id("<eos>")));
  EXPECT_FALSE(c->Allows(v.Id("")));
  c->Accept(v.Id(" {\""));
  // Inside a key: plain text yes, special tokens no (even though their bytes would be valid string text).
  EXPECT_TRUE(c->Allows(v.Id("hello")));
  EXPECT_FALSE(c->Allows(v.Id("<tool_call>")));
  EXPECT_FALSE(c->Allows(v.Id("\n")));  // raw control character in a string
  for (const char* s : {"a", "\":", "1234", "}"}) c->Accept(v.Id(s));
  // The object closed: the closer is forced, then the constraint is complete (the engine ends the sequence).
  std::vector<int32_t> tail;
  while (auto f = c->Plan(1000)) {
    tail.push_back(*f);
    c->Accept(*f);
  }
  EXPECT_EQ(Spell(v, tail), "}\n</tool_call>");
  EXPECT_TRUE(c->Complete());
}

TEST(JsonConstraintTest, AnyToolLetsTheModelChooseTheName) {
  Vocab v = SmallVocab();
  auto table = TokenBytes::FromStrings(v.bytes, v.special);
  JsonShape shape;
  shape.openers = {"{\"name\": \"get_weather\", \"parameters\":", "{\"name\": \"get_time\", \"parameters\":"};
  shape.closer = "}";
  shape.json.leading_space = true;
  auto c = MakeJsonConstraint(shape, table, {});
  std::string text;
  while (auto f = c->Plan(1000)) {
    text += v.bytes[*f];
    c->Accept(*f);
  }
  EXPECT_EQ(text, "{\"name\": \"get_");  // the common prefix is forced
  std::vector<uint8_t> mask(v.bytes.size());
  c->Mask(mask);
  std::vector<std::string> allowed;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i]) allowed.push_back(v.bytes[i]);
  }
  EXPECT_EQ(allowed, (std::vector<std::string>{"t", "w"}));  // "_time", "true": not after "get_"
  c->Accept(v.Id("t"));
  text += "t";
  while (auto f = c->Plan(1000)) {
    text += v.bytes[*f];
    c->Accept(*f);
  }
  EXPECT_EQ(text, shape.openers[1]);  // the rest of the chosen name is forced
  EXPECT_TRUE(c->Allows(v.Id(" {\"")));
  // Openers that are prefixes of one another are refused.
  JsonShape bad;
  bad.openers = {"ab", "abc"};
  EXPECT_THROW(MakeJsonConstraint(bad, table, {}), Error);
}

// The guarantee: whatever the model prefers among allowed tokens, the output completes within the budget.
TEST(JsonConstraintTest, RandomWalksAlwaysCompleteWithinTheBudget) {
  Vocab v = SmallVocab();
  auto table = TokenBytes::FromStrings(v.bytes, v.special);
  const int32_t eos = v.Id("<eos>");
  const std::string opener = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\":";
  const std::string closer = "}\n</tool_call>";
  int completed = 0;
  for (int budget : {55, 60, 70, 90, 130, 200}) {
    for (uint32_t seed = 0; seed < 40; ++seed) {
      JsonShape shape;
      shape.openers = {opener};
      shape.closer = closer;
      shape.json.leading_space = true;
      shape.json.max_depth = 6;
      auto c = MakeJsonConstraint(shape, table, {eos});
      WalkResult r = Walk(*c, v, budget, seed, eos);
      ASSERT_TRUE(r.complete) << "budget " << budget << " seed " << seed << ": " << r.text;
      ASSERT_LE(r.steps, budget);
      ASSERT_EQ(r.text.compare(0, opener.size(), opener), 0) << r.text;
      ASSERT_GE(r.text.size(), opener.size() + closer.size());
      ASSERT_EQ(r.text.substr(r.text.size() - closer.size()), closer) << r.text;
      std::string object = r.text.substr(opener.size(), r.text.size() - opener.size() - closer.size());
      auto j = nlohmann::json::parse(object, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << object;
      ASSERT_TRUE(j.is_object()) << object;
      ++completed;
    }
  }
  EXPECT_EQ(completed, 240);
}

TEST(JsonConstraintTest, JsonModeStartsWithTheBraceAndNeverAllowsStopEarly) {
  Vocab v = SmallVocab();
  auto table = TokenBytes::FromStrings(v.bytes, v.special);
  const int32_t eos = v.Id("<eos>");
  auto c = MakeJsonConstraint(JsonShape{}, table, {eos});
  EXPECT_FALSE(c->Plan(100).has_value());
  std::vector<uint8_t> mask(v.bytes.size());
  c->Mask(mask);
  for (size_t i = 0; i < mask.size(); ++i) {
    EXPECT_EQ(mask[i] != 0, v.bytes[i] == "{" || v.bytes[i] == "{\"") << v.bytes[i];
  }
  for (uint32_t seed = 0; seed < 50; ++seed) {
    auto w = MakeJsonConstraint(JsonShape{}, table, {eos});
    WalkResult r = Walk(*w, v, 40, seed, eos);
    ASSERT_TRUE(r.complete) << r.text;
    auto j = nlohmann::json::parse(r.text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.text;
  }
}

// Mask cost on the real 150k Qwen vocabulary, in the states a generation spends its time in.
TEST(JsonConstraintTest, MaskOverQwenVocabularyIsFast) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  auto qwen = LoadTokenizer(test::TestData("tokenizers/qwen3"));
  auto table = TokenBytes::Build(*qwen, 151936);
  std::vector<uint8_t> mask(151936);
  for (std::string prefix : {"{\"location\": \"Par", "{\"location\":", "{\"a\": [1, 2", "{"}) {
    JsonShape shape;
    auto c = MakeJsonConstraint(shape, table, {*qwen->eos_id()});
    for (int32_t t : qwen->Encode(prefix, false, false)) {
      ASSERT_FALSE(c->Plan(1000).has_value());
      ASSERT_TRUE(c->Allows(t)) << prefix;
      c->Accept(t);
    }
    ASSERT_FALSE(c->Plan(1000).has_value());
    const int reps = 20;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) c->Mask(mask);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    int allowed = 0;
    for (uint8_t m : mask) allowed += m;
    std::printf("mask after '%s': %.2f ms, %d tokens allowed\n", prefix.c_str(), ms, allowed);
    EXPECT_GT(allowed, 0);
    EXPECT_LT(ms, 15.0) << "a shared 2-core machine is slow, but not this slow";  // ~1 ms on an idle core
  }
}

// The engine on stories260K (SentencePiece vocabulary, byte fallback): greedy and seeded constrained
// generation give one JSON object, end with kStopToken, and are reproducible.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  std::optional<Finish> finish;
  Sink MakeSink() {
    Sink s;
    s.on_token = [this](const TokenOut& t) {
      std::lock_guard lk(mu);
      tokens.push_back(t.id);
      return true;
    };
    s.on_finish = [this](const Finish& f) {
      std::lock_guard lk(mu);
      finish = f;
      cv.notify_all();
    };
    return s;
  }
  Finish Wait() {
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::seconds(60), [&] { return finish.has_value(); });
    return finish.value_or(Finish{});
  }
};

TEST(JsonConstraintTest, EngineGeneratesOneJsonObjectDeterministically) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  const std::string dir = test::TestData("models/stories260K/stories260K-hf");
  auto tok = LoadTokenizer(dir);
  auto backend = test::MakeTestBackend(1);
  model::LoadOptions lo;
  lo.kv_budget_bytes = 8 << 20;
  lo.max_batch_tokens = 64;
  auto model = model::Model::Load(dir, *backend, lo);  // before the backend is moved into the engine
  auto engine = StartLocalEngine(std::move(model), {}, std::move(backend));
  auto table = TokenBytes::Build(*tok, engine->vocab_size());
  const std::vector<int32_t> prompt = tok->Encode("Once upon a time", true, false);
  auto run = [&](std::optional<uint64_t> seed, int max_tokens) {
    GenerateRequest r;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.temperature = seed ? 1.0f : 0.0f;
    r.sampling.seed = seed;
    r.stop_tokens = {*tok->eos_id()};
    r.constraint = MakeJsonConstraint(JsonShape{}, table, r.stop_tokens);
    Collector c;
    engine->Submit(std::move(r), c.MakeSink());
    Finish f = c.Wait();
    EXPECT_EQ(f.reason, FinishReason::kStopToken);
    EXPECT_LE(static_cast<int>(c.tokens.size()), max_tokens);
    std::string text = tok->Decode(c.tokens, false);
    auto j = nlohmann::json::parse(text, nullptr, false);
    EXPECT_TRUE(j.is_object()) << text;
    EXPECT_EQ(text.front(), '{') << text;
    return c.tokens;
  };
  for (int max_tokens : {8, 30, 120}) {
    EXPECT_EQ(run(std::nullopt, max_tokens), run(std::nullopt, max_tokens));
    EXPECT_EQ(run(uint64_t{42}, max_tokens), run(uint64_t{42}, max_tokens));
  }
  engine->Shutdown();
}

}  // namespace
}  // namespace pensieve::engine
