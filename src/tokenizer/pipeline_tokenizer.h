#pragma once
// The one Tokenizer implementation: added-token matching, normalizer, pre-tokenizer, subword model,
// post-processor (BOS/EOS), decoder. tokenizer.json (hf_json.cpp) and GGUF vocabularies (gguf_vocab.cpp) are
// both translated into these parts.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/models.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer.h"

namespace pensieve::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;  // matched against normalized text (true) or raw input (false)
  bool lstrip = false, rstrip = false, single_word = false;
};

struct TokenizerParts {
  std::string source;  // file name, for messages
  std::unique_ptr<Model> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;  // null: tokens joined with " " (HF's default)
  std::vector<AddedToken> added;
  std::vector<int32_t> prefix_ids, suffix_ids;  // post-processor for a single sequence
  bool clean_up_spaces = false;
  std::optional<int32_t> bos_id, eos_id;
  std::string bos_token, eos_token;
};

std::unique_ptr<Tokenizer> MakePipelineTokenizer(TokenizerParts parts);

// Builders (throw Error naming the file and field).
TokenizerParts PartsFromTokenizerJson(const std::string& json_text, const std::string& config_text,
                                      const std::string& source);
std::unique_ptr<Tokenizer> LoadGgufTokenizer(const std::string& path);

}  // namespace pensieve::tok
