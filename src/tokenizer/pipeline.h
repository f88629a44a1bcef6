#pragma once
// The stages of a tokenizer pipeline, as Hugging Face tokenizers defines them: normalizer, pre-tokenizer,
// decoder. Each is built from its tokenizer.json object (factories in hf_json.cpp) or directly (GGUF).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace pensieve::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void Apply(std::string& s) const = 0;
};

// A word produced by pre-tokenization. at_start: begins at offset 0 of the whole input (Metaspace "first").
struct Piece {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces pieces with their sub-pieces (in order).
  virtual void Apply(std::vector<Piece>& pieces) const = 0;
  // When this pre-tokenizer is exactly "isolate the matches of one regex, then map bytes to the byte-level
  // alphabet" (GPT-2, Llama-3, Qwen2 and most byte-level BPE files), that regex; the tokenizer then runs a
  // copy-free loop instead of Apply. nullptr otherwise.
  virtual const Regex* ByteLevelRegex() const { return nullptr; }
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Transforms the token strings (HF semantics: a decoder maps a list of strings to a list of strings).
  virtual void Apply(std::vector<std::string>& tokens) const = 0;
};

// ---- normalizers
class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void Apply(std::string& s) const override;
 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int form) : form_(form) {}  // tok::NormalForm
  void Apply(std::string& s) const override;
 private:
  int form_;
};
class LowercaseNormalizer : public Normalizer {
 public:
  void Apply(std::string& s) const override;
};
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void Apply(std::string& s) const override;
 private:
  std::string prefix_;
};
// Replace: a literal string, or a regex when `regex` is set.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, bool regex, std::string content);
  void Apply(std::string& s) const override;
 private:
  std::string pattern_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Apply(std::string& s) const override;
 private:
  bool left_, right_;
};

// ---- pre-tokenizers
class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void Apply(std::vector<Piece>& pieces) const override;
  const Regex* ByteLevelRegex() const override;
 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const std::string& pattern, bool regex, SplitBehavior behavior, bool invert);
  void Apply(std::vector<Piece>& pieces) const override;
  // The regex when this split isolates its matches (the plain case); nullptr otherwise.
  const Regex* IsolatingRegex() const {
    return behavior_ == SplitBehavior::kIsolated && !invert_ ? regex_.get() : nullptr;
  }
 private:
  std::unique_ptr<Regex> regex_;
  std::string literal_;
  SplitBehavior behavior_;
  bool invert_;
};

// ByteLevel: optional prefix space, optional GPT-2 regex split, then bytes -> byte-level alphabet.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex);
  void Apply(std::vector<Piece>& pieces) const override;
  const Regex* ByteLevelRegex() const override { return add_prefix_space_ ? nullptr : regex_.get(); }
  bool IsPlainMapping() const { return !add_prefix_space_ && !regex_; }
 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { kAlways, kNever, kFirst };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Apply(std::vector<Piece>& pieces) const override;
 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void Apply(std::vector<Piece>& pieces) const override;
 private:
  bool individual_;
};

// Whitespace (\w+|[^\w\s]+) and WhitespaceSplit (split on whitespace, drop it).
class WhitespacePreTokenizer : public PreTokenizer {
 public:
  explicit WhitespacePreTokenizer(bool split_only);
  void Apply(std::vector<Piece>& pieces) const override;
 private:
  std::unique_ptr<Regex> regex_;
};

// ---- decoders
class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void Apply(std::vector<std::string>& tokens) const override;
 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};
class ByteLevelDecoder : public Decoder {
 public:
  void Apply(std::vector<std::string>& tokens) const override;
};
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void Apply(std::vector<std::string>& tokens) const override;
 private:
  std::string replacement_;
  bool strip_first_;
};
class ByteFallbackDecoder : public Decoder {
 public:
  void Apply(std::vector<std::string>& tokens) const override;
};
class FuseDecoder : public Decoder {
 public:
  void Apply(std::vector<std::string>& tokens) const override;
};
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void Apply(std::vector<std::string>& tokens) const override;
 private:
  std::string content_;
  size_t start_, stop_;
};
class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, bool regex, std::string content);
  void Apply(std::vector<std::string>& tokens) const override;
 private:
  ReplaceNormalizer impl_;
};
// WordPiece-style: "##" continuation prefix removed, others get a leading space (cleanup optional).
class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void Apply(std::vector<std::string>& tokens) const override;
 private:
  std::string prefix_;
  bool cleanup_;
};

// transformers' clean_up_tokenization: " ." -> "." and friends.
std::string CleanUpTokenizationSpaces(std::string s);
// Replaces every occurrence of `from` in s with `to`.
void ReplaceAll(std::string& s, std::string_view from, std::string_view to);

}  // namespace pensieve::tok
