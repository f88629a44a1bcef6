// `pensieve template` end to end: the binary's stdout must equal Python Jinja2's render byte for byte.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_paths.h"

namespace pensieve {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TemplateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pensieve_cli_tmpl_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }

  // Arguments are passed through the shell single-quoted.
  Result Run(const std::vector<std::string>& args) {
    std::string cmd = "'";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "'" + string
    cmd += test::PensieveBinary();
    cmd += "' template";
    for (const auto& a : args) {
      std::string q;
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      cmd += " '" + q + "'";
    }
    cmd += " >'" + (dir_ / "out").string() + "' 2>'" + (dir_ / "err").string() + "'";
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(dir_ / "out"), Slurp(dir_ / "err")};
  }

  const Json& Case(const std::string& id, const std::string& scenario) {
    static Json data = Json::parse(std::ifstream(test::TestData("chat-templates/real-templates.rendered.json")));
    for (const Json& c : data["cases"])
      if (c["template_id"] == id && c["scenario"] == scenario) return c;
    throw std::runtime_error("no case " + id + "/" + scenario);
  }
  std::string TemplateText(const std::string& id) {
    static Json data = Json::parse(std::ifstream(test::TestData("chat-templates/real-templates.rendered.json")));
    return data["templates"][id]["template"];
  }

  fs::path dir_;
};

TEST_F(TemplateCli, ModelDirectoryWithToolsMatchesTransformers) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  const Json& c = Case("qwen3-tokenizer_config", "tool_call_roundtrip");
  Result r = Run({"--model", test::TestData("tokenizers/qwen3"), "--messages", Write("m.json", c["messages"].dump()),
                  "--tools", Write("t.json", c["tools"].dump())});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, c["expected"].get<std::string>());
}

TEST_F(TemplateCli, VarsAndNoGenerationPrompt) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  const Json& t = Case("qwen3-tokenizer_config", "thinking_disabled");
  Result r = Run({"--model", test::TestData("tokenizers/qwen3"), "--messages",
                  Write("m.json", t["messages"].dump()), "--vars", t["extra_context"].dump()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, t["expected"].get<std::string>());

  const Json& n = Case("meta-llama-Llama-3.1-8B-Instruct", "no_generation_prompt");
  ASSERT_FALSE(n["add_generation_prompt"].get<bool>());
  r = Run({"--template", Write("llama.jinja", TemplateText("meta-llama-Llama-3.1-8B-Instruct")), "--bos",
           n["bos_token"], "--eos", n["eos_token"], "--messages", Write("m.json", n["messages"].dump()),
           "--no-generation-prompt"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, n["expected"].get<std::string>());
}

TEST_F(TemplateCli, TemplateErrorsPrintTheTemplatesMessage) {
  PENSIEVE_REQUIRE_TEST_DATA("chat-templates/real-templates.rendered.json");
  const Json& c = Case("google-gemma-2-2b-it", "basic");
  Result r = Run({"--template", Write("g.jinja", TemplateText("google-gemma-2-2b-it")), "--messages",
                  Write("m.json", c["messages"].dump())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("System role not supported"), std::string::npos) << r.err;

  r = Run({"--template", Write("bad.jinja", "ok\n{% if %}"), "--messages", Write("m.json", "[]")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
}

TEST_F(TemplateCli, ModelWithoutTemplateFallsBackToChatMLWithWarning) {
  fs::create_directories(dir_ / "model");
  Write("model/tokenizer_config.json", R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>"})");
  Result r = Run({"--model", (dir_ / "model").string(), "--messages",
                  Write("m.json", R"([{"role": "user", "content": "Hi"}])")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_NE(r.err.find("warning"), std::string::npos);
}

TEST_F(TemplateCli, BadArguments) {
  Result r = Run({"--messages", Write("m.json", "[]")});
  EXPECT_EQ(r.exit_code, 1);
  r = Run({"--template", Write("x.jinja", "x"), "--messages", Write("bad.json", "[{")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pensieve
