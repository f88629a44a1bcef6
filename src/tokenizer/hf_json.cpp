// tokenizer.json (+ tokenizer_config.json) -> TokenizerParts.
#include <nlohmann/json.hpp>

#include "tokenizer/pipeline_tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve::tok {
namespace {

using json = nlohmann::json;

class Ctx {
 public:
  explicit Ctx(const std::string& source) : source_(source) {}
  [[noreturn]] void Fail(const std::string& field, const std::string& what) const {
    throw Error(source_ + ": " + field + ": " + what);
  }
  const json& Get(const json& obj, const char* key, const std::string& field) const {
    if (!obj.is_object()) Fail(field, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) Fail(field + "." + key, "missing");
    return *it;
  }
  std::string Str(const json& obj, const char* key, const std::string& field) const {
    const json& v = Get(obj, key, field);
    if (!v.is_string()) Fail(field + "." + key, "expected a string");
    return v.get<std::string>();
  }
  std::string StrOr(const json& obj, const char* key, const std::string& field, const std::string& def) const {
    if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return def;
    return Str(obj, key, field);
  }
  bool BoolOr(const json& obj, const char* key, const std::string& field, bool def) const {
    if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return def;
    if (!obj[key].is_boolean()) Fail(field + "." + key, "expected a bool");
    return obj[key].get<bool>();
  }
  int64_t IntOr(const json& obj, const char* key, const std::string& field, int64_t def) const {
    if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return def;
    if (!obj[key].is_number_integer()) Fail(field + "." + key, "expected an integer");
    return obj[key].get<int64_t>();
  }
  const json& Arr(const json& obj, const char* key, const std::string& field) const {
    const json& v = Get(obj, key, field);
    if (!v.is_array()) Fail(field + "." + key, "expected an array");
    return v;
  }
  // {"String": s} or {"Regex": r}
  std::pair<std::string, bool> Pattern(const json& obj, const std::string& field) const {
    const json& p = Get(obj, "pattern", field);
    if (p.is_object() && p.contains("String") && p["String"].is_string()) return {p["String"].get<std::string>(), false};
    if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) return {p["Regex"].get<std::string>(), true};
    Fail(field + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
  }
  const std::string& source() const { return source_; }

