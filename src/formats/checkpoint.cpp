#include "formats/checkpoint.h"

#include "formats/gguf.h"
#include "formats/gguf_model.h"

namespace pensieve {

Checkpoint OpenCheckpoint(const std::string& path) {
  if (IsGgufFile(path)) return LoadGgufCheckpoint(path);
  ModelConfig config = LoadModelConfig(path);
  return {std::move(config), TensorStore::Open(path)};
}

ModelConfig ReadCheckpointConfig(const std::string& path) {
  return IsGgufFile(path) ? GgufModelConfig(path) : LoadModelConfig(path);
}

}  // namespace pensieve
