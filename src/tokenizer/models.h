#pragma once
// Subword models: map one pre-tokenized word to ids.
//  - BpeModel: rank-ordered merges (HF tokenizers' BPE; GGUF "gpt2"), with byte fallback, unk fusing and
//    ignore_merges; per-word results are cached.
//  - SpmModel: score-ordered merging of pieces (SentencePiece BPE as llama.cpp's "llama" vocabulary runs it),
//    with <0xNN> byte fallback.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/flat_map.h"

namespace pensieve::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Model {
 public:
  virtual ~Model() = default;
  virtual void Tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  // Vocabulary string of id, or nullptr when the model has no such id.
  virtual const std::string* IdToToken(int32_t id) const = 0;
  virtual int32_t size() const = 0;  // 1 + the largest id
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

class BpeModel : public Model {
 public:
  // merges: (left, right) token strings in priority order. Throws Error when a merge names a missing token or
  // the vocabulary has duplicate/negative ids (`where` names the source in messages).
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& where);

  void Tokenize(std::string_view word, std::vector<int32_t>& out) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  const std::string* IdToToken(int32_t id) const override;
  int32_t size() const override { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  void MergeWord(std::string_view word, std::vector<int32_t>& out) const;
  void TokenizeChunk(std::string_view word, std::vector<int32_t>& out) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  // (left id << 32 | right id) -> rank << 32 | merged id
  FlatMap64 merges_;
  // Single-character tokens by their UTF-8 bytes packed into an integer (the initial symbols of a word).
  FlatMap64 char_ids_;
  BpeOptions opt_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];  // <0xNN> ids, -1 when absent
  bool all_bytes_ = false;
  // SentencePiece-style vocabularies run without a pre-tokenizer, so a whole text is one "word". When no
  // vocabulary entry has U+2581 right after another character, no merge can span the point just before a
  // U+2581 that follows another character, so the word can be cut there (each chunk cached) with identical
  // results.
  bool split_before_metaspace_ = false;

  mutable std::mutex cache_mu_;
  mutable WordCache cache_{1 << 16};
};

class SpmModel : public Model {
 public:
  SpmModel(std::vector<std::string> pieces, std::vector<float> scores, std::optional<int32_t> unk_id,
           const std::string& where);
  void Tokenize(std::string_view word, std::vector<int32_t>& out) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  const std::string* IdToToken(int32_t id) const override;
  int32_t size() const override { return static_cast<int32_t>(pieces_.size()); }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  Vocab vocab_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];
};

}  // namespace pensieve::tok
