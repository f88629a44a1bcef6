#pragma once
// Test helper (header-only: tests/<layer> globs only *_test.cpp): writes a small random-weight model directory (config.json + model.safetensors) of any
// supported architecture variant, float or MLX-quantized, with the formats layer's writer and quantizer.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <random>
#include <span>
#include <vector>

#include "formats/dtype.h"
#include "formats/mlx_quant.h"
#include "formats/safetensors.h"

namespace pensieve::model::test {

struct RandomModelSpec {
  std::string architecture = "LlamaForCausalLM";
  std::string model_type = "llama";
  int hidden = 64, layers = 2, heads = 4, kv_heads = 2, head_dim = 16, inter = 96, vocab = 256;
  bool qkv_bias = false;   // Qwen2-style q/k/v biases
  bool qk_norm = false;    // Qwen3
  bool fused = false;      // Phi3 qkv_proj / gate_up_proj
  bool tied = false;
  DType dtype = DType::kF32;
  int quant_bits = 0;      // 0: float weights
  int group_size = 32;
  float std = 0.1f;
  nlohmann::json extra = nlohmann::json::object();  // merged into config.json
  uint32_t seed = 1;
};


// A fresh empty directory under the test temp dir.
inline std::string TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("pensieve_model_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

namespace {

class Writer {
 public:
  Writer(const RandomModelSpec& s) : s_(s), rng_(s.seed) {}

  std::vector<float> Random(int64_t n, float mean = 0.0f) {
    std::normal_distribution<float> dist(mean, s_.std);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }

  void Float(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v, DType dtype) {
    std::vector<std::byte> bytes(v.size() * DTypeSize(dtype));
    for (size_t i = 0; i < v.size(); ++i) StoreFromF32(bytes.data(), dtype, i, v[i]);
    w_.Add(name, dtype, std::move(shape), bytes);
  }

  // `<module>.weight` [rows, cols], quantized when the spec says so.
  void Matrix(const std::string& module, int64_t rows, int64_t cols) {
    std::vector<float> v = Random(rows * cols);
    if (s_.quant_bits == 0) return Float(module + ".weight", {rows, cols}, v, s_.dtype);
    QuantSpec q{s_.quant_bits, s_.group_size};
    const int64_t words = q.PackedCols(cols), groups = q.Groups(cols);
    std::vector<uint32_t> packed(rows * words);
    const size_t ps = DTypeSize(s_.dtype);
    std::vector<std::byte> scales(rows * groups * ps), biases(rows * groups * ps);
    for (int64_t r = 0; r < rows; ++r)
      QuantizeAffineRow(v.data() + r * cols, cols, q, packed.data() + r * words, s_.dtype,
                        scales.data() + r * groups * ps, biases.data() + r * groups * ps);
    w_.Add(module + ".weight", DType::kU32, {rows, words}, std::as_bytes(std::span(packed)));
    w_.Add(module + ".scales", s_.dtype, {rows, groups}, scales);
    w_.Add(module + ".biases", s_.dtype, {rows, groups}, biases);
  }

  void Vector(const std::string& name, int64_t n, float mean) { Float(name, {n}, Random(n, mean), s_.dtype); }

  uint64_t Write(const std::string& path) {
    w_.Write(path);
    return w_.FileBytes();
  }

 private:
  const RandomModelSpec& s_;
  std::mt19937 rng_;
  SafetensorsWriter w_;
};

}  // namespace

// Writes the model; returns the bytes of model.safetensors.
inline uint64_t WriteRandomModel(const std::string& dir, const RandomModelSpec& s) {
  const int64_t H = s.hidden, q_dim = int64_t{s.heads} * s.head_dim, kv_dim = int64_t{s.kv_heads} * s.head_dim;
  nlohmann::json config = {{"architectures", {s.architecture}},
                           {"model_type", s.model_type},
                           {"hidden_size", s.hidden},
                           {"num_hidden_layers", s.layers},
                           {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.kv_heads},
                           {"head_dim", s.head_dim},
                           {"intermediate_size", s.inter},
                           {"vocab_size", s.vocab},
                           {"max_position_embeddings", 256},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"hidden_act", "silu"},
                           {"tie_word_embeddings", s.tied},
                           {"torch_dtype", std::string(s.dtype == DType::kF32    ? "float32"
                                                       : s.dtype == DType::kBF16 ? "bfloat16"
                                                                                 : "float16")}};
  if (s.quant_bits) config["quantization"] = {{"group_size", s.group_size}, {"bits", s.quant_bits}};
  config.update(s.extra);
  std::ofstream(dir + "/config.json") << config.dump(2);

  Writer w(s);
  w.Matrix("model.embed_tokens", s.vocab, H);
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    w.Vector(p + "input_layernorm.weight", H, 1.0f);
    w.Vector(p + "post_attention_layernorm.weight", H, 1.0f);
    if (s.fused) {
      w.Matrix(p + "self_attn.qkv_proj", q_dim + 2 * kv_dim, H);
    } else {
      w.Matrix(p + "self_attn.q_proj", q_dim, H);
      w.Matrix(p + "self_attn.k_proj", kv_dim, H);
      w.Matrix(p + "self_attn.v_proj", kv_dim, H);
    }
    if (s.qkv_bias) {
      w.Vector(p + "self_attn.q_proj.bias", q_dim, 0.0f);
      w.Vector(p + "self_attn.k_proj.bias", kv_dim, 0.0f);
      w.Vector(p + "self_attn.v_proj.bias", kv_dim, 0.0f);
    }
    if (s.qk_norm) {
      w.Vector(p + "self_attn.q_norm.weight", s.head_dim, 1.0f);
      w.Vector(p + "self_attn.k_norm.weight", s.head_dim, 1.0f);
    }
    w.Matrix(p + "self_attn.o_proj", H, q_dim);
    if (s.fused) {
      w.Matrix(p + "mlp.gate_up_proj", 2 * int64_t{s.inter}, H);
    } else {
      w.Matrix(p + "mlp.gate_proj", s.inter, H);
      w.Matrix(p + "mlp.up_proj", s.inter, H);
    }
    w.Matrix(p + "mlp.down_proj", H, s.inter);
  }
  w.Vector("model.norm.weight", H, 1.0f);
  if (!s.tied) w.Matrix("lm_head", s.vocab, H);
  return w.Write(dir + "/model.safetensors");
}

