#pragma once
// Chat templates: renders a conversation exactly as transformers' apply_chat_template does with Python
// Jinja2 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols; tojson like
// json.dumps(ensure_ascii=False); raise_exception; strftime_now; the {% generation %} tag).
//
// Contract: JSON values are nlohmann::ordered_json so object key order is kept (it shows in tojson output).
// Render() throws TemplateError carrying the template's own raise_exception message, or a parse/runtime
// error naming the line.
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace pensieve::chat {

using Json = nlohmann::ordered_json;

class TemplateError : public Error {
 public:
  using Error::Error;
  // kind: the Python exception Jinja2 would raise ("UndefinedError", "TypeError", "TemplateSyntaxError",
  // ...) or "raise_exception" for the template's own raise_exception(msg), whose what() is exactly msg.
  // line/column: 1-based position in the template source, 0 when unknown.
  TemplateError(const std::string& what, std::string kind, std::string detail, int line, int column)
      : Error(what), kind_(std::move(kind)), detail_(std::move(detail)), line_(line), column_(column) {}
  const std::string& kind() const { return kind_; }
  const std::string& detail() const { return detail_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string kind_;
  std::string detail_;
  int line_ = 0;
  int column_ = 0;
};

struct RenderInput {
  Json messages = Json::array();  // [{role, content, tool_calls?, ...}] in transformers' shape
  Json tools;                     // null, or array of {"type":"function","function":{name,description,parameters}}
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  Json extra = Json::object();   // further variables, e.g. {"enable_thinking": false}
  std::optional<std::tm> now;    // the clock strftime_now reads (local time when unset); tests pin it
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

// The chat template of a model, looked up as transformers does: chat_template.jinja, else chat_template.json
// ({"chat_template": ...}), else `chat_template` in tokenizer_config.json (a string, or a list of
// {name, template} where "default" wins). `model_path` is the model directory or a file inside it.
// For a .gguf file: the metadata key tokenizer.chat_template (named ones: tokenizer.chat_template.<name>).
// nullopt when the model has none (callers fall back to ChatML and warn).
std::optional<std::string> FindChatTemplate(const std::string& model_path);

// Where FindChatTemplate(model_path) takes its template from, for messages: "<dir>/chat_template.jinja",
// "<dir>/chat_template.json", "<dir>/tokenizer_config.json (chat_template)" or "<file> (tokenizer.chat_template)".
std::string ChatTemplateOrigin(const std::string& model_path);

// The template transformers would pick: the "tool_use" one when tools are passed and the model names one,
// else FindChatTemplate().
std::optional<std::string> FindChatTemplateFor(const std::string& model_path, bool with_tools);

// A named template from tokenizer_config.json's list form (e.g. "tool_use"); nullopt when absent.
std::optional<std::string> FindNamedChatTemplate(const std::string& model_path, const std::string& name);
// Names of all templates a model offers ("default" for a plain string template).
std::vector<std::string> ChatTemplateNames(const std::string& model_path);

// bos_token/eos_token text as the template sees it: tokenizer_config.json (strings or {"content": ...}),
// or a GGUF file's tokenizer.ggml.{bos,eos}_token_id looked up in tokenizer.ggml.tokens. Empty when absent.
struct SpecialTokens {
  std::string bos;
  std::string eos;
};
SpecialTokens FindSpecialTokens(const std::string& model_path);

// The documented fallback for models without a template: ChatML
//   <|im_start|>{role}\n{content}<|im_end|>\n ... and "<|im_start|>assistant\n" when a reply is wanted.
extern const char kChatMLFallbackTemplate[];

}  // namespace pensieve::chat
