#pragma once
// Chat templates: renders a conversation exactly as transformers' apply_chat_template does with Python
// Jinja2 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols; tojson like
// json.dumps(ensure_ascii=False); raise_exception; strftime_now; the {% generation %} tag).
//
// Contract: JSON values are nlohmann::ordered_json so object key order is kept (it shows in tojson output).
// Render() throws TemplateError carrying the template's own raise_exception message, or a parse/runtime
// error naming the line.
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace pensieve::chat {

using Json = nlohmann::ordered_json;

class TemplateError : public Error {
 public:
  using Error::Error;
};

struct RenderInput {
  Json messages = Json::array();  // [{role, content, tool_calls?, ...}] in transformers' shape
  Json tools;                     // null, or array of {"type":"function","function":{name,description,parameters}}
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  Json extra = Json::object();   // further variables, e.g. {"enable_thinking": false}
};

class ChatTemplate {
 public:
  // Parses the source once; throws TemplateError on syntax errors.
  explicit ChatTemplate(const std::string& source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  std::string Render(const RenderInput& input) const;
  const std::string& source() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The chat template of a model: `chat_template` in tokenizer_config.json (a string, or a list of
// {name, template} where "default" wins), else chat_template.jinja, else the GGUF key tokenizer.chat_template.
// nullopt when the model has none (callers fall back to ChatML and warn).
std::optional<std::string> FindChatTemplate(const std::string& model_path);

}  // namespace pensieve::chat
