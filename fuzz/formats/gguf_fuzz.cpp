// libFuzzer target: the GGUF reader, then the weight loader (config from the metadata, every tensor converted
// into the Hugging Face-named store) on whatever parsed.
#include <cstdint>
#include <span>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = pensieve::GgufFile::Parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    (void)f->GetString("tokenizer.ggml.model");
    (void)f->GetStringArray("tokenizer.ggml.tokens");
    (void)pensieve::LoadGgufCheckpoint(*f);
  } catch (const pensieve::Error&) {
  }
  return 0;
}
