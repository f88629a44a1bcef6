#pragma once
// Which model a subcommand runs: a path given by the user, or the demo model built into the binary
// (`--model demo`, and `pensieve serve` without --model).
//
// The demo model's files are linked into the binary (demo_model.S). Its weights are used in place from the
// binary's read-only data (TensorStore::FromMemory: no copy); its small text files (config.json,
// tokenizer.json, tokenizer_config.json, generation_config.json) are written once per process to a private
// temporary directory (mode 0700, removed at exit) so the file-based loaders of the tokenizer and the chat
// template read them unchanged.
#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/model.h"

namespace pensieve::cli {

inline constexpr const char* kDemoModelName = "pensieve-demo";

struct ModelSource {
  std::string dir;       // directory with config.json, tokenizer files (for the demo: the temporary directory),
                         // or a GGUF file (the tokenizer and chat template loaders read those too)
  std::string name;      // default model id: the directory's base name, or kDemoModelName
  bool embedded = false; // the demo model built into the binary
};

// "" or "demo" -> the built-in demo model; anything else must be a directory or a GGUF file, returned as
// given. Throws pensieve::Error for a path that is missing or neither, or when the temporary directory cannot
// be written.
ModelSource ResolveModelSource(const std::string& model_arg);

// Model::Load for a path, or over the embedded weights for the demo model.
std::unique_ptr<model::Model> LoadModel(const ModelSource& source, backend::Backend& backend,
                                        const model::LoadOptions& opts);

}  // namespace pensieve::cli
