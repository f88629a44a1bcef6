#pragma once
// A compiled PCRE2 pattern in UTF + Unicode-properties mode (JIT when available), as the pre-tokenizer regexes
// of Hugging Face tokenizers (Oniguruma) and llama.cpp need: \p{L}, \p{N}, lookahead, (?i:...).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pensieve::tok {

class Regex {
 public:
  // Throws Error naming the pattern when it does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every non-overlapping match of the (valid UTF-8) text, left to right, as [begin, end) byte ranges.
  // Empty matches are skipped.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace pensieve::tok
