// The project's demo model (models/demo: a trained 5.8M-parameter Phi3, bf16) against transformers' greedy
// outputs recorded in tests/fixtures/demo/greedy.jsonl (float32 compute from the bf16 file). All prompts run
// as one batch: prefill chunks mix sequences, decode steps carry every unfinished sequence at once.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/sequences.h"
#include "model/model.h"
#include "test_paths.h"

namespace pensieve::model {
namespace {

struct Case {
  std::vector<int32_t> prompt, want;
};

TEST(DemoModelTest, BatchedGreedyMatchesTransformers) {
  const std::string repo = test::FixturesDir() + "/../..";
  std::ifstream in(test::FixturesDir() + "/demo/greedy.jsonl");
  if (!in) GTEST_SKIP() << "tests/fixtures/demo/greedy.jsonl not present";
  std::vector<Case> cases;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    Case c{j["prompt_ids"].get<std::vector<int32_t>>(), j["output_ids"].get<std::vector<int32_t>>()};
    if (c.prompt.size() <= 600) cases.push_back(std::move(c));  // keeps the test to seconds on 2 cores
  }
  ASSERT_GE(cases.size(), 20u);

  backend::cpu::CpuBackend be(2);
  LoadOptions o;
  o.kv_budget_bytes = 256 << 20;
  o.max_batch_tokens = 256;
  o.max_sequences = static_cast<int>(cases.size());
  auto m = Model::Load(repo + "/models/demo", be, o);
  const int64_t V = m->config().vocab_size;
  const int32_t eos = 4091;

  engine::Sequences sequences(*m);
  std::vector<int> seqs;
  std::vector<engine::Sequences::Item> items;
  for (const Case& c : cases) {
    seqs.push_back(sequences.New());
    items.push_back({seqs.back(), c.prompt});
  }
  std::vector<float> logits(cases.size() * V);
  std::vector<std::vector<int32_t>> got(cases.size());
  std::vector<int32_t> next(cases.size());
  std::vector<size_t> active(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) active[i] = i;
  sequences.Forward(items, logits);
  for (int step = 0; !active.empty() && step < 40; ++step) {
    std::vector<size_t> still;
    items.clear();
    for (size_t r = 0; r < active.size(); ++r) {
      const size_t i = active[r];
      const float* l = logits.data() + r * V;
      next[i] = static_cast<int32_t>(std::max_element(l, l + V) - l);
      got[i].push_back(next[i]);
      if (next[i] != eos && got[i].size() < cases[i].want.size() + 2) {
        still.push_back(i);
        items.push_back({seqs[i], std::span<const int32_t>(&next[i], 1)});
      }
    }
    active = still;
    if (!items.empty()) sequences.Forward(items, logits);
  }
  int exact = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got[i], cases[i].want) << "case " << i << " (prompt " << cases[i].prompt.size() << " tokens)";
    exact += got[i] == cases[i].want;
  }
  std::printf("[ demo     ] %d of %zu greedy outputs identical to transformers\n", exact, cases.size());
}

}  // namespace
}  // namespace pensieve::model
