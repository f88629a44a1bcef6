#pragma once
// The bytes each token adds to the output text, computed once per vocabulary for constrained decoding.
//
// A token's bytes are what it contributes after other text: Decode([anchor, id]) minus Decode([anchor]), so
// SentencePiece's leading space comes out as the model writes it mid-text. Tokens whose text is not complete
// UTF-8 on its own (byte-fallback and partial byte-level tokens; Decode gives U+FFFD for them) are not usable:
// a constrained output is then built only from tokens whose text is known. Ids at or beyond the tokenizer's
// vocabulary (padding rows of the embedding) are not usable either.
// Building costs two decodes per token (a fraction of a second for 150k tokens); share one table per model.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pensieve::engine {

class TokenBytes {
 public:
  enum Flag : uint8_t {
    kUsable = 1,       // bytes known (see above)
    kSpecial = 2,      // a special/control token (only allowed where markup is forced)
    kPlainString = 4,  // usable, not special, every byte >= 0x20 and none is '"' or '\\': plain JSON string text
  };
  TokenBytes() = default;
  TokenBytes(const TokenBytes&) = delete;  // by_bytes_ views data_
  TokenBytes& operator=(const TokenBytes&) = delete;

  // vocab: the model's vocabulary size (may exceed the tokenizer's).
  static std::shared_ptr<const TokenBytes> Build(const Tokenizer& tokenizer, int vocab);
  // For tests: explicit byte strings and flags (kPlainString is derived).
  static std::shared_ptr<const TokenBytes> FromStrings(const std::vector<std::string>& bytes,
                                                       const std::vector<bool>& special);

  int size() const { return static_cast<int>(flags_.size()); }
  std::string_view bytes(int32_t id) const {
    return std::string_view(data_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  uint8_t flags(int32_t id) const { return flags_[id]; }
  size_t max_length() const { return max_length_; }
  // The usable token whose bytes are the longest prefix of `text` (special tokens win ties of equal bytes),
  // or -1.
  int32_t LongestPrefixToken(std::string_view text) const;

 private:
  void Finish();
  std::string data_;
  std::vector<uint32_t> offsets_;  // size() + 1
  std::vector<uint8_t> flags_;
  size_t max_length_ = 0;
  std::unordered_map<std::string_view, int32_t> by_bytes_;
};

}  // namespace pensieve::engine
