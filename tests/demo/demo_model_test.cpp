// The demo model (models/demo, bf16, and models/demo-mlx4, made by `pensieve quantize`) through our engine:
// render with the model's own chat template (src/chat), tokenize (src/tokenizer), greedy-decode with
// src/model on the CPU backend, and compare with answers that come from outside the code:
//  - tests/fixtures/demo/heldout.jsonl.gz: 500 held-out prompts with the exact answers the task generator
//    defines (issue 5 acceptance: >= 98% exact, for bf16 and 4-bit);
//  - tests/fixtures/demo/greedy.jsonl: 50 prompts with transformers' rendered prompt ids and greedy output ids
//    (float32 compute from the bf16 file): our prompt ids and our greedy ids must be identical.
// CI runs a fixed deterministic subset of the held-out prompts (see SubsetStride); the bar is 98% either way.
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "demo/demo_runner.h"
#include "test_backend.h"

namespace pensieve {
namespace {

using chat::Json;
using test::DemoRunner;
using test::ModelsDir;
using test::ReadJsonLines;

// CI runs a fixed subset (every 2nd prompt: 250 per model, all nine families, ~60 CPU-s each; with 100 the 4-bit
// model would sit exactly on the bar, 98/100); PENSIEVE_DEMO_HELDOUT=all runs all 500
// (tools/demo-model/eval_engine.sh; results in bench/RESULTS.md), =N every (500/N)-th.
int SubsetStride(size_t n) {
  const char* env = std::getenv("PENSIEVE_DEMO_HELDOUT");
  std::string v = env ? env : "250";
  if (v == "all") return 1;
  int want = std::atoi(v.c_str());
  return want <= 0 || static_cast<size_t>(want) >= n ? 1 : static_cast<int>(n / want);
}

void CheckHeldOut(const std::string& model_dir, const char* label) {
  const auto rows = ReadJsonLines(test::FixturesDir() + "/demo/heldout.jsonl.gz");
  ASSERT_EQ(rows.size(), 500u);
  DemoRunner runner(model_dir, test::MakeTestBackend(0));
  const int stride = SubsetStride(rows.size());
  std::map<std::string, std::pair<int, int>> by_family;  // family -> (right, total)
  int right = 0, total = 0;
  std::string failures;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < rows.size(); i += stride) {
    const Json& r = rows[i];
    std::vector<int32_t> prompt = runner.RenderIds(r["messages"], r["tools"]);
    std::string got = runner.Answer(runner.Generate(prompt, 96));
    const std::string expected = r["expected"].get<std::string>();
    bool ok = got == expected;
    right += ok;
    ++total;
    auto& fam = by_family[r["family"].get<std::string>()];
    fam.first += ok;
    ++fam.second;
    if (!ok) {
      failures += "  #" + std::to_string(i) + " " + r["family"].get<std::string>() + ": expected " + Json(expected).dump() +
                  ", got " + Json(got).dump() + " (transformers: " + r["transformers_output"].dump() + ")\n";
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string families;
  for (const auto& [name, rt] : by_family)
    families += " " + name + " " + std::to_string(rt.first) + "/" + std::to_string(rt.second);
  const double cpu_s = static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
  std::printf("[demo %s] held-out exact %d/%d = %.1f%% (%zu prompt tokens, %.1f s wall, process CPU so far %.1f s)\n  by family:%s\n%s",
              label, right, total, 100.0 * right / total, static_cast<size_t>(runner.prompt_tokens()), secs, cpu_s,
              families.c_str(),
              failures.c_str());
  EXPECT_GE(right * 100, total * 98) << label << ": " << right << "/" << total << " exact\n" << failures;
}

TEST(DemoModel, HeldOutExactBf16) { CheckHeldOut(ModelsDir() + "/demo", "bf16"); }

TEST(DemoModel, HeldOutExactMlx4) {
  // The 4-bit form is the committed output of `pensieve quantize models/demo models/demo-mlx4`.
  std::ifstream cfg(ModelsDir() + "/demo-mlx4/config.json");
  ASSERT_TRUE(cfg) << "models/demo-mlx4 missing";
  auto j = nlohmann::json::parse(cfg);
  ASSERT_EQ(j["quantization"]["bits"], 4);
  ASSERT_EQ(j["quantization"]["group_size"], 64);
  CheckHeldOut(ModelsDir() + "/demo-mlx4", "mlx4");
}

TEST(DemoModel, GreedyIdsMatchTransformers) {
  const auto rows = ReadJsonLines(test::FixturesDir() + "/demo/greedy.jsonl");
  ASSERT_EQ(rows.size(), 50u);
  DemoRunner runner(ModelsDir() + "/demo", test::MakeTestBackend(0));
  int same_prompt = 0, same_output = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json& r = rows[i];
    const auto want_prompt = r["prompt_ids"].get<std::vector<int32_t>>();
    const auto want_out = r["output_ids"].get<std::vector<int32_t>>();
    // Our template + tokenizer give transformers' prompt ids...
    std::vector<int32_t> prompt = runner.RenderIds(r["messages"], r.contains("tools") ? r["tools"] : Json());
    same_prompt += prompt == want_prompt;
    EXPECT_EQ(prompt, want_prompt) << "prompt #" << i << " renders/tokenizes differently";
    // ...and our model, fed transformers' ids, gives its greedy ids.
    std::vector<int32_t> out = runner.Generate(want_prompt, static_cast<int>(want_out.size()));
    same_output += out == want_out;
    EXPECT_EQ(out, want_out) << "prompt #" << i << ": greedy output differs from transformers'";
  }
  std::printf("[demo bf16] prompt ids identical %d/50, greedy output ids identical %d/50\n", same_prompt, same_output);
}

// The synthetic Claude Code-shaped prompts (46k-76k tokens): our greedy answer equals transformers' (right or
// wrong: this checks the engine at long context, not the model). Opt-in, long: PENSIEVE_DEMO_LONG=N runs the
// first N of the 16 prompts (each is a full long prefill on the CPU).
TEST(DemoModel, ClaudeCodeShapedMatchesTransformers) {
  const char* env = std::getenv("PENSIEVE_DEMO_LONG");
  if (!env) GTEST_SKIP() << "opt-in: PENSIEVE_DEMO_LONG=N (N prompts of 38k-78k tokens)";
  const auto rows = ReadJsonLines(test::FixturesDir() + "/demo/claude_code_shaped.jsonl.gz");
  const size_t n = std::min<size_t>(rows.size(), std::max(1, std::atoi(env)));
  DemoRunner runner(ModelsDir() + "/demo", test::MakeTestBackend(0), 131072);
  int same = 0, right = 0;
  for (size_t i = 0; i < n; ++i) {
    const Json& r = rows[i];
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> prompt = runner.RenderIds(r["messages"], r["tools"]);
    EXPECT_EQ(static_cast<int64_t>(prompt.size()), r["prompt_tokens"].get<int64_t>()) << "prompt #" << i;
    const std::string got = runner.Answer(runner.Generate(prompt, 96));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    same += got == r["transformers_output"].get<std::string>();
    right += got == r["expected"].get<std::string>();
    std::printf("[demo long] #%zu %zu tokens, %.1f s: got %s, transformers %s, expected %s\n", i, prompt.size(), secs,
                Json(got).dump().c_str(), r["transformers_output"].dump().c_str(), r["expected"].dump().c_str());
    std::fflush(stdout);
  }
  std::printf("[demo long] same as transformers %d/%zu, exact %d/%zu\n", same, n, right, n);
  // Greedy decoding at 46k-76k tokens can flip at a near-tie between float32 summation orders (seen once in 14 on
  // 2026-11-26: prompt #12, both answers wrong), so one difference in ten is tolerated; a kernel bug changes most.
  EXPECT_GE(same * 10, static_cast<int>(n) * 9) << same << "/" << n << " identical to transformers";
}

}  // namespace
}  // namespace pensieve
