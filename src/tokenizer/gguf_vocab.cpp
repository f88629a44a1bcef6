// GGUF vocabulary (tokenizer.ggml.*) -> TokenizerParts, following llama.cpp's reading of those keys.
#include <algorithm>

#include "formats/gguf.h"
#include "tokenizer/pipeline_tokenizer.h"
#include "util/error.h"

namespace pensieve::tok {
namespace {

// llama.cpp's token types.
enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

const char kMetaspace[] = "\xE2\x96\x81";  // U+2581

const char kGpt2Regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char kLlama3Regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char kQwen2Regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char kStarcoderRegex2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// CJK ranges used by the DeepSeek pre-tokenizers: 一-龥, ࠀ-一, 가-퟿.
const char kDeepseekCjk[] = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";

// The Split regexes (applied in sequence, each isolating its matches) that tokenizer.ggml.pre names.
std::vector<std::string> PreRegexes(const std::string& pre, const std::string& file) {
  if (pre.empty() || pre == "default" || pre == "gpt-2" || pre == "gpt2" || pre == "mpt" || pre == "olmo" ||
      pre == "jais" || pre == "phi-2")
    return {kGpt2Regex};
  if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3" || pre == "dbrx" || pre == "smaug-bpe" ||
      pre == "falcon3" || pre == "pixtral" || pre == "tekken")
    return {kLlama3Regex};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2" || pre == "megrez" || pre == "hunyuan")
    return {kQwen2Regex};
  if (pre == "deepseek-coder")
    return {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"};
  if (pre == "deepseek-llm")
    return {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}+"};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva-7b")
    return {"\\p{N}", kStarcoderRegex2};
  throw Error("GGUF " + file + ": tokenizer.ggml.pre '" + pre + "' is not supported");
}

bool IgnoresMerges(const std::string& pre) {
  return pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3";
}

}  // namespace