 private:
  const std::string& source_;
};

std::unique_ptr<Normalizer> MakeNormalizer(const Ctx& c, const json& j, const std::string& field) {
  if (j.is_null()) return nullptr;
  std::string type = c.Str(j, "type", field);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    const json& arr = c.Arr(j, "normalizers", field);
    for (size_t i = 0; i < arr.size(); ++i) {
      auto n = MakeNormalizer(c, arr[i], field + ".normalizers[" + std::to_string(i) + "]");
      if (n) parts.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(static_cast<int>(NormalForm::kNFC));
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(static_cast<int>(NormalForm::kNFD));
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(static_cast<int>(NormalForm::kNFKC));
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(static_cast<int>(NormalForm::kNFKD));
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(c.Str(j, "prepend", field));
  if (type == "Replace") {
    auto [pat, re] = c.Pattern(j, field);
    return std::make_unique<ReplaceNormalizer>(pat, re, c.Str(j, "content", field));
  }
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(c.BoolOr(j, "strip_left", field, true),
                                             c.BoolOr(j, "strip_right", field, true));
  c.Fail(field + ".type", "unsupported normalizer '" + type + "'");
}

PrependScheme Scheme(const Ctx& c, const json& j, const std::string& field) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") return PrependScheme::kAlways;
    if (s == "never") return PrependScheme::kNever;
    if (s == "first") return PrependScheme::kFirst;
    c.Fail(field + ".prepend_scheme", "unknown value '" + s + "'");
  }
  return c.BoolOr(j, "add_prefix_space", field, true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

std::unique_ptr<PreTokenizer> MakePreTokenizer(const Ctx& c, const json& j, const std::string& field) {
  if (j.is_null()) return nullptr;
  std::string type = c.Str(j, "type", field);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    const json& arr = c.Arr(j, "pretokenizers", field);
    for (size_t i = 0; i < arr.size(); ++i) {
      auto p = MakePreTokenizer(c, arr[i], field + ".pretokenizers[" + std::to_string(i) + "]");
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    auto [pat, re] = c.Pattern(j, field);
    std::string b = c.StrOr(j, "behavior", field, "Isolated");
    SplitBehavior behavior;
    if (b == "Isolated") behavior = SplitBehavior::kIsolated;
    else if (b == "Removed") behavior = SplitBehavior::kRemoved;
    else if (b == "MergedWithPrevious") behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") behavior = SplitBehavior::kMergedWithNext;
    else if (b == "Contiguous") behavior = SplitBehavior::kContiguous;
    else c.Fail(field + ".behavior", "unknown value '" + b + "'");
    try {
      return std::make_unique<SplitPreTokenizer>(pat, re, behavior, c.BoolOr(j, "invert", field, false));
    } catch (const Error& e) {
      c.Fail(field + ".pattern", e.what());
    }
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(c.BoolOr(j, "add_prefix_space", field, true),
                                                   c.BoolOr(j, "use_regex", field, true));
  if (type == "Metaspace")
    return std::make_unique<MetaspacePreTokenizer>(c.StrOr(j, "replacement", field, "\xE2\x96\x81"),
                                                   Scheme(c, j, field), c.BoolOr(j, "split", field, true));
  if (type == "Digits")
    return std::make_unique<DigitsPreTokenizer>(c.BoolOr(j, "individual_digits", field, false));
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>(false);
  if (type == "WhitespaceSplit") return std::make_unique<WhitespacePreTokenizer>(true);
  c.Fail(field + ".type", "unsupported pre-tokenizer '" + type + "'");
}

std::unique_ptr<Decoder> MakeDecoder(const Ctx& c, const json& j, const std::string& field) {
  if (j.is_null()) return nullptr;
  std::string type = c.Str(j, "type", field);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    const json& arr = c.Arr(j, "decoders", field);
    for (size_t i = 0; i < arr.size(); ++i) {
      auto d = MakeDecoder(c, arr[i], field + ".decoders[" + std::to_string(i) + "]");
      if (d) parts.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace")
    return std::make_unique<MetaspaceDecoder>(c.StrOr(j, "replacement", field, "\xE2\x96\x81"),
                                              Scheme(c, j, field) != PrependScheme::kNever);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    int64_t start = c.IntOr(j, "start", field, 0), stop = c.IntOr(j, "stop", field, 0);
    if (start < 0 || stop < 0) c.Fail(field, "negative strip count");
    return std::make_unique<StripDecoder>(c.Str(j, "content", field), static_cast<size_t>(start),
                                          static_cast<size_t>(stop));
  }
  if (type == "Replace") {
    auto [pat, re] = c.Pattern(j, field);
    return std::make_unique<ReplaceDecoder>(pat, re, c.Str(j, "content", field));
  }
  if (type == "WordPiece")
    return std::make_unique<WordPieceDecoder>(c.StrOr(j, "prefix", field, "##"), c.BoolOr(j, "cleanup", field, true));
  c.Fail(field + ".type", "unsupported decoder '" + type + "'");
}

// Resolves a token string to an id through the added tokens, then the model.
std::optional<int32_t> Resolve(const TokenizerParts& p, const std::string& token) {
  for (const AddedToken& t : p.added)
    if (t.content == token) return t.id;
  return p.model->TokenToId(token);
}

void PostProcessor(const Ctx& c, const json& j, const std::string& field, TokenizerParts& p) {
  if (j.is_null()) return;
  std::string type = c.Str(j, "type", field);
  if (type == "Sequence") {
    const json& arr = c.Arr(j, "processors", field);
    for (size_t i = 0; i < arr.size(); ++i)
      PostProcessor(c, arr[i], field + ".processors[" + std::to_string(i) + "]", p);
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type == "TemplateProcessing") {
    const json& single = c.Arr(j, "single", field);
    const json& specials = c.Get(j, "special_tokens", field);
    std::vector<int32_t> pre, post;
    bool seen_a = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const json& item = single[i];
      std::string f = field + ".single[" + std::to_string(i) + "]";
      if (item.is_object() && item.contains("Sequence")) {
        seen_a = true;
        continue;
      }
      if (!item.is_object() || !item.contains("SpecialToken")) c.Fail(f, "expected Sequence or SpecialToken");
      std::string name = c.Str(item["SpecialToken"], "id", f + ".SpecialToken");
      if (!specials.is_object() || !specials.contains(name))
        c.Fail(field + ".special_tokens", "no entry for '" + name + "'");
      const json& ids = c.Arr(specials[name], "ids", field + ".special_tokens." + name);
      for (const json& id : ids) {
        if (!id.is_number_integer()) c.Fail(field + ".special_tokens." + name + ".ids", "expected integers");
        (seen_a ? post : pre).push_back(id.get<int32_t>());
      }
    }
    p.prefix_ids.insert(p.prefix_ids.begin(), pre.begin(), pre.end());
    p.suffix_ids.insert(p.suffix_ids.end(), post.begin(), post.end());
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto pair_id = [&](const char* key) {
      const json& v = c.Get(j, key, field);
      if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer()) c.Fail(field + "." + key, "expected [token, id]");
      return v[1].get<int32_t>();
    };
    p.prefix_ids.insert(p.prefix_ids.begin(), pair_id("cls"));
    p.suffix_ids.push_back(pair_id("sep"));
    return;
  }
  c.Fail(field + ".type", "unsupported post-processor '" + type + "'");
}

// tokenizer_config.json's bos_token/eos_token: a string, {"content": ...} or null.
std::optional<std::string> ConfigToken(const json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

std::unique_ptr<Model> MakeModel(const Ctx& c, const json& m) {
  const std::string field = "model";
  std::string type = c.StrOr(m, "type", field, "BPE");
  if (type != "BPE") c.Fail("model.type", "unsupported model '" + type + "' (only BPE)");
  if (!m.contains("dropout") || m["dropout"].is_null() || (m["dropout"].is_number() && m["dropout"].get<double>() == 0.0)) {
  } else {
    c.Fail("model.dropout", "BPE dropout is not supported");
  }
  const json& vj = c.Get(m, "vocab", field);
  if (!vj.is_object()) c.Fail("model.vocab", "expected an object");
  Vocab vocab;
  vocab.reserve(vj.size());
  for (auto it = vj.begin(); it != vj.end(); ++it) {
    if (!it.value().is_number_integer()) c.Fail("model.vocab." + it.key(), "expected an integer id");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (1 << 30)) c.Fail("model.vocab." + it.key(), "id out of range");
    vocab.emplace(it.key(), static_cast<int32_t>(id));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (m.contains("merges") && !m["merges"].is_null()) {
    const json& mj = c.Arr(m, "merges", field);
    merges.reserve(mj.size());
    for (size_t i = 0; i < mj.size(); ++i) {
      const json& e = mj[i];
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          c.Fail("model.merges[" + std::to_string(i) + "]", "expected two tokens separated by one space");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        c.Fail("model.merges[" + std::to_string(i) + "]", "expected \"a b\" or [\"a\", \"b\"]");
      }
    }
  }
  BpeOptions o;
  if (m.contains("unk_token") && m["unk_token"].is_string()) o.unk_token = m["unk_token"].get<std::string>();
  o.byte_fallback = c.BoolOr(m, "byte_fallback", field, false);
  o.fuse_unk = c.BoolOr(m, "fuse_unk", field, false);
  o.ignore_merges = c.BoolOr(m, "ignore_merges", field, false);
  o.continuing_subword_prefix = c.StrOr(m, "continuing_subword_prefix", field, "");
  o.end_of_word_suffix = c.StrOr(m, "end_of_word_suffix", field, "");
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(o), c.source());
}

