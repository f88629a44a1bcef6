#pragma once
// A model checkpoint as the loader sees it, whatever its format: the Hugging Face config and a tensor store under
// Hugging Face names (model/weights.h binds them).
#include <string>

#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace pensieve {

struct Checkpoint {
  ModelConfig config;
  TensorStore store;
};

// A safetensors model directory or file (config.json beside it), or a GGUF file (formats/gguf_model.h). Throws
// pensieve::Error naming the path and what is wrong.
Checkpoint OpenCheckpoint(const std::string& path);
// Its config alone, cheaply (for sizing before a load; a GGUF's quantization is not described).
ModelConfig ReadCheckpointConfig(const std::string& path);

}  // namespace pensieve
