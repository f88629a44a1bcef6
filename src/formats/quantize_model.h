#pragma once
// Writing MLX-quantized models: one quantized module into a SafetensorsWriter, and a whole HF model
// directory quantized the way mlx-lm's `convert -q` writes it (used by `pensieve quantize`).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/mlx_quant.h"
#include "formats/safetensors.h"

namespace pensieve {

// Produces row r (cols floats) of the float weight being quantized.
using RowSource = std::function<void(int64_t row, float* out)>;

// Declares `<module>.weight` (U32 [rows, cols*bits/32]), `<module>.scales` and `<module>.biases`
// (param_dtype [rows, cols/group_size]) in `w`, in that order. Rows are pulled from `source` and quantized
// (QuantizeAffineRow) while the writer writes `.weight`; scales and biases are kept (1/16 of the packed size
// at 4 bits) until their turn. Requires cols % group_size == 0 (Error otherwise).
void AddQuantizedWeight(SafetensorsWriter& w, const std::string& module, int64_t rows, int64_t cols,
                        const QuantSpec& spec, DType param_dtype, RowSource source);

// Whether mlx-lm would quantize the tensor `name` of shape `shape`: a 2-D float `<module>.weight` of a
// Linear or Embedding layer (every 2-D `.weight` in the supported architectures) whose last dim is a multiple
// of group_size.
bool ShouldQuantize(const std::string& name, const std::vector<int64_t>& shape, DType dtype, const QuantSpec& spec);

struct QuantizeStats {
  int quantized_tensors = 0;
  int copied_tensors = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::vector<std::string> files;  // written into out_dir (weights, config, tokenizer files)
};

// Quantizes the float model in in_dir into out_dir (created if needed; must not be in_dir): quantizable
// weights become packed weight/scales/biases (scales in each tensor's own float dtype), other tensors are
// copied unchanged; config.json gains "quantization" and "quantization_config" = {"group_size", "bits"};
// tokenizer and generation files are copied. Streams tensor by tensor from the memory-mapped input.
// Throws Error for an already-quantized input, an unsupported spec or an unreadable model.
QuantizeStats QuantizeModelDir(const std::string& in_dir, const std::string& out_dir, const QuantSpec& spec);

// Files copied beside the weights by quantize and random-model --tokenizer (those that exist; tokenizer.json.gz is
// the compressed tokenizer.json that LoadTokenizer also reads).
const std::vector<std::string>& ModelSideFiles();

}  // namespace pensieve
