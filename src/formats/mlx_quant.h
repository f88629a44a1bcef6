#pragma once
// MLX affine quantization: the config (`quantization` / `quantization_config` in config.json), the storage
// layout, and a scalar reference quantizer/dequantizer (for `pensieve quantize` and tests; kernels have
// their own fast paths).
//
// Storage of a quantized module `<m>` whose float weight is W [rows, cols] (Linear: [out, in]; Embedding:
// [vocab, hidden]):
//   <m>.weight  U32 [rows, cols * bits / 32]   packed codes q in [0, 2^bits - 1]
//   <m>.scales  float dtype of the model (BF16/F16/F32) [rows, cols / group_size]
//   <m>.biases  same dtype and shape as scales
//   <m>.bias    (optional, Linear bias) unchanged float [rows]
// Each row is its own little-endian bit stream: code j of a row occupies bits [j*bits, (j+1)*bits) of the
// stream formed by the row's u32 words in order (word k holds stream bits [32k, 32k+32), bit 0 = LSB).
//   bits 2, 4, 8: code j lives in word j*bits/32 at shift (j*bits)%32, never crossing a word.
//   bits 3, 5, 6: codes may straddle two words (e.g. 3-bit code 10 = stream bits 30..32).
//   (MLX writes 3/5/6 bits as byte triples/quintuples; read as u32 little-endian that is the same stream.)
// Dequantized value: W[r][j] = scales[r][j / group_size] * q + biases[r][j / group_size], computed in f32
// from the stored (rounded) scale and bias.
//
// Which modules are quantized: mlx-lm quantizes a module when `<m>.scales` exists in the weights; its
// parameters come from QuantConfig::ForModule(<m>) (per-module override, else the global bits/group_size).
// A per-module entry `false` means "not quantized" (that module's weight is stored as plain float).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "formats/dtype.h"

namespace pensieve {

struct QuantSpec {
  int bits = 0;        // 0: not quantized
  int group_size = 0;
  bool quantized() const { return bits > 0; }
  // u32 words per row of `cols` elements (cols * bits / 32).
  int64_t PackedCols(int64_t cols) const { return cols * bits / 32; }
  int64_t Groups(int64_t cols) const { return cols / group_size; }
  bool operator==(const QuantSpec&) const = default;
};

// Bits we can decode: 2, 3, 4, 5, 6, 8. Group sizes: 32, 64, 128 (MLX's), or any multiple of 32 >= 32.
bool IsSupportedQuant(const QuantSpec& s);
// Throws Error naming `where` and the values when unsupported.
void RequireSupportedQuant(const QuantSpec& s, const std::string& where);

struct QuantConfig {
  QuantSpec global;  // {bits, group_size} at top level
  // Per-module entries keyed by module path ("model.layers.0.mlp.down_proj"); a spec with bits 0 = excluded.
  std::map<std::string, QuantSpec, std::less<>> modules;

  // Override for `module_path` if any, else the global spec.
  QuantSpec ForModule(std::string_view module_path) const;

  // Parses the `quantization` object; `where` (e.g. "/path/config.json: quantization") prefixes errors.
  // Accepts "mode": "affine" (or absent); other modes (mxfp4, ...) are an Error. Unknown keys whose values
  // are not objects/false are ignored (e.g. "quant_method").
  static QuantConfig FromJson(const nlohmann::json& j, const std::string& where);
  // The JSON mlx-lm writes: {"group_size": g, "bits": b, <module>: {...} | false ...}.
  nlohmann::json ToJson() const;
};

// Reference affine quantizer for one row of `cols` values (cols % group_size == 0; cols * bits % 32 == 0).
// MLX's algorithm (mlx/backend/cpu/quantized.cpp, `quantize`), per group, all in f32:
//   scale = max((max - min) / (2^bits - 1), 1e-7), negated unless |min| > |max|;
//   edge = |min| > |max| ? min : max; q0 = rint(edge / scale);
//   if q0 != 0: scale = edge / q0, bias = edge (the edge value is represented exactly) else bias = 0;
//   q = clamp(rint((w - bias) / scale), 0, 2^bits - 1), using the f32 scale/bias;
// scales/biases are then stored rounded to `param_dtype` (BF16/F16/F32) into scales_out/biases_out
// (raw bytes, Groups(cols) elements each). packed_out receives PackedCols(cols) words.
void QuantizeAffineRow(const float* w, int64_t cols, const QuantSpec& spec, uint32_t* packed_out,
                       DType param_dtype, void* scales_out, void* biases_out);

// Extracts code j of a packed row (any supported bits).
inline uint32_t UnpackCode(const uint32_t* packed_row, int64_t j, int bits) {
  uint64_t bit = static_cast<uint64_t>(j) * bits;
  uint64_t word = bit >> 5;
  unsigned shift = bit & 31;
  uint64_t v = packed_row[word] >> shift;
  if (shift + bits > 32) v |= static_cast<uint64_t>(packed_row[word + 1]) << (32 - shift);
  return static_cast<uint32_t>(v & ((1u << bits) - 1));
}

// Reference dequantizer of one row: out[j] = scale * q + bias (scales/biases of dtype param_dtype).
void DequantizeRow(const uint32_t* packed_row, const void* scales_row, const void* biases_row,
                   DType param_dtype, int64_t cols, const QuantSpec& spec, float* out);

}  // namespace pensieve
