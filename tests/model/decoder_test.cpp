// One shared checker over a tiny random model of every architecture variant:
//  - the CPU backend agrees with the scalar reference backend;
//  - cached decode (prefill n-1, then one token) equals the uncached prefill of n tokens;
//  - a batch of two sequences (mixed prefill + decode rows) equals running them one by one;
//  - chunked prefill (max_batch_tokens smaller than the prompt) equals one chunk.
// Agreement with transformers itself is golden_test.cpp's job; these pin the invariants of the decoder.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/reference.h"
#include "engine/sequences.h"
#include "model/model.h"
#include "random_model.h"
#include "util/error.h"

namespace pensieve::model {
namespace {

using engine::Sequences;
using test::RandomModelSpec;
using Item = Sequences::Item;

using test::Variant;

std::vector<Variant> Variants() { return test::DecoderVariants(); }

class DecoderTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    dir_ = test::TempDir(GetParam().name);
    test::WriteRandomModel(dir_, GetParam().spec);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Model> Load(backend::Backend& be, int max_batch = 64) {
    LoadOptions o;
    o.kv_budget_bytes = 4 << 20;
    o.max_batch_tokens = max_batch;
    o.kv_block_tokens = 4;  // several blocks per sequence even for short prompts
    return Model::Load(dir_, be, o);
  }
  std::vector<int32_t> Prompt(int n, int salt) {
    std::vector<int32_t> p(n);
    for (int i = 0; i < n; ++i) p[i] = (i * 37 + salt * 11 + 5) % GetParam().spec.vocab;
    return p;
  }
  std::string dir_;
};

// Relative L2 distance between two logit vectors.
double RelL2(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) num += (a[i] - b[i]) * double(a[i] - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num / std::max(den, 1e-30));
}

std::vector<float> Prefill(Model& m, const std::vector<int32_t>& tokens) {
  Sequences seqs(m);
  int seq = seqs.New();
  std::vector<float> logits(tokens.size() * m.config().vocab_size);
  Item it{seq, tokens, Logits::kAll};
  seqs.Forward(std::span(&it, 1), logits);
  return logits;
}

TEST_P(DecoderTest, CpuMatchesReferenceBackend) {
  backend::cpu::CpuBackend cpu(2, backend::cpu::AffineMath::kFloat);
  backend::ref::ReferenceBackend ref;
  auto a = Load(cpu), b = Load(ref);
  const int64_t V = a->config().vocab_size;
  auto prompt = Prompt(13, 0);
  auto la = Prefill(*a, prompt), lb = Prefill(*b, prompt);
  for (size_t p = 0; p < prompt.size(); ++p) EXPECT_LT(RelL2(&la[p * V], &lb[p * V], V), 2e-5) << "position " << p;
}

TEST_P(DecoderTest, CachedDecodeEqualsUncachedPrefill) {
  backend::cpu::CpuBackend cpu(2, backend::cpu::AffineMath::kFloat);
  auto m = Load(cpu);
  const int64_t V = m->config().vocab_size;
  auto prompt = Prompt(13, 1);
  auto full = Prefill(*m, prompt);
  Sequences seqs(*m);
  int seq = seqs.New();
  std::vector<float> logits(V);
  Item head{seq, std::span<const int32_t>(prompt).first(10)};
  seqs.Forward(std::span(&head, 1), logits);
  for (size_t p = 10; p < prompt.size(); ++p) {
    Item step{seq, std::span<const int32_t>(&prompt[p], 1)};
    seqs.Forward(std::span(&step, 1), logits);
    EXPECT_LT(RelL2(logits.data(), &full[p * V], V), 1e-5) << "position " << p;
  }
  EXPECT_EQ(seqs.Length(seq), 13);
}

TEST_P(DecoderTest, BatchOfTwoEqualsSeparateRuns) {
  backend::cpu::CpuBackend cpu(2, backend::cpu::AffineMath::kFloat);
  auto m = Load(cpu);
  const int64_t V = m->config().vocab_size;
  auto a = Prompt(11, 2), b = Prompt(6, 3);
  auto la = Prefill(*m, a), lb = Prefill(*m, b);
  // a: prefill 10 alone, then its 11th token decodes in the same step as b's whole prefill. (With Phi-3's
  // longrope, original context 8: a's rows use long factors and b's short ones, in one batch, as
  // transformers would for each sequence alone.)
  Sequences seqs(*m);
  int sa = seqs.New(), sb = seqs.New();
  std::vector<float> logits(V * 7);
  Item first{sa, std::span<const int32_t>(a).first(10)};
  seqs.Forward(std::span(&first, 1), logits);
  Item both[2] = {{sa, std::span<const int32_t>(&a[10], 1)}, {sb, b, Logits::kAll}};
  seqs.Forward(both, logits);
  EXPECT_LT(RelL2(&logits[0], &la[10 * V], V), 1e-5);
  for (int p = 0; p < 6; ++p) EXPECT_LT(RelL2(&logits[(1 + p) * V], &lb[p * V], V), 1e-5) << "position " << p;
}

