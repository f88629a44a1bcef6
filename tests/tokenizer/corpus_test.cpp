// The big conformance corpus: tests/fixtures/tokenizer/corpus.jsonl(.gz) (one string per line) and, per
// tokenizer, <name>.expected.jsonl(.gz) from HF transformers' AutoTokenizer (tools/tokenizer-ref):
// {"ids": encode(text), "ids_nospecial": encode(text, add_special_tokens=False), "decoded": decode(ids_nospecial)}.
// Every line must match exactly. Skips only when the fixture files are absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"

namespace pensieve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string FirstExisting(const std::vector<std::string>& paths) {
  for (const auto& p : paths)
    if (fs::exists(p)) return p;
  return "";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// Where the tokenizer named by an expected file lives.
std::string TokenizerFor(const std::string& name) {
  const std::string data = test::SharedDir() + "/data/";
  return FirstExisting({data + "tokenizers/" + name, data + "models/stories260K/" + name,
                        test::FixturesDir() + "/tokenizer/" + name, test::FixturesDir() + "/" + name});
}

TEST(Corpus, MatchesHuggingFaceExactly) {
  const std::string dir = test::FixturesDir() + "/tokenizer";
  std::string corpus_path = FirstExisting({dir + "/corpus.jsonl", dir + "/corpus.jsonl.gz"});
  if (corpus_path.empty()) GTEST_SKIP() << "no " << dir << "/corpus.jsonl(.gz) yet (fixtures engineer commits it)";
  std::vector<std::string> texts;
  for (const std::string& line : Lines(test::ReadFile(corpus_path))) {
    json j = json::parse(line);
    texts.push_back(j.is_string() ? j.get<std::string>() : j.at("text").get<std::string>());
  }
  ASSERT_GT(texts.size(), 0u);
  int n_files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string file = entry.path().filename().string();
    size_t pos = file.find(".expected.jsonl");
    if (pos == std::string::npos) continue;
    std::string name = file.substr(0, pos);
    SCOPED_TRACE(name);
    ++n_files;
    std::string tok_path = TokenizerFor(name);
    if (tok_path.empty()) {
      if (!test::HaveShared()) continue;
      ADD_FAILURE() << "no tokenizer found for expected file " << file;
      continue;
    }
    const Tokenizer& tok_ref = test::CachedTokenizer(tok_path);
    const Tokenizer* tok = &tok_ref;
    std::vector<std::string> expected = Lines(test::ReadFile(entry.path().string()));
    ASSERT_EQ(expected.size(), texts.size()) << file << " has a different line count from the corpus";
    int bad_ids = 0, bad_nospecial = 0, bad_decode = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      json e = json::parse(expected[i]);
      auto want = e.at("ids").get<std::vector<int32_t>>();
      auto want_ns = e.at("ids_nospecial").get<std::vector<int32_t>>();
      std::string want_dec = e.at("decoded").get<std::string>();
      auto got = tok->Encode(texts[i], true);
      auto got_ns = tok->Encode(texts[i], false);
      std::string got_dec = tok->Decode(want_ns);
      if (got != want && ++bad_ids <= 5)
        ADD_FAILURE() << "line " << i << " ids\n  text: " << json(texts[i]).dump() << "\n  want:"
                      << test::IdsToString(want) << "\n  got: " << test::IdsToString(got);
      if (got_ns != want_ns && ++bad_nospecial <= 5)
        ADD_FAILURE() << "line " << i << " ids_nospecial\n  text: " << json(texts[i]).dump() << "\n  want:"
                      << test::IdsToString(want_ns) << "\n  got: " << test::IdsToString(got_ns);
      if (got_dec != want_dec && ++bad_decode <= 5)
        ADD_FAILURE() << "line " << i << " decode\n  want: " << json(want_dec).dump()
                      << "\n  got:  " << json(got_dec).dump();
    }
    std::printf("[corpus %s] %zu strings: ids mismatches %d, ids_nospecial mismatches %d, decode mismatches %d\n",
                name.c_str(), texts.size(), bad_ids, bad_nospecial, bad_decode);
  }
  if (n_files == 0) GTEST_SKIP() << "no <name>.expected.jsonl(.gz) in " << dir << " yet";
}

}  // namespace
}  // namespace pensieve
