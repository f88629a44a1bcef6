// `pensieve tokenize` / `pensieve detokenize` end to end with the small stories260K tokenizer (its
// expected.json gives encode("Hello world") == [1, 346, 306, 414, 263, 304, 341]) and a llama.cpp vector.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_paths.h"

namespace pensieve {
namespace {

struct Result {
  int rc;
  std::string out;
};

Result RunCli(const std::string& args) {
  std::string cmd = test::PensieveBinary() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string Stories() { return test::TestData("models/stories260K/stories260K-hf"); }

TEST(CliTokenize, DefaultsAndFlags) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  EXPECT_EQ(RunCli("tokenize --model " + Stories() + " 'Hello world'").out, "1 346 306 414 263 304 341\n");
  EXPECT_EQ(RunCli("tokenize --model " + Stories() + "/tokenizer.json --no-add-special 'Hello world'").out,
            "346 306 414 263 304 341\n");
  EXPECT_EQ(RunCli("tokenize --model " + Stories() + " --no-add-special '</s>'").out, "2\n");
  Result plain = RunCli("tokenize --model " + Stories() + " --no-add-special --no-parse-special '</s>'");
  EXPECT_EQ(plain.rc, 0);
  EXPECT_NE(plain.out, "2\n");
}

TEST(CliTokenize, FileIsReadExactlyAndGgufWorks) {
  PENSIEVE_REQUIRE_TEST_DATA("vocab/ggml-vocab-llama-spm.gguf");
  auto path = std::filesystem::temp_directory_path() / ("pensieve_cli_tok_" + std::to_string(::getpid()));
  // "\n\n\n": line 10 of ggml-vocab-llama-spm.gguf.out, 29871 13 13 13 (HF, add_special_tokens=False).
  std::ofstream(path, std::ios::binary) << "\n\n\n";
  Result r = RunCli("tokenize --model " + test::TestData("vocab/ggml-vocab-llama-spm.gguf") +
                    " --no-add-special --file " + path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "29871 13 13 13\n");
}

TEST(CliTokenize, DetokenizeAndErrors) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  // tokenizer.json's decoder: Replace(▁ -> ' '), ByteFallback, Fuse, Strip one leading ' ' (none before "<s>").
  EXPECT_EQ(RunCli("detokenize --model " + Stories() + " 1 346 306 414 263 304 341").out, "<s> Hello world\n");
  EXPECT_EQ(RunCli("detokenize --model " + Stories() + " --skip-special 1 346 306 414 263 304 341").out,
            "Hello world\n");
  Result bad = RunCli("detokenize --model " + Stories() + " 99999999");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("outside the vocabulary"), std::string::npos) << bad.out;
  Result missing = RunCli("tokenize --model /nonexistent/dir hi");
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.out.find("/nonexistent/dir"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace pensieve
