#include "formats/mlx_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace pensieve {
using nlohmann::json;

bool IsSupportedQuant(const QuantSpec& s) {
  bool bits_ok = s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 5 || s.bits == 6 || s.bits == 8;
  // A group must fill whole u32 words for every supported width: multiples of 32 guarantee it.
  bool group_ok = s.group_size >= 32 && s.group_size % 32 == 0 && s.group_size <= 4096;
  return bits_ok && group_ok;
}

void RequireSupportedQuant(const QuantSpec& s, const std::string& where) {
  if (!IsSupportedQuant(s))
    throw Error(where + ": unsupported quantization bits=" + std::to_string(s.bits) +
                " group_size=" + std::to_string(s.group_size) +
                " (supported: bits 2, 3, 4, 5, 6, 8; group_size a multiple of 32, e.g. 32, 64, 128)");
}

QuantSpec QuantConfig::ForModule(std::string_view module_path) const {
  auto it = modules.find(module_path);
  return it == modules.end() ? global : it->second;
}

namespace {

QuantSpec ParseSpec(const json& j, const std::string& where, const QuantSpec* fallback) {
  if (!j.is_object()) throw Error(where + ": expected an object with 'bits' and 'group_size'");
  QuantSpec s;
  auto read_int = [&](const char* key, int* out, const int* dflt) {
    auto it = j.find(key);
    if (it == j.end()) {
      if (dflt) { *out = *dflt; return; }
      throw Error(where + ": missing '" + key + "'");
    }
    if (!it->is_number_integer()) throw Error(where + "." + key + ": expected an integer, got " + it->dump());
    int64_t v = it->get<int64_t>();
    if (v <= 0 || v > 1 << 20) throw Error(where + "." + key + ": invalid value " + std::to_string(v));
    *out = static_cast<int>(v);
  };
  read_int("bits", &s.bits, fallback ? &fallback->bits : nullptr);
  read_int("group_size", &s.group_size, fallback ? &fallback->group_size : nullptr);
  if (auto m = j.find("mode"); m != j.end()) {
    if (!m->is_string() || m->get<std::string>() != "affine")
      throw Error(where + ".mode: unsupported quantization mode " + m->dump() + " (only \"affine\")");
  }
  RequireSupportedQuant(s, where);
  return s;
}

}  // namespace

QuantConfig QuantConfig::FromJson(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected an object");
  QuantConfig c;
  c.global = ParseSpec(j, where, nullptr);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "bits" || k == "group_size" || k == "mode") continue;
    if (it.value().is_boolean()) {
      if (it.value().get<bool>()) c.modules[k] = c.global;  // `true`: quantized with the defaults
      else c.modules[k] = QuantSpec{};
    } else if (it.value().is_object()) {
      c.modules[k] = ParseSpec(it.value(), where + "." + k, &c.global);
    }
    // Other keys (quant_method, ...) carry no per-module meaning; ignore them.
  }
  return c;
}

json QuantConfig::ToJson() const {
  json j = {{"group_size", global.group_size}, {"bits", global.bits}};
  for (const auto& [k, s] : modules) {
    if (s.quantized()) j[k] = {{"group_size", s.group_size}, {"bits", s.bits}};
    else j[k] = false;
  }
  return j;
}

void QuantizeAffineRow(const float* w, int64_t cols, const QuantSpec& spec, uint32_t* packed_out,
                       DType param_dtype, void* scales_out, void* biases_out) {
  RequireSupportedQuant(spec, "QuantizeAffineRow");
  if (cols % spec.group_size != 0)
    throw Error("quantize: row of " + std::to_string(cols) + " values is not a multiple of group_size " +
                std::to_string(spec.group_size));
  const int bits = spec.bits;
  const float n_bins = static_cast<float>((1 << bits) - 1);
  const float eps = 1e-7f;
  std::memset(packed_out, 0, static_cast<size_t>(spec.PackedCols(cols)) * sizeof(uint32_t));
  const int64_t groups = cols / spec.group_size;
  for (int64_t g = 0; g < groups; ++g) {
    const float* x = w + g * spec.group_size;
    float w_min = std::numeric_limits<float>::infinity();
    float w_max = -w_min;
    for (int i = 0; i < spec.group_size; ++i) {
      w_max = std::max(w_max, x[i]);
      w_min = std::min(w_min, x[i]);
    }
    // Choose the scale's sign so that the larger-magnitude edge maps to an exact code: the group's
    // extreme value is reproduced exactly (bias = edge), which is what MLX does.
    bool min_is_edge = std::abs(w_min) > std::abs(w_max);
    float scale = std::max((w_max - w_min) / n_bins, eps);
    if (!min_is_edge) scale = -scale;
    float edge = min_is_edge ? w_min : w_max;
    float q0 = std::rint(edge / scale);
    float bias = 0.0f;
    if (q0 != 0.0f) {
      scale = edge / q0;
      bias = edge;
    }
    for (int i = 0; i < spec.group_size; ++i) {
      float q = std::rint((x[i] - bias) / scale);
      q = std::min(std::max(q, 0.0f), n_bins);
      uint64_t code = static_cast<uint64_t>(q);
      uint64_t bit = static_cast<uint64_t>(g * spec.group_size + i) * bits;
      uint64_t word = bit >> 5;
      unsigned shift = bit & 31;
      packed_out[word] |= static_cast<uint32_t>(code << shift);
      if (shift + bits > 32) packed_out[word + 1] |= static_cast<uint32_t>(code >> (32 - shift));
    }
    StoreFromF32(scales_out, param_dtype, static_cast<size_t>(g), scale);
    StoreFromF32(biases_out, param_dtype, static_cast<size_t>(g), bias);
  }
}

void DequantizeRow(const uint32_t* packed_row, const void* scales_row, const void* biases_row,
                   DType param_dtype, int64_t cols, const QuantSpec& spec, float* out) {
  RequireSupportedQuant(spec, "DequantizeRow");
  for (int64_t j = 0; j < cols; ++j) {
    size_t g = static_cast<size_t>(j / spec.group_size);
    float s = LoadAsF32(scales_row, param_dtype, g);
    float b = LoadAsF32(biases_row, param_dtype, g);
    out[j] = s * static_cast<float>(UnpackCode(packed_row, j, spec.bits)) + b;
  }
}

}  // namespace pensieve
