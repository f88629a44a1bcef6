// Fuzzes the safetensors header parser: any bytes must either parse into entries that lie inside the buffer
// or throw pensieve::Error. Nothing else (crash, other exception, sanitizer report) is allowed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "formats/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = pensieve::ParseSafetensorsHeader(reinterpret_cast<const std::byte*>(data), size, "fuzz");
    for (const auto& e : h.tensors) {
      // The contract: every tensor lies inside the data area.
      if (e.begin > e.end || h.data_start + e.end > size) std::abort();
    }
  } catch (const pensieve::Error&) {
  }
  return 0;
}