std::unique_ptr<Tokenizer> LoadGgufTokenizer(const std::string& path) {
  auto f = GgufFile::Open(path);
  const std::string& name = f->name();
  std::string model = f->GetString("tokenizer.ggml.model").value_or("");
  if (model.empty()) throw Error("GGUF " + name + ": no tokenizer.ggml.model key (no vocabulary in this file)");
  const std::vector<std::string>* tokens = f->GetStringArray("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) throw Error("GGUF " + name + ": tokenizer.ggml.tokens is missing or empty");
  const size_t n = tokens->size();
  if (n >= (size_t{1} << 30)) throw Error("GGUF " + name + ": tokenizer.ggml.tokens is too large");
  std::vector<int64_t> types(n, kNormal);
  if (const auto* t = f->GetIntArray("tokenizer.ggml.token_type")) {
    if (t->size() != n)
      throw Error("GGUF " + name + ": tokenizer.ggml.token_type has " + std::to_string(t->size()) +
                  " entries for " + std::to_string(n) + " tokens");
    types = *t;
  }
  auto special_id = [&](const char* key) -> std::optional<int32_t> {
    auto v = f->GetInt(key);
    if (!v) return std::nullopt;
    if (*v < 0 || static_cast<size_t>(*v) >= n)
      throw Error("GGUF " + name + ": " + key + " = " + std::to_string(*v) + " is outside the vocabulary (" +
                  std::to_string(n) + " tokens)");
    return static_cast<int32_t>(*v);
  };
  std::optional<int32_t> bos = special_id("tokenizer.ggml.bos_token_id");
  std::optional<int32_t> eos = special_id("tokenizer.ggml.eos_token_id");
  std::optional<int32_t> unk = special_id("tokenizer.ggml.unknown_token_id");
  special_id("tokenizer.ggml.padding_token_id");

  TokenizerParts p;
  p.source = path;
  bool add_bos_default;
  if (model == "llama") {
    std::vector<float> scores;
    if (const auto* s = f->GetFloatArray("tokenizer.ggml.scores")) {
      if (s->size() != n)
        throw Error("GGUF " + name + ": tokenizer.ggml.scores has " + std::to_string(s->size()) +
                    " entries for " + std::to_string(n) + " tokens");
      scores.assign(s->begin(), s->end());
    }
    p.model = std::make_unique<SpmModel>(*tokens, std::move(scores), unk, "GGUF " + name);
    bool add_space = f->GetBool("tokenizer.ggml.add_space_prefix").value_or(true);
    std::vector<std::unique_ptr<Normalizer>> norm;
    if (add_space) norm.push_back(std::make_unique<PrependNormalizer>(kMetaspace));
    norm.push_back(std::make_unique<ReplaceNormalizer>(" ", false, kMetaspace));
    p.normalizer = std::make_unique<SequenceNormalizer>(std::move(norm));
    std::vector<std::unique_ptr<Decoder>> dec;
    dec.push_back(std::make_unique<ReplaceDecoder>(kMetaspace, false, " "));
    dec.push_back(std::make_unique<ByteFallbackDecoder>());
    dec.push_back(std::make_unique<FuseDecoder>());
    if (add_space) dec.push_back(std::make_unique<StripDecoder>(" ", 1, 0));
    p.decoder = std::make_unique<SequenceDecoder>(std::move(dec));
    add_bos_default = true;
  } else if (model == "gpt2") {
    const auto* merges_s = f->GetStringArray("tokenizer.ggml.merges");
    if (!merges_s) throw Error("GGUF " + name + ": tokenizer.ggml.merges is missing (needed by a gpt2 vocabulary)");
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(merges_s->size());
    for (size_t i = 0; i < merges_s->size(); ++i) {
      const std::string& m = (*merges_s)[i];
      size_t sp = m.find(' ', 1);  // a token may itself be a space only in raw form; byte-level has none
      if (sp == std::string::npos)
        throw Error("GGUF " + name + ": tokenizer.ggml.merges[" + std::to_string(i) + "] '" + m +
                    "' is not two tokens separated by a space");
      merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    Vocab vocab;
    vocab.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] == kControl || types[i] == kUserDefined || types[i] == kUnknown) {
        // Added tokens live outside the BPE vocabulary, as in HF; keep their id reserved.
      }
      vocab.emplace((*tokens)[i], static_cast<int32_t>(i));
    }
    std::string pre = f->GetString("tokenizer.ggml.pre").value_or("default");
    BpeOptions o;
    o.ignore_merges = IgnoresMerges(pre);
    p.model = std::make_unique<BpeModel>(std::move(vocab), merges, std::move(o), "GGUF " + name);
    std::vector<std::unique_ptr<PreTokenizer>> pts;
    for (const std::string& r : PreRegexes(pre, name))
      pts.push_back(std::make_unique<SplitPreTokenizer>(r, true, SplitBehavior::kIsolated, false));
    pts.push_back(std::make_unique<ByteLevelPreTokenizer>(false, false));
    p.pre_tokenizer = std::make_unique<SequencePreTokenizer>(std::move(pts));
    p.decoder = std::make_unique<ByteLevelDecoder>();
    add_bos_default = false;
  } else {
    throw Error("GGUF " + name + ": tokenizer.ggml.model '" + model + "' is not supported (llama, gpt2)");
  }
  for (size_t i = 0; i < n; ++i) {
    if (types[i] != kControl && types[i] != kUserDefined && types[i] != kUnknown) continue;
    AddedToken a;
    a.id = static_cast<int32_t>(i);
    a.content = (*tokens)[i];
    a.special = types[i] != kUserDefined;
    p.added.push_back(std::move(a));
  }
  if (bos) {
    p.bos_id = bos;
    p.bos_token = (*tokens)[*bos];
  }
  if (eos) {
    p.eos_id = eos;
    p.eos_token = (*tokens)[*eos];
  }
  if (f->GetBool("tokenizer.ggml.add_bos_token").value_or(add_bos_default) && bos) p.prefix_ids.push_back(*bos);
  if (f->GetBool("tokenizer.ggml.add_eos_token").value_or(false) && eos) p.suffix_ids.push_back(*eos);
  return MakePipelineTokenizer(std::move(p));
}

}  // namespace pensieve::tok
