// The built-in demo model's chat template through our renderer and tokenizer gives exactly the prompt ids
// transformers gave (tests/fixtures/demo, written by tools/demo-model/make_demo.py, which asserts that its
// ids equal tokenizer(apply_chat_template(messages, tools, add_generation_prompt=True),
// add_special_tokens=False)).
#include <zlib.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace pensieve {
namespace {

using Json = nlohmann::ordered_json;

std::vector<std::string> GzLines(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  std::string all;
  char buf[1 << 16];
  int n;
  while (f && (n = gzread(f, buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
  if (f) gzclose(f);
  std::vector<std::string> lines;
  std::istringstream ss(all);
  for (std::string line; std::getline(ss, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

class DemoTemplate : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = std::string(PENSIEVE_FIXTURES_DIR) + "/../../models/demo";
    auto src = chat::FindChatTemplate(model_);
    ASSERT_TRUE(src.has_value());
    tmpl_ = std::make_unique<chat::ChatTemplate>(*src);
    special_ = chat::FindSpecialTokens(model_);
    tok_ = LoadTokenizer(model_);
  }
  std::string Render(const Json& h) {
    chat::RenderInput in;
    in.messages = h["messages"];
    in.tools = h["tools"];
    in.add_generation_prompt = true;
    in.bos_token = special_.bos;
    in.eos_token = special_.eos;
    return tmpl_->Render(in);
  }
  std::string model_;
  std::unique_ptr<chat::ChatTemplate> tmpl_;
  chat::SpecialTokens special_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(DemoTemplate, PromptIdsMatchTransformers) {
  std::ifstream in(std::string(PENSIEVE_FIXTURES_DIR) + "/demo/greedy.jsonl");
  ASSERT_TRUE(in.good());
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json h = Json::parse(line);
    std::vector<int32_t> want = h["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok_->Encode(Render(h), /*add_special=*/false);
    ASSERT_EQ(got, want) << "case " << n;
    ++n;
  }
  EXPECT_EQ(n, 50);
}

TEST_F(DemoTemplate, ClaudeCodeShapedPromptsHaveTransformersLength) {
  int n = 0;
  for (const std::string& line : GzLines(std::string(PENSIEVE_FIXTURES_DIR) + "/demo/claude_code_shaped.jsonl.gz")) {
    Json h = Json::parse(line);
    size_t got = tok_->Encode(Render(h), false).size();
    EXPECT_EQ(got, h["prompt_tokens"].get<size_t>()) << "case " << n;
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace pensieve
