// Locating a model's chat template on disk (HF directory layouts).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/chat_template.h"

namespace pensieve::chat {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> ReadFile(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json ParseJsonFile(const fs::path& p, const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
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
  fs::path dir = ModelDir(model_path);
  if (auto t = FileTemplate(dir)) return t;
  auto named = ConfigTemplates(dir);
  for (const auto& [name, tmpl] : named)
    if (name == "default") return tmpl;
  if (!named.empty()) return named.front().second;
  return std::nullopt;
}

std::optional<std::string> FindNamedChatTemplate(const std::string& model_path, const std::string& name) {
  fs::path dir = ModelDir(model_path);
  for (const auto& [n, tmpl] : ConfigTemplates(dir))
    if (n == name) return tmpl;
  if (name == "default") return FileTemplate(dir);
  return std::nullopt;
}

std::vector<std::string> ChatTemplateNames(const std::string& model_path) {
  fs::path dir = ModelDir(model_path);
  std::vector<std::string> names;
  bool has_default = false;
  for (const auto& [n, tmpl] : ConfigTemplates(dir)) {
    names.push_back(n);
    has_default |= n == "default";
  }
  if (!has_default && FileTemplate(dir)) names.insert(names.begin(), "default");
  return names;
}

}  // namespace pensieve::chat
