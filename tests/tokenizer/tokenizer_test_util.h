#pragma once
// Helpers for tokenizer tests: reading (gzipped) files and the llama.cpp vocab-vector format.
#include <cstdint>
#include <string>
#include <vector>
#include <map>
#include <memory>
#include <mutex>

#include "tokenizer/tokenizer.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

// ReadFile gunzips when the name ends in .gz. ReadVocabInputs: .inp strings joined by
// "\n__ggml_vocab_test__\n" (the file ends with it too). ReadVocabOutputs: one line of ids per string.
namespace pensieve::test {

inline std::string ReadFile(const std::string& path) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz) throw std::runtime_error("cannot open " + path);
    std::string out;
    char buf[1 << 16];
    int n;
    while ((n = gzread(gz, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    gzclose(gz);
    if (n < 0) throw std::runtime_error("cannot decompress " + path);
    return out;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool FileExists(const std::string& path) { return std::filesystem::exists(path); }

inline std::vector<std::string> ReadVocabInputs(const std::string& path) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::string all = ReadFile(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t e = all.find(sep, pos);
    if (e == std::string::npos) break;
    out.push_back(all.substr(pos, e - pos));
    pos = e + sep.size();
  }
  return out;
}

inline std::vector<std::vector<int32_t>> ReadVocabOutputs(const std::string& path) {
  std::istringstream in(ReadFile(path));
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int64_t v;
    while (ls >> v) ids.push_back(static_cast<int32_t>(v));
    out.push_back(std::move(ids));
  }
  return out;
}

inline std::string IdsToString(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

// Loads a tokenizer once per test binary (the big tokenizer.json files take a while to parse).
inline const Tokenizer& CachedTokenizer(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[path];
  if (!slot) slot = LoadTokenizer(path);
  return *slot;
}

}  // namespace pensieve::test
