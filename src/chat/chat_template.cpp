#include "chat/chat_template.h"

#include "chat/jinja/error.h"
#include "chat/jinja/template.h"

namespace pensieve::chat {

const char kChatMLFallbackTemplate[] =
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

namespace {

TemplateError Convert(const jinja::JinjaError& e) {
  return TemplateError(e.what(), e.kind(), e.detail(), e.line(), e.column());
}

}  // namespace

struct ChatTemplate::Impl {
  std::string source;
  std::unique_ptr<jinja::Template> tmpl;
};

ChatTemplate::ChatTemplate(const std::string& source) : impl_(std::make_unique<Impl>()) {
  impl_->source = source;
  try {
    jinja::LexOptions options;
    options.trim_blocks = true;  // transformers' environment
    options.lstrip_blocks = true;
    impl_->tmpl = std::make_unique<jinja::Template>(source, options);
  } catch (const jinja::JinjaError& e) {
    throw Convert(e);
  }
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

const std::string& ChatTemplate::source() const { return impl_->source; }

std::string ChatTemplate::Render(const RenderInput& input) const {
  // The variables transformers passes: tools only when given, then the caller's extras on top.
  Json context = Json::object();
  context["messages"] = input.messages;
  if (!input.tools.is_null()) context["tools"] = input.tools;
  context["add_generation_prompt"] = input.add_generation_prompt;
  context["bos_token"] = input.bos_token;
  context["eos_token"] = input.eos_token;
  if (input.extra.is_object())
    for (auto it = input.extra.begin(); it != input.extra.end(); ++it) context[it.key()] = it.value();
  std::function<std::tm()> now;
  if (input.now) {
    std::tm fixed = *input.now;
    now = [fixed] { return fixed; };
  }
  try {
    return impl_->tmpl->Render(context, now);
  } catch (const jinja::JinjaError& e) {
    throw Convert(e);
  }
}

}  // namespace pensieve::chat
