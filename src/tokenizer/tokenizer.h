#pragma once
// Text <-> token ids, exactly as Hugging Face tokenizers (or the GGUF vocabulary's reference) does it.
//
// Contract:
//  - Encode(text, add_special=true, parse_special=true) == HF `tokenizer.encode(text)`;
//    add_special=false == `add_special_tokens=False` (no BOS/EOS from the post-processor);
//    parse_special=false treats special-token strings as plain text.
//  - Decode(ids) == HF `tokenizer.decode(ids)` (skip_special=false keeps special tokens' text).
//  - Loaders throw pensieve::Error naming the file and field on malformed input.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special = true,
                                      bool parse_special = true) const = 0;
  virtual std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;
  // Raw bytes this single token contributes when it follows other tokens (for streaming; see StreamDecoder).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> TokenId(std::string_view token) const = 0;  // exact vocabulary/added token
  virtual std::string TokenText(int32_t id) const = 0;                       // the vocabulary string
  virtual bool IsSpecial(int32_t id) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::string bos_token() const = 0;  // "" when none; for chat templates
  virtual std::string eos_token() const = 0;
};

// Loads from an HF model directory, a directory holding tokenizer.json, a tokenizer.json file, or a .gguf file.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path);

// Incremental detokenizer: Push(id) returns only text that is final (complete UTF-8, and not liable to change
// when later tokens arrive, e.g. SentencePiece's leading space); Flush() returns the rest.
// The concatenation of all returned pieces equals tokenizer.Decode(all ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  std::string Push(int32_t id);
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;   // window: one id of left context, then the ids whose text is not final yet
  size_t emitted_bytes_ = 0;   // bytes of Decode(window) already returned
  std::string window_text_;    // Decode(window) when last emitted
};

}  // namespace pensieve
