// Fuzzes what the HTTP layer hands the API adapters: arbitrary bytes as a request body, through the JSON
// guard and the Anthropic, count_tokens and OpenAI parsers. Anything but RequestError is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/anthropic.h"
#include "api/json_body.h"
#include "api/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pensieve::api;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    Json j = ParseJsonBody(body);
    try { ParseAnthropicRequest(j, {false, false}); } catch (const RequestError&) {}
    try { ParseAnthropicRequest(j, {true, false}); } catch (const RequestError&) {}
    OpenAIOptions o;
    try { ParseOpenAIChatRequest(j, 16, &o); } catch (const RequestError&) {}
    try { ParseOpenAICompletionRequest(j, &o); } catch (const RequestError&) {}
  } catch (const RequestError&) {
  }
  return 0;
}