TEST_P(DecoderTest, ChunkedPrefillEqualsOneChunk) {
  backend::cpu::CpuBackend cpu(2, backend::cpu::AffineMath::kFloat);
  auto whole = Load(cpu, 64), chunked = Load(cpu, 3);
  const int64_t V = whole->config().vocab_size;
  auto prompt = Prompt(11, 4);
  auto lw = Prefill(*whole, prompt), lc = Prefill(*chunked, prompt);
  for (size_t p = 0; p < prompt.size(); ++p) EXPECT_LT(RelL2(&lc[p * V], &lw[p * V], V), 1e-5) << "position " << p;
}

INSTANTIATE_TEST_SUITE_P(Architectures, DecoderTest, ::testing::ValuesIn(Variants()),
                         [](const auto& info) { return std::string(info.param.name); });

// Rewrites dir/config.json through `edit`.
void EditConfig(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(dir + "/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump();
}

TEST(DecoderErrorsTest, BadForwardInputsThrowWithoutChangingState) {
  auto dir = test::TempDir("errors");
  test::WriteRandomModel(dir, {});
  backend::cpu::CpuBackend cpu(1, backend::cpu::AffineMath::kFloat);
  LoadOptions o;
  o.kv_budget_bytes = 1 << 20;
  auto m = Model::Load(dir, cpu, o);
  Sequences seqs(*m);
  int seq = seqs.New();
  std::vector<float> logits(256);
  std::vector<int32_t> bad = {1, 256};
  Item it{seq, bad};
  EXPECT_THROW(seqs.Forward(std::span(&it, 1), logits), pensieve::Error);
  EXPECT_EQ(seqs.Length(seq), 0);
  std::vector<int32_t> ok = {1, 2};
  Item it2{seq, ok, Logits::kAll};
  EXPECT_THROW(seqs.Forward(std::span(&it2, 1), logits), pensieve::Error);  // needs 2 rows of logits
  EXPECT_EQ(seqs.Length(seq), 0);
  Item twice[2] = {{seq, ok}, {seq, ok}};
  EXPECT_THROW(seqs.Forward(twice, logits), pensieve::Error);  // one sequence twice in a call
  EXPECT_EQ(seqs.Length(seq), 0);
}

// kv_budget_bytes <= 0 sizes the pool from the free memory, at most max_sequences full contexts (here the cap:
// a small model leaves far more than that free).
TEST(DecoderSizingTest, AutomaticKvPoolHoldsFullContextsWhenTheyFit) {
  auto dir = test::TempDir("kv_auto");
  test::WriteRandomModel(dir, {});
  backend::cpu::CpuBackend cpu(1, backend::cpu::AffineMath::kFloat);
  LoadOptions o;
  o.kv_budget_bytes = 0;
  o.max_sequences = 3;
  o.max_context = 100;
  o.kv_block_tokens = 16;
  auto m = Model::Load(dir, cpu, o);
  EXPECT_EQ(m->kv_blocks(), 3 * 7);  // ceil(100 / 16) blocks per context
}

// A configuration that says the projections have biases (attention_bias, mlp_bias) over a file without them is
// refused, naming the first missing bias and the key (it used to load and run without the biases).
TEST(DecoderErrorsTest, BiasesTheConfigPromisesMustBeThere) {
  auto dir = test::TempDir("missing_bias");
  test::WriteRandomModel(dir, {});
  backend::cpu::CpuBackend cpu(1, backend::cpu::AffineMath::kFloat);
  LoadOptions o;
  o.kv_budget_bytes = 1 << 20;
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    SCOPED_TRACE(key);
    EditConfig(dir, [&](nlohmann::json& j) {
      j["attention_bias"] = std::string(key) == "attention_bias";
      j["mlp_bias"] = std::string(key) == "mlp_bias";
    });
    try {
      Model::Load(dir, cpu, o);
      FAIL() << "expected an error";
    } catch (const pensieve::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::string(key) == "mlp_bias" ? "mlp.gate_proj.bias" : "self_attn.q_proj.bias"),
                std::string::npos) << what;
      EXPECT_NE(what.find(key), std::string::npos) << what;
    }
  }
}

TEST(DecoderErrorsTest, MissingAndUnexpectedTensorsAreNamed) {
  auto dir = test::TempDir("missing");
  RandomModelSpec s;
  s.tied = true;
  test::WriteRandomModel(dir, s);
  // Config says untied, file has no lm_head.
  EditConfig(dir, [](nlohmann::json& j) { j["tie_word_embeddings"] = false; });
  backend::cpu::CpuBackend cpu(1, backend::cpu::AffineMath::kFloat);
  try {
    Model::Load(dir, cpu, {});
    FAIL() << "expected an error";
  } catch (const pensieve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos) << e.what();
  }
  // Qwen3 config (expects q_norm) over a Llama file.
  EditConfig(dir, [](nlohmann::json& j) {
    j["tie_word_embeddings"] = true;
    j["architectures"] = {"Qwen3ForCausalLM"};
    j["model_type"] = "qwen3";
  });
  try {
    Model::Load(dir, cpu, {});
    FAIL() << "expected an error";
  } catch (const pensieve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_norm"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pensieve::model
