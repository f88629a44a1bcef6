// Model folders a careless user or an attacker could hand over (issue 14, defects 6-7): every one is refused
// promptly with one line naming the file and what is wrong, exit status 1; never a hang or an abort.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "run_cli.h"
#include "test_paths.h"

namespace pensieve::test {
namespace {

namespace fs = std::filesystem;

// A copy of the demo model's folder (the weights linked, not copied), which each case then breaks.
class BadModelFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pensieve-bad-model-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const std::string demo = fs::absolute(FixturesDir() + "/../../models/demo").lexically_normal().string();
    for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}) {
      fs::copy_file(demo + "/" + f, dir_ + "/" + f);
    }
    fs::create_symlink(demo + "/model.safetensors", dir_ + "/model.safetensors");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Replaces `name` in the folder with what `make` creates at the given path.
  void Replace(const std::string& name, const std::function<void(const std::string&)>& make) {
    const std::string p = dir_ + "/" + name;
    fs::remove(p);
    make(p);
  }
  // Runs `generate` on the folder: must fail within the timeout with a one-line error holding every fragment.
  void ExpectRefused(const std::vector<std::string>& fragments, const std::string& command = "generate") {
    std::string args = command == "generate" ? "generate --model " + dir_ + " --prompt hi --max-tokens 1 --device cpu"
                                             : "serve --model " + dir_ + " --host 127.0.0.1 --port 0 --device cpu";
    RunResult r = RunCli(args, 20);
    EXPECT_EQ(r.code, 1) << (r.code == 124 ? "hung (killed after 20 s)" : "") << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(r.out.find("internal"), std::string::npos) << r.out;
    for (const std::string& f : fragments) EXPECT_NE(r.out.find(f), std::string::npos) << "missing '" << f << "' in\n" << r.out;
  }
  std::string dir_;
};

TEST_F(BadModelFiles, TheIntactCopyRuns) {  // the baseline the other cases break
  RunResult r = RunCli("generate --model " + dir_ + " --prompt hi --max-tokens 1 --device cpu", 60);
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST_F(BadModelFiles, SymlinkLoopOnTheWeights) {
  Replace("model.safetensors", [](const std::string& p) { fs::create_symlink("model.safetensors", p); });
  ExpectRefused({dir_ + "/model.safetensors", "Too many levels of symbolic links"});
}

TEST_F(BadModelFiles, SymlinkLoopOnTheTokenizer) {
  Replace("tokenizer.json", [](const std::string& p) { fs::create_symlink("tokenizer.json", p); });
  ExpectRefused({dir_ + "/tokenizer.json", "Too many levels of symbolic links"});
}

TEST_F(BadModelFiles, ConfigIsACharacterDevice) {  // was: hang, memory growing ~200 MB/s
  Replace("config.json", [](const std::string& p) { fs::create_symlink("/dev/zero", p); });
  ExpectRefused({dir_ + "/config.json", "not a regular file (a character device)"});
}

TEST_F(BadModelFiles, WeightsAreAFifo) {  // was: hang in open()
  Replace("model.safetensors", [](const std::string& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0); });
  ExpectRefused({dir_ + "/model.safetensors", "not a regular file (a FIFO)"});
}

TEST_F(BadModelFiles, TokenizerIsADirectory) {
  Replace("tokenizer.json", [](const std::string& p) { fs::create_directory(p); });
  ExpectRefused({dir_ + "/tokenizer.json", "a directory"});
}

TEST_F(BadModelFiles, APlainFileIsNotAModelDirectory) {
  RunResult r = RunCli("generate --model " + dir_ + "/config.json --prompt hi --max-tokens 1 --device cpu", 20);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(dir_ + "/config.json: not a model directory (expected a folder with config.json"),
            std::string::npos)
      << r.out;
  r = RunCli("info " + dir_ + "/config.json", 20);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(dir_ + "/config.json: not a model directory"), std::string::npos) << r.out;
  r = RunCli("generate --model " + dir_ + "/missing --prompt hi --max-tokens 1 --device cpu", 20);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(dir_ + "/missing: No such file or directory"), std::string::npos) << r.out;
}

TEST_F(BadModelFiles, AnInvalidChatTemplateNamesItsFile) {
  std::ofstream(dir_ + "/chat_template.jinja") << "{% if messages %}never closed";
  ExpectRefused({dir_ + "/chat_template.jinja", "the chat template does not parse"}, "serve");
}

}  // namespace
}  // namespace pensieve::test
