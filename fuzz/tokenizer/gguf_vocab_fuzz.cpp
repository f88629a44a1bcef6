// libFuzzer target: a GGUF vocabulary (tokenizer.ggml.*) loaded from fuzzed bytes, then encode/decode.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // LoadTokenizer takes a path: write the bytes to a per-process temporary file.
  static const std::string path = "/tmp/pensieve_gguf_vocab_fuzz_" + std::to_string(::getpid()) + ".gguf";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto tok = pensieve::LoadTokenizer(path);
    auto ids = tok->Encode("Hello  world\n\t123 ünïcödé 🦙");
    (void)tok->Decode(ids);
  } catch (const pensieve::Error&) {
  }
  return 0;
}
