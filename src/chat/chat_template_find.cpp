// Locating a model's chat template on disk (HF directory layouts).
#include <filesystem>

#include "chat/chat_template.h"
#include "formats/gguf.h"
#include "util/file.h"

namespace pensieve::chat {
namespace {

namespace fs = std::filesystem;

// The file's text, or nothing when nothing is there; anything there that is not a readable regular file of
// bounded size is an Error naming it (util/file.h).
std::optional<std::string> ReadFile(const fs::path& p) {
  if (!PathPresent(p.string())) return std::nullopt;
  return ReadRegularFile(p.string());
}

Json ParseJsonFile(const fs::path& p, const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

bool IsGguf(const std::string& model_path) {
  fs::path p(model_path);
  std::error_code ec;
  return p.extension() == ".gguf" && fs::is_regular_file(p, ec);
}

// GGUF keeps the default template under tokenizer.chat_template and named ones under
// tokenizer.chat_template.<name> (llama.cpp's convention).
std::vector<std::pair<std::string, std::string>> GgufTemplates(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  auto f = GgufFile::Open(path);
  const std::string prefix = "tokenizer.chat_template";
  for (const auto& [key, value] : f->metadata()) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    if (value.type != GgufType::kString) throw Error(path + ": " + key + " is not a string");
    if (key.size() == prefix.size()) {
      out.insert(out.begin(), {"default", value.string_value});
    } else if (key[prefix.size()] == '.') {
      out.emplace_back(key.substr(prefix.size() + 1), value.string_value);
    }
  }
  return out;
}

fs::path ModelDir(const std::string& model_path) {
  fs::path p(model_path);
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p.parent_path();
  return p;
}

// chat_template value of tokenizer_config.json: a string, or [{name, template}, ...].
std::vector<std::pair<std::string, std::string>> ConfigTemplates(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  fs::path cfg = dir / "tokenizer_config.json";
  auto text = ReadFile(cfg);
  if (!text) return out;
  Json j = ParseJsonFile(cfg, *text);
  if (!j.is_object() || !j.contains("chat_template")) return out;
  const Json& t = j["chat_template"];
  if (t.is_string()) {
    out.emplace_back("default", t.get<std::string>());
  } else if (t.is_array()) {
    for (const Json& e : t) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
          !e["template"].is_string())
        throw Error(cfg.string() + ": chat_template list entries need string 'name' and 'template'");
      out.emplace_back(e["name"].get<std::string>(), e["template"].get<std::string>());
    }
  } else if (!t.is_null()) {
    throw Error(cfg.string() + ": chat_template must be a string or a list of {name, template}");
  }
  return out;
}

// Separate template files, which transformers lets override tokenizer_config.json.
std::optional<std::string> FileTemplate(const fs::path& dir) {
  if (auto t = ReadFile(dir / "chat_template.jinja")) return t;
  fs::path js = dir / "chat_template.json";
  if (auto text = ReadFile(js)) {
    Json j = ParseJsonFile(js, *text);
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
      return j["chat_template"].get<std::string>();
    throw Error(js.string() + ": expected {\"chat_template\": \"...\"}");
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> FindChatTemplate(const std::string& model_path) {
  if (IsGguf(model_path)) {
    for (const auto& [name, tmpl] : GgufTemplates(model_path))
      if (name == "default") return tmpl;
    return std::nullopt;
  }
  fs::path dir = ModelDir(model_path);
  if (auto t = FileTemplate(dir)) return t;
  auto named = ConfigTemplates(dir);
  for (const auto& [name, tmpl] : named)
    if (name == "default") return tmpl;
  if (!named.empty()) return named.front().second;
  return std::nullopt;
}

std::string ChatTemplateOrigin(const std::string& model_path) {
  if (IsGguf(model_path)) return model_path + " (tokenizer.chat_template)";
  fs::path dir = ModelDir(model_path);
  for (const char* file : {"chat_template.jinja", "chat_template.json"}) {
    if (PathPresent((dir / file).string())) return (dir / file).string();
  }
  return (dir / "tokenizer_config.json").string() + " (chat_template)";
}

std::optional<std::string> FindChatTemplateFor(const std::string& model_path, bool with_tools) {
  if (with_tools)
    if (auto t = FindNamedChatTemplate(model_path, "tool_use")) return t;
  return FindChatTemplate(model_path);
}

std::optional<std::string> FindNamedChatTemplate(const std::string& model_path, const std::string& name) {
  if (IsGguf(model_path)) {
    for (const auto& [n, tmpl] : GgufTemplates(model_path))
      if (n == name) return tmpl;
    return std::nullopt;
  }
  fs::path dir = ModelDir(model_path);
  for (const auto& [n, tmpl] : ConfigTemplates(dir))
    if (n == name) return tmpl;
  if (name == "default") return FileTemplate(dir);
  return std::nullopt;
}

std::vector<std::string> ChatTemplateNames(const std::string& model_path) {
  std::vector<std::string> names;
  if (IsGguf(model_path)) {
    for (const auto& kv : GgufTemplates(model_path)) names.push_back(kv.first);
    return names;
  }
  fs::path dir = ModelDir(model_path);
  bool has_default = false;
  for (const auto& [n, tmpl] : ConfigTemplates(dir)) {
    names.push_back(n);
    has_default |= n == "default";
  }
  if (!has_default && FileTemplate(dir)) names.insert(names.begin(), "default");
  return names;
}

namespace {

// tokenizer_config.json writes special tokens as strings or as AddedToken objects {"content": ...}.
std::string ConfigToken(const Json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return "";
  const Json& t = cfg[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return "";
}

std::string GgufToken(const GgufFile& f, const char* id_key) {
  auto id = f.GetInt(id_key);
  const auto* tokens = f.GetStringArray("tokenizer.ggml.tokens");
  if (!id || !tokens) return "";
  if (*id < 0 || static_cast<uint64_t>(*id) >= tokens->size())
    throw Error(f.name() + ": " + id_key + " = " + std::to_string(*id) + " is outside the vocabulary");
  return (*tokens)[static_cast<size_t>(*id)];
}

}  // namespace

SpecialTokens FindSpecialTokens(const std::string& model_path) {
  SpecialTokens t;
  if (IsGguf(model_path)) {
    auto f = GgufFile::Open(model_path);
    t.bos = GgufToken(*f, "tokenizer.ggml.bos_token_id");
    t.eos = GgufToken(*f, "tokenizer.ggml.eos_token_id");
    return t;
  }
  fs::path cfg = ModelDir(model_path) / "tokenizer_config.json";
  if (auto text = ReadFile(cfg)) {
    Json j = ParseJsonFile(cfg, *text);
    t.bos = ConfigToken(j, "bos_token");
    t.eos = ConfigToken(j, "eos_token");
  }
  return t;
}

}  // namespace pensieve::chat
