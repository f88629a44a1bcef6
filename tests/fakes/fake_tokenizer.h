#pragma once
// Test fake: a byte-level tokenizer (id = byte value) with a few special tokens, so tests can split UTF-8
// characters across tokens and write markup as single tokens, like real BPE vocabularies do.
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pensieve::test {

class FakeTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kEos = 256;
  static inline const std::vector<std::string> kSpecials = {"<|eos|>", "<tool_call>", "</tool_call>", "<think>", "</think>",
                                                            "<|user|>", "<|assistant|>", "<|system|>", "<|tool|>"};

  std::vector<int32_t> Encode(std::string_view text, bool add_special = true, bool parse_special = true) const override {
    std::vector<int32_t> out;
    size_t i = 0;
    while (i < text.size()) {
      bool matched = false;
      if (parse_special) {
        for (size_t s = 0; s < kSpecials.size(); ++s) {
          if (text.compare(i, kSpecials[s].size(), kSpecials[s]) == 0) {
            out.push_back(256 + static_cast<int32_t>(s));
            i += kSpecials[s].size();
            matched = true;
            break;
          }
        }
      }
      if (!matched) out.push_back(static_cast<unsigned char>(text[i++]));
    }
    return out;
  }
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 256) out += static_cast<char>(id);
      else if (!skip_special && id - 256 < static_cast<int32_t>(kSpecials.size())) out += kSpecials[id - 256];
    }
    return out;
  }
  int32_t vocab_size() const override { return 256 + static_cast<int32_t>(kSpecials.size()); }
  std::optional<int32_t> TokenId(std::string_view token) const override {
    for (size_t s = 0; s < kSpecials.size(); ++s) {
      if (kSpecials[s] == token) return 256 + static_cast<int32_t>(s);
    }
    if (token.size() == 1) return static_cast<unsigned char>(token[0]);
    return std::nullopt;
  }
  std::string TokenText(int32_t id) const override { return Decode(std::span<const int32_t>(&id, 1)); }
  bool IsSpecial(int32_t id) const override { return id >= 256; }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::optional<int32_t> eos_id() const override { return kEos; }
  std::string bos_token() const override { return ""; }
  std::string eos_token() const override { return "<|eos|>"; }
};

}  // namespace pensieve::test