bool IsLlamaClass(const std::string& cls) {
  return cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast" || cls == "CodeLlamaTokenizer" ||
         cls == "CodeLlamaTokenizerFast" || cls == "GemmaTokenizer" || cls == "GemmaTokenizerFast";
}

}  // namespace

TokenizerParts PartsFromTokenizerJson(const std::string& json_text, const std::string& config_text,
                                      const std::string& source) {
  Ctx c(source);
  json j, cfg;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(source + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) c.Fail("(root)", "expected an object");
  if (!config_text.empty()) {
    try {
      cfg = json::parse(config_text);
    } catch (const json::exception& e) {
      throw Error(source + " (tokenizer_config.json): invalid JSON: " + e.what());
    }
  }
  TokenizerParts p;
  p.source = source;
  try {
    p.model = MakeModel(c, c.Get(j, "model", ""));
    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
      const json& arr = c.Arr(j, "added_tokens", "");
      for (size_t i = 0; i < arr.size(); ++i) {
        std::string f = "added_tokens[" + std::to_string(i) + "]";
        const json& t = arr[i];
        AddedToken a;
        int64_t id = c.IntOr(t, "id", f, -1);
        if (id < 0 || id >= (1 << 30)) c.Fail(f + ".id", "missing or out of range");
        a.id = static_cast<int32_t>(id);
        a.content = c.Str(t, "content", f);
        a.special = c.BoolOr(t, "special", f, false);
        a.normalized = c.BoolOr(t, "normalized", f, !a.special);
        a.lstrip = c.BoolOr(t, "lstrip", f, false);
        a.rstrip = c.BoolOr(t, "rstrip", f, false);
        a.single_word = c.BoolOr(t, "single_word", f, false);
        p.added.push_back(std::move(a));
      }
    }
    p.normalizer = MakeNormalizer(c, j.value("normalizer", json()), "normalizer");
    p.pre_tokenizer = MakePreTokenizer(c, j.value("pre_tokenizer", json()), "pre_tokenizer");
    p.decoder = MakeDecoder(c, j.value("decoder", json()), "decoder");
    PostProcessor(c, j.value("post_processor", json()), "post_processor", p);
  } catch (const json::exception& e) {
    throw Error(source + ": malformed tokenizer.json: " + e.what());
  }

  // tokenizer_config.json: special token strings, cleanup, and add_bos_token/add_eos_token.
  std::optional<std::string> bos = ConfigToken(cfg, "bos_token"), eos = ConfigToken(cfg, "eos_token");
  if (bos) {
    p.bos_token = *bos;
    p.bos_id = Resolve(p, *bos);
  } else if (!p.prefix_ids.empty()) {
    p.bos_id = p.prefix_ids.front();
    if (const std::string* t = p.model->IdToToken(*p.bos_id)) p.bos_token = *t;
    for (const AddedToken& t : p.added)
      if (t.id == *p.bos_id) p.bos_token = t.content;
  }
  if (eos) {
    p.eos_token = *eos;
    p.eos_id = Resolve(p, *eos);
  }
  if (cfg.is_object()) {
    if (cfg.contains("clean_up_tokenization_spaces") && cfg["clean_up_tokenization_spaces"].is_boolean())
      p.clean_up_spaces = cfg["clean_up_tokenization_spaces"].get<bool>();
    std::string cls = cfg.value("tokenizer_class", std::string());
    // transformers rebuilds the post-processor from these flags for Llama-style classes (defaults: BOS on,
    // EOS off) and, in recent versions, for any fast tokenizer whose config sets them explicitly.
    bool explicit_flags = (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) ||
                          (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean());
    if (IsLlamaClass(cls) || explicit_flags) {
      bool add_bos = cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()
                         ? cfg["add_bos_token"].get<bool>() : true;
      bool add_eos = cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()
                         ? cfg["add_eos_token"].get<bool>() : false;
      p.prefix_ids.clear();
      p.suffix_ids.clear();
      if (add_bos && p.bos_id) p.prefix_ids.push_back(*p.bos_id);
      if (add_eos && p.eos_id) p.suffix_ids.push_back(*p.eos_id);
    }
  }
  return p;
}

}  // namespace pensieve::tok
