// libFuzzer target: tokenizer.json loading, then encode/decode of a fixed string and of the input's tail.
#include <cstdint>
#include <string>

#include "tokenizer/pipeline_tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  // Input layout: JSON text, optionally followed by "\0" and a string to encode.
  std::string json = in, text = "Hello  world\n\t123 ünïcödé 🦙<s>";
  if (size_t z = in.find('\0'); z != std::string::npos) {
    json = in.substr(0, z);
    text = in.substr(z + 1);
  }
  try {
    auto tok = pensieve::tok::MakePipelineTokenizer(pensieve::tok::PartsFromTokenizerJson(json, "", "fuzz.json"));
    auto ids = tok->Encode(text);
    (void)tok->Decode(ids);
    pensieve::StreamDecoder sd(*tok);
    for (int32_t id : ids) (void)sd.Push(id);
    (void)sd.Flush();
  } catch (const pensieve::Error&) {
  }
  return 0;
}
