// Where a model's chat template and special tokens come from: HF directory layouts and GGUF metadata.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve::chat {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("pensieve_tmpl_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
    return (path_ / name).string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

TEST(FindChatTemplate, TokenizerConfigString) {
  TempDir d;
  d.Write("tokenizer_config.json", R"({"chat_template": "{{ 'x' }}", "bos_token": "<s>",
                                        "eos_token": {"content": "</s>", "lstrip": false}})");
  EXPECT_EQ(FindChatTemplate(d.path()), "{{ 'x' }}");
  EXPECT_EQ(FindChatTemplate(d.path() + "/tokenizer_config.json"), "{{ 'x' }}");  // a file inside the model
  SpecialTokens t = FindSpecialTokens(d.path());
  EXPECT_EQ(t.bos, "<s>");
  EXPECT_EQ(t.eos, "</s>");
}

TEST(FindChatTemplate, NamedListPrefersDefaultAndExposesToolUse) {
  TempDir d;
  d.Write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                          {"name": "default", "template": "D"},
                                                          {"name": "rag", "template": "R"}]})");
  EXPECT_EQ(FindChatTemplate(d.path()), "D");
  EXPECT_EQ(FindNamedChatTemplate(d.path(), "tool_use"), "T");
  EXPECT_EQ(FindNamedChatTemplate(d.path(), "nope"), std::nullopt);
  EXPECT_EQ(FindChatTemplateFor(d.path(), true), "T");
  EXPECT_EQ(FindChatTemplateFor(d.path(), false), "D");
  EXPECT_EQ(ChatTemplateNames(d.path()), (std::vector<std::string>{"tool_use", "default", "rag"}));
}

TEST(FindChatTemplate, SeparateFilesOverrideTokenizerConfig) {
  TempDir d;
  d.Write("tokenizer_config.json", R"({"chat_template": "old"})");
  d.Write("chat_template.json", R"({"chat_template": "from json"})");
  EXPECT_EQ(FindChatTemplate(d.path()), "from json");
  d.Write("chat_template.jinja", "from jinja\n");
  EXPECT_EQ(FindChatTemplate(d.path()), "from jinja\n");
}

TEST(FindChatTemplate, AbsentAndMalformed) {
  TempDir d;
  EXPECT_EQ(FindChatTemplate(d.path()), std::nullopt);
  d.Write("tokenizer_config.json", R"({"bos_token": null})");
  EXPECT_EQ(FindChatTemplate(d.path()), std::nullopt);
  EXPECT_EQ(FindSpecialTokens(d.path()).bos, "");
  d.Write("tokenizer_config.json", R"({"chat_template": 42})");
  EXPECT_THROW(FindChatTemplate(d.path()), Error);
  d.Write("tokenizer_config.json", R"({"chat_template": )");
  try {
    FindChatTemplate(d.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
  }
}

TEST(FindChatTemplate, RealQwen3Config) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  std::string dir = test::TestData("tokenizers/qwen3");
  auto t = FindChatTemplate(dir);
  ASSERT_TRUE(t.has_value());
  EXPECT_NE(t->find("<|im_start|>"), std::string::npos);
  EXPECT_NO_THROW(ChatTemplate{*t});
  EXPECT_EQ(FindSpecialTokens(dir).eos, "<|im_end|>");
}

TEST(FindChatTemplate, GgufMetadata) {
  PENSIEVE_REQUIRE_TEST_DATA("vocab/ggml-vocab-phi-3.gguf", "vocab/ggml-vocab-gpt-2.gguf");
  std::string phi3 = test::TestData("vocab/ggml-vocab-phi-3.gguf");
  auto t = FindChatTemplate(phi3);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->rfind("{{ bos_token }}{% for message in messages %}", 0), 0u);
  SpecialTokens s = FindSpecialTokens(phi3);
  EXPECT_EQ(s.bos, "<s>");             // id 1 in Phi-3's vocabulary
  EXPECT_EQ(s.eos, "<|endoftext|>");   // id 32000
  ChatTemplate tmpl(*t);
  RenderInput in;
  in.messages = Json::parse(R"([{"role": "user", "content": "Hi"}])");
  in.bos_token = s.bos;
  std::string out = tmpl.Render(in);
  EXPECT_EQ(out.rfind("<s><|user|>\nHi<|end|>\n", 0), 0u) << out;
  // A GGUF without a template.
  EXPECT_EQ(FindChatTemplate(test::TestData("vocab/ggml-vocab-gpt-2.gguf")), std::nullopt);
}

}  // namespace
}  // namespace pensieve::chat
