// libFuzzer target for the Jinja interpreter: the input is a template (first byte picks the whitespace
// options); it is parsed and rendered against a small chat-shaped context under tight limits. Any
// JinjaError is fine; crashes, sanitizer reports, hangs and leaks are bugs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/jinja/error.h"
#include "chat/jinja/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using pensieve::jinja::LexOptions;
  LexOptions options;
  options.trim_blocks = data[0] & 1;
  options.lstrip_blocks = data[0] & 2;
  std::string source(reinterpret_cast<const char*>(data + 1), size - 1);
  static const nlohmann::ordered_json kContext = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Hi <b>\u00e9"},
                 {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                   "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 2.5]}}}]},
                 {"role": "tool", "content": "{\"r\": 1}"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
               "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
  pensieve::jinja::RenderLimits limits;
  limits.max_steps = 20000;
  limits.max_output = 1 << 20;
  limits.max_items = 100000;
  limits.max_call_depth = 32;
  try {
    pensieve::jinja::Template t(source, options);
    t.Render(kContext, [] { return std::tm{}; }, limits);
  } catch (const pensieve::jinja::JinjaError&) {
  }
  return 0;
}
