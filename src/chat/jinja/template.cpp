#include "chat/jinja/template.h"

#include "chat/jinja/error.h"
#include "chat/jinja/parser.h"

namespace pensieve::jinja {

Template::Template(const std::string& source, const LexOptions& options) : body_(Parse(Lex(source, options))) {
  Validate(body_);
}

std::string Template::Render(const nlohmann::ordered_json& context, std::function<std::tm()> now,
                             const RenderLimits& limits) const {
  if (!now) {
    now = [] {
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      return tm;
    };
  }
  auto globals = std::make_shared<Frame>();
  AddStandardGlobals(*globals, std::move(now));
  if (!context.is_null()) {
    if (!context.is_object()) throw JinjaError("TypeError", "template context must be a JSON object");
    for (auto it = context.begin(); it != context.end(); ++it) globals->vars[it.key()] = Value::FromJson(it.value());
  }
  std::string out = jinja::Render(body_, globals, limits);
  globals->vars.clear();
  return out;
}

}  // namespace pensieve::jinja
