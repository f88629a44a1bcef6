// Fuzzes config.json parsing (and the MLX quantization block): any text must parse into a consistent config
// or throw pensieve::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "formats/model_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    pensieve::ModelConfig c =
        pensieve::ParseModelConfig(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    // Invariants the parser promises.
    if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0 ||
        c.rotary_dim <= 0 || c.rotary_dim % 2 != 0 || c.rotary_dim > c.head_dim)
      std::abort();
    auto inv = c.RopeInvFreq(0);
    if (static_cast<int64_t>(inv.size()) != c.rotary_dim / 2) std::abort();
    c.RopeInvFreq(c.max_position_embeddings + 1);
    if (c.quantization) c.quantization->ForModule("model.layers.0.mlp.down_proj");
  } catch (const pensieve::Error&) {
  }
  return 0;
}