struct Variant {
  const char* name;
  RandomModelSpec spec;
};
// gtest prints a parameter by its name, not its bytes.
inline void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

// One tiny random model of every architecture variant the decoder supports (shared by the cpu decoder tests
// and the GPU ones).
inline std::vector<Variant> DecoderVariants() {
  std::vector<Variant> v;
  v.push_back({"llama", {}});
  RandomModelSpec tied;
  tied.tied = true;
  tied.kv_heads = 4;
  v.push_back({"llama_tied_mha", tied});
  RandomModelSpec l3;
  l3.extra = {{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                 {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 16}}}};
  v.push_back({"llama3_rope", l3});
  RandomModelSpec mistral;
  mistral.architecture = "MistralForCausalLM";
  mistral.model_type = "mistral";
  mistral.extra = {{"sliding_window", 5}};
  v.push_back({"mistral_window", mistral});
  RandomModelSpec qwen2;
  qwen2.architecture = "Qwen2ForCausalLM";
  qwen2.model_type = "qwen2";
  qwen2.qkv_bias = true;
  v.push_back({"qwen2_bias", qwen2});
  RandomModelSpec qwen3;
  qwen3.architecture = "Qwen3ForCausalLM";
  qwen3.model_type = "qwen3";
  qwen3.qk_norm = true;
  v.push_back({"qwen3_qknorm", qwen3});
  RandomModelSpec phi3;
  phi3.architecture = "Phi3ForCausalLM";
  phi3.model_type = "phi3";
  phi3.fused = true;
  phi3.extra = {{"partial_rotary_factor", 0.5},
                {"original_max_position_embeddings", 8},
                {"rope_scaling",
                 {{"type", "longrope"}, {"short_factor", {1.0, 1.1, 1.3, 2.0}}, {"long_factor", {1.5, 2.0, 4.0, 8.0}}}}};
  v.push_back({"phi3_longrope_partial", phi3});
  RandomModelSpec bf16;
  bf16.dtype = DType::kBF16;
  v.push_back({"llama_bf16", bf16});
  RandomModelSpec q4;
  q4.quant_bits = 4;
  q4.dtype = DType::kBF16;
  v.push_back({"llama_mlx4_g32", q4});
  RandomModelSpec q8 = q4;
  q8.quant_bits = 8;
  q8.group_size = 64;
  q8.tied = true;
  q8.inter = 128;  // a multiple of the group size
  v.push_back({"llama_mlx8_g64_tied", q8});
  return v;
}

}  // namespace pensieve::model::test
