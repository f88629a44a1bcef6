#pragma once
// Incremental detokenization over Tokenizer::Decode: each Push returns only text that is final, i.e. complete
// UTF-8 that later tokens cannot change. It decodes a short window (the previous emitted tokens as context,
// so SentencePiece-style leading spaces come out right) rather than the whole sequence each step.
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pensieve::api {

class Detokenizer {
 public:
  explicit Detokenizer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string Push(int32_t id);
  std::string Flush();

 private:
  std::string DecodeRange(size_t begin, size_t end) const;
  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0;  // start of the context window
  size_t read_ = 0;    // tokens up to here have been emitted
};

// True when `s` ends inside a UTF-8 sequence or with U+FFFD (what decoders produce for a partial sequence).
bool EndsIncomplete(const std::string& s);

}  // namespace pensieve::api
