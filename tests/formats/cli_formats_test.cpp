// End-to-end: `pensieve info`, `quantize`, `random-model` as a user runs them (exit codes and messages).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>
#include <sys/wait.h>

#include "run_cli.h"
#include "temp_dir.h"
#include "test_paths.h"

namespace pensieve {
namespace {

using ::testing::HasSubstr;

using test::RunCli;
using test::RunResult;

TEST(CliFormats, InfoStories260K) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf-bf16");
  RunResult r = RunCli("info " + test::TestData("models/stories260K/stories260K-hf-bf16") + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["parameters"], 260032);  // README: a 260K-parameter model
  EXPECT_EQ(j["dtype"], "BF16");
  EXPECT_EQ(j["kv_bytes_per_token"], 2 * 5 * 4 * 8 * 2);
  EXPECT_TRUE(j["missing_tensors"].empty());
}

TEST(CliFormats, QuantizeThenInfo) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  test::TempDir dir;
  RunResult q = RunCli("quantize " + test::TestData("models/stories260K/stories260K-hf") + " " + dir.path() +
                    "/q --bits 8 --group-size 32");
  ASSERT_EQ(q.code, 0) << q.out;
  RunResult i = RunCli("info " + dir.path() + "/q");
  ASSERT_EQ(i.code, 0) << i.out;
  EXPECT_THAT(i.out, HasSubstr("MLX affine 8-bit, group size 32, 31 quantized modules"));
  EXPECT_THAT(i.out, HasSubstr("parameters:   260032"));
}

TEST(CliFormats, RandomModelTiny) {
  test::TempDir dir;
  RunResult r = RunCli("random-model --shape tiny " + dir.path() + "/m --dtype mlx8 --seed 5 --layers 1");
  ASSERT_EQ(r.code, 0) << r.out;
  RunResult i = RunCli("info " + dir.path() + "/m --json");
  ASSERT_EQ(i.code, 0) << i.out;
  auto j = nlohmann::json::parse(i.out);
  EXPECT_EQ(j["num_hidden_layers"], 1);
  EXPECT_EQ(j["quantization"]["bits"], 8);
  RunResult bad = RunCli("random-model --shape nope " + dir.path() + "/x");
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.out, HasSubstr("unknown shape 'nope'"));
}

// --stop-after with the Qwen3 tokenizer: sampled replies to a ChatML prompt end by themselves at <|im_end|> or
// <|endoftext|> (config.json's eos_token_id, which `generate` stops on), are never empty, and average about N.
TEST(CliFormats, RandomModelStopAfterEndsSampledReplies) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  test::TempDir dir;
  const std::string m = dir.path() + "/m";
  RunResult r = RunCli("random-model --shape tiny --vocab 151936 --tokenizer " + test::TestData("tokenizers/qwen3") +
                       " --stop-after 8 " + m);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("stop tendency: tokens 151645, 151643"));
  EXPECT_TRUE(std::filesystem::exists(m + "/tokenizer.json.gz"));
  std::filesystem::remove(m + "/tokenizer.json.gz");  // ids in, ids out: spare each run the tokenizer's load
  const int kRuns = 24, kMax = 200;
  int total = 0;
  for (int seed = 1; seed <= kRuns; ++seed) {
    RunResult g = RunCli("generate --model " + m + " --temperature 1 --max-tokens " + std::to_string(kMax) +
                         " --print-ids --threads 1 --seed " + std::to_string(seed) +
                         // <|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n (Qwen3 ids)
                         " --prompt-ids 151644,872,198,14990,151645,198,151644,77091,198");
    ASSERT_EQ(g.code, 0) << g.out;
    // The ids line (stderr's timing line is mixed into the output too).
    std::vector<long> out;
    std::istringstream lines(g.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line.find_first_not_of("0123456789 ") != std::string::npos) continue;
      std::istringstream ids(line);
      for (long id; ids >> id;) out.push_back(id);
    }
    ASSERT_GE(out.size(), 2u) << "seed " << seed << ": " << g.out;  // text, then the stop token
    EXPECT_TRUE(out.back() == 151645 || out.back() == 151643) << "seed " << seed << ": " << g.out;
    total += static_cast<int>(out.size()) - 1;
  }
  const double mean = static_cast<double>(total) / kRuns;
  EXPECT_GT(mean, 3.0);  // N = 8; the spread of a geometric mean over 24 runs is about +-1.5
  EXPECT_LT(mean, 20.0);
}

TEST(CliFormats, BadFilesGiveOneClearError) {
  test::TempDir dir;
  std::string m = dir.path() + "/m";
  ASSERT_EQ(RunCli("random-model --shape tiny " + m).code, 0);
  // Truncate the weights: non-zero exit, one line naming the file and a tensor.
  std::filesystem::resize_file(m + "/model.safetensors", std::filesystem::file_size(m + "/model.safetensors") - 10);
  RunResult r = RunCli("info " + m);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("error: " + m + "/model.safetensors: tensor '"));
  // Unknown architecture.
  std::ofstream(m + "/config.json") << R"({"architectures": ["FooForCausalLM"], "hidden_size": 8})";
  r = RunCli("info " + m);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("config.json: field 'architectures': unsupported architecture 'FooForCausalLM'"));
  r = RunCli("quantize " + m + " " + dir.path() + "/q --bits 3 --group-size 100");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("group_size=100"));
}

}  // namespace
}  // namespace pensieve
