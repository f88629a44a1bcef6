#include "formats/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "phi_configs.h"
#include "temp_dir.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve {
namespace {

using ::testing::HasSubstr;

// config.json of meta-llama/Llama-3.2-1B as published.
const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

// meta-llama/Llama-3.1-8B-Instruct.
const char* kLlama31_8B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
  "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256})";

// mistralai/Mistral-7B-v0.1.
const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

// Qwen/Qwen2.5-0.5B.
const char* kQwen25_05B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

// Qwen/Qwen3-0.6B.
const char* kQwen3_06B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
  "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

// microsoft/Phi-3-mini-4k-instruct.
const char* kPhi3Mini4k = R"({
  "architectures": ["Phi3ForCausalLM"], "attention_bias": false, "bos_token_id": 1, "embd_pdrop": 0.0,
  "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
  "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
  "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
  "sliding_window": 2047, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32064})";

// microsoft/phi-4.
const char* kPhi4 = R"({
  "architectures": ["Phi3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 100257,
  "embd_pdrop": 0.0, "eos_token_id": 100265, "hidden_act": "silu", "hidden_size": 5120, "initializer_range": 0.02,
  "intermediate_size": 17920, "max_position_embeddings": 16384, "model_type": "phi3", "num_attention_heads": 40,
  "num_hidden_layers": 40, "num_key_value_heads": 10, "original_max_position_embeddings": 16384,
  "pad_token_id": 100349, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 250000,
  "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 100352})";

TEST(ModelConfig, Llama32_1B) {
  ModelConfig c = ParseModelConfig(kLlama32_1B, "config.json");
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, DType::kBF16);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001}));
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_FALSE(c.attention_bias || c.mlp_bias || c.qk_norm || c.fused_qkv);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
}

// Llama 3.1's frequency smoothing, values from transformers' formula evaluated in Python (double).
TEST(ModelConfig, Llama31_8B_Llama3RopeFrequencies) {
  ModelConfig c = ParseModelConfig(kLlama31_8B, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c.tie_word_embeddings);
  std::vector<double> inv = c.RopeInvFreq();
  ASSERT_EQ(inv.size(), 64u);
  EXPECT_DOUBLE_EQ(inv[0], 1.0);                                    // high frequency: unchanged
  EXPECT_NEAR(inv[10], 0.12868737343265052, 1e-15);                  // unchanged
  EXPECT_NEAR(inv[30] / 0.0013718935677611381, 1.0, 1e-12);          // medium band: smoothed
  EXPECT_NEAR(inv[63] / 3.068925988914511e-07, 1.0, 1e-12);          // low frequency: / factor
}

TEST(ModelConfig, Mistral7B) {
  ModelConfig c = ParseModelConfig(kMistral7B, "config.json");
  EXPECT_EQ(c.arch, Architecture::kMistral);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kDefault);
  EXPECT_EQ(c.vocab_size, 32000);
  // inv_freq[i] = theta^(-2i/d): i = 1 -> 10000^(-1/64)
  EXPECT_NEAR(c.RopeInvFreq()[1], std::pow(10000.0, -2.0 / 128), 1e-15);
  // sliding_window null is full attention
  auto j = nlohmann::json::parse(kMistral7B);
  j["sliding_window"] = nullptr;
  EXPECT_FALSE(ParseModelConfigJson(j, "config.json").sliding_window.has_value());
}

TEST(ModelConfig, Qwen25_05B) {
  ModelConfig c = ParseModelConfig(kQwen25_05B, "config.json");
  EXPECT_EQ(c.arch, Architecture::kQwen2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_TRUE(c.attention_bias);   // q/k/v biases
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window false
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
}

TEST(ModelConfig, SlidingWindowLayers) {
  ModelConfig m = ParseModelConfig(kMistral7B, "config.json");
  ASSERT_EQ(m.sliding_layers.size(), 32u);
  EXPECT_TRUE(m.LayerUsesSlidingWindow(0) && m.LayerUsesSlidingWindow(31));
  auto q = nlohmann::json::parse(kQwen25_05B);
  q["use_sliding_window"] = true;
  q["max_window_layers"] = 20;  // as transformers: layers >= max_window_layers slide
  ModelConfig c = ParseModelConfigJson(q, "config.json");
  EXPECT_EQ(c.sliding_window, 32768);
  EXPECT_FALSE(c.LayerUsesSlidingWindow(19));
  EXPECT_TRUE(c.LayerUsesSlidingWindow(20));
  q["layer_types"] = std::vector<std::string>(24, "full_attention");
  q["layer_types"][3] = "sliding_attention";
  c = ParseModelConfigJson(q, "config.json");
  EXPECT_TRUE(c.LayerUsesSlidingWindow(3));
  EXPECT_FALSE(c.LayerUsesSlidingWindow(20));
  q["layer_types"][3] = "chunked_attention";
  EXPECT_THROW(ParseModelConfigJson(q, "config.json"), Error);
  EXPECT_FALSE(ParseModelConfig(kQwen25_05B, "config.json").LayerUsesSlidingWindow(0));
}

TEST(ModelConfig, Qwen3_06B) {
  ModelConfig c = ParseModelConfig(kQwen3_06B, "config.json");
  EXPECT_EQ(c.arch, Architecture::kQwen3);
  EXPECT_EQ(c.head_dim, 128);  // explicit, not 1024 / 16 = 64
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_theta, 1000000.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645}));
}

TEST(ModelConfig, Phi3Mini4k) {
  ModelConfig c = ParseModelConfig(kPhi3Mini4k, "config.json");
  EXPECT_EQ(c.arch, Architecture::kPhi3);
  EXPECT_TRUE(c.fused_qkv);
  EXPECT_TRUE(c.fused_gate_up);
  EXPECT_EQ(c.head_dim, 96);
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kDefault);
  EXPECT_EQ(c.pad_token_id, 32000);
  EXPECT_EQ(c.vocab_size, 32064);
}

TEST(ModelConfig, Phi3Mini128kLongRope) {
  ModelConfig c = ParseModelConfig(kPhi3Mini128k, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLongRope);  // legacy "su"
  EXPECT_EQ(c.rope_scaling.short_factor.size(), 48u);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  // factor = 131072 / 4096 = 32; attention factor sqrt(1 + ln 32 / ln 4096) = sqrt(1 + 5/12).
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_NEAR(c.rope_scaling.attention_factor, std::sqrt(17.0 / 12.0), 1e-12);
  // Short factors within the original context, long ones beyond it.
  auto shrt = c.RopeInvFreq(100), lng = c.RopeInvFreq(5000);
  EXPECT_NEAR(shrt[47], std::pow(10000.0, -94.0 / 96) / c.rope_scaling.short_factor[47], 1e-18);
  EXPECT_NEAR(lng[47], std::pow(10000.0, -94.0 / 96) / c.rope_scaling.long_factor[47], 1e-18);
}

TEST(ModelConfig, Phi35MiniLongRope) {
  ModelConfig c = ParseModelConfig(kPhi35Mini, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLongRope);
  EXPECT_EQ(c.sliding_window, 262144);
  EXPECT_EQ(c.max_position_embeddings, 131072);
}

TEST(ModelConfig, Phi4) {
  ModelConfig c = ParseModelConfig(kPhi4, "config.json");
  EXPECT_EQ(c.arch, Architecture::kPhi3);
  EXPECT_EQ(c.hidden_size, 5120);
  EXPECT_EQ(c.num_hidden_layers, 40);
  EXPECT_EQ(c.num_attention_heads, 40);
  EXPECT_EQ(c.num_key_value_heads, 10);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.intermediate_size, 17920);
  EXPECT_EQ(c.vocab_size, 100352);
  EXPECT_EQ(c.rope_theta, 250000.0);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.q_dim() + 2 * c.kv_dim(), 7680);  // qkv_proj rows
}

TEST(ModelConfig, Phi4MiniPartialRotary) {
  ModelConfig c = ParseModelConfig(kPhi4Mini, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dim, 96);  // 0.75 * 128
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLongRope);
  EXPECT_EQ(c.RopeInvFreq().size(), 48u);
}

// transformers 5.x writes rope settings as `rope_parameters` and the dtype as `dtype`.
TEST(ModelConfig, Transformers5RopeParameters) {
  auto j = nlohmann::json::parse(kLlama31_8B);
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j.erase("torch_dtype");
  j["dtype"] = "float32";
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  ModelConfig c = ParseModelConfigJson(j, "config.json");
  EXPECT_EQ(c.dtype, DType::kF32);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLlama3);
  EXPECT_NEAR(c.RopeInvFreq()[63] / 3.068925988914511e-07, 1.0, 1e-12);

  // Phi3 in v5 form: partial_rotary_factor and original_max_position_embeddings inside rope_parameters.
  auto p = nlohmann::json::parse(kPhi4Mini);
  nlohmann::json rp = p["rope_scaling"];
  rp["rope_type"] = "longrope";
  rp.erase("type");
  rp["rope_theta"] = 10000.0;
  rp["partial_rotary_factor"] = 0.75;
  rp["original_max_position_embeddings"] = 4096;
  p.erase("rope_scaling");
  p.erase("partial_rotary_factor");
  p.erase("original_max_position_embeddings");
  p["rope_parameters"] = rp;
  ModelConfig pc = ParseModelConfigJson(p, "config.json");
  EXPECT_EQ(pc.rotary_dim, 96);
  EXPECT_EQ(pc.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_NEAR(pc.rope_scaling.attention_factor, std::sqrt(17.0 / 12.0), 1e-12);

  // Default rope in v5 form.
  auto q = nlohmann::json::parse(kQwen3_06B);
  q.erase("rope_theta");
  q.erase("rope_scaling");
  q["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  EXPECT_EQ(ParseModelConfigJson(q, "config.json").rope_theta, 1000000.0);
}

TEST(ModelConfig, LinearAndDynamicScaling) {
  auto j = nlohmann::json::parse(kMistral7B);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  ModelConfig c = ParseModelConfigJson(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLinear);
  EXPECT_NEAR(c.RopeInvFreq()[0], 0.25, 1e-15);
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  c = ParseModelConfigJson(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeType::kDynamic);
  EXPECT_EQ(c.RopeInvFreq(100)[1], std::pow(10000.0, -2.0 / 128));  // within context: unscaled
  // Beyond max_position_embeddings (32768): base * (2 * 65536 / 32768 - 1)^(128/126).
  double base = 10000.0 * std::pow(3.0, 128.0 / 126.0);
  EXPECT_NEAR(c.RopeInvFreq(65536)[1] / std::pow(base, -2.0 / 128), 1.0, 1e-12);
}

TEST(ModelConfig, Stories260KWithGenerationConfig) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  ModelConfig c = LoadModelConfig(test::TestData("models/stories260K/stories260K-hf"));
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(c.dtype, DType::kF32);
}

TEST(ModelConfig, GenerationConfigEosMerged) {
  test::TempDir dir;
  dir.Write("config.json", kLlama32_1B);
  dir.Write("generation_config.json", R"({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})");
  ModelConfig c = LoadModelConfig(dir.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
}

TEST(ModelConfig, MlxQuantizationBlock) {
  auto j = nlohmann::json::parse(kLlama32_1B);
  j["quantization"] = {{"group_size", 64}, {"bits", 4}, {"model.embed_tokens", {{"group_size", 32}, {"bits", 8}}}};
  j["quantization_config"] = j["quantization"];
  ModelConfig c = ParseModelConfigJson(j, "config.json");
  ASSERT_TRUE(c.quantization.has_value());
  EXPECT_EQ(c.quantization->ForModule("model.layers.0.mlp.up_proj"), (QuantSpec{4, 64}));
  EXPECT_EQ(c.quantization->ForModule("model.embed_tokens"), (QuantSpec{8, 32}));
  // Only quantization_config present (some converters write only that).
  j.erase("quantization");
  EXPECT_TRUE(ParseModelConfigJson(j, "config.json").quantization.has_value());
}

// ---- bad configs: one clear message naming the file and the field ----

std::string ConfigError(const nlohmann::json& j) {
  try {
    ParseModelConfigJson(j, "/m/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ModelConfigBad, UnknownArchitecture) {
  auto j = nlohmann::json::parse(kLlama32_1B);
  j["architectures"] = {"GPTNeoXForCausalLM"};
  std::string msg = ConfigError(j);
  EXPECT_THAT(msg, HasSubstr("/m/config.json"));
  EXPECT_THAT(msg, HasSubstr("'architectures'"));
  EXPECT_THAT(msg, HasSubstr("GPTNeoXForCausalLM"));
  j.erase("architectures");
  j["model_type"] = "gpt_neox";
  EXPECT_THAT(ConfigError(j), HasSubstr("'model_type'"));
  j.erase("model_type");
  EXPECT_THAT(ConfigError(j), HasSubstr("'architectures': missing"));
  // model_type alone is enough for a known family.
  j["model_type"] = "llama";
  EXPECT_EQ(ParseModelConfigJson(j, "c").arch, Architecture::kLlama);
}

TEST(ModelConfigBad, InconsistentDims) {
  auto j = nlohmann::json::parse(kMistral7B);
  j["num_key_value_heads"] = 5;
  EXPECT_THAT(ConfigError(j), HasSubstr("'num_key_value_heads'"));
  j = nlohmann::json::parse(kMistral7B);
  j["num_attention_heads"] = 30;  // 4096 % 30 != 0, no head_dim
  EXPECT_THAT(ConfigError(j), HasSubstr("'num_attention_heads'"));
  j = nlohmann::json::parse(kMistral7B);
  j["hidden_size"] = 0;
  EXPECT_THAT(ConfigError(j), HasSubstr("'hidden_size': must be positive"));
  j.erase("hidden_size");
  EXPECT_THAT(ConfigError(j), HasSubstr("'hidden_size': missing"));
  j = nlohmann::json::parse(kMistral7B);
  j["vocab_size"] = "32000";
  EXPECT_THAT(ConfigError(j), HasSubstr("'vocab_size': expected an integer"));
  j = nlohmann::json::parse(kMistral7B);
  j["hidden_size"] = int64_t{1} << 40;
  EXPECT_THAT(ConfigError(j), HasSubstr("implausibly large"));
}

TEST(ModelConfigBad, RopeProblems) {
  auto j = nlohmann::json::parse(kPhi4Mini);
  j["rope_scaling"]["short_factor"].erase(0);
  std::string msg = ConfigError(j);
  EXPECT_THAT(msg, HasSubstr("'rope_scaling.short_factor'"));
  EXPECT_THAT(msg, HasSubstr("expected rotary_dim/2 = 48"));
  j = nlohmann::json::parse(kPhi4Mini);
  j["partial_rotary_factor"] = 0.51;  // 65.28 -> 65: odd
  EXPECT_THAT(ConfigError(j), HasSubstr("'partial_rotary_factor'"));
  j = nlohmann::json::parse(kPhi4Mini);
  j["rope_scaling"].erase("long_factor");
  EXPECT_THAT(ConfigError(j), HasSubstr("'rope_scaling.long_factor': missing"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["rope_scaling"]["rope_type"] = "ntk-by-parts";
  EXPECT_THAT(ConfigError(j), HasSubstr("'rope_scaling.rope_type': unsupported rope type"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["rope_scaling"].erase("low_freq_factor");
  EXPECT_THAT(ConfigError(j), HasSubstr("'rope_scaling.low_freq_factor'"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["rope_scaling"] = 3;
  EXPECT_THAT(ConfigError(j), HasSubstr("'rope_scaling'"));
}

TEST(ModelConfigBad, OtherFields) {
  auto j = nlohmann::json::parse(kLlama32_1B);
  j["hidden_act"] = "relu2";
  EXPECT_THAT(ConfigError(j), HasSubstr("'hidden_act'"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["torch_dtype"] = "float8_e4m3fn";
  EXPECT_THAT(ConfigError(j), HasSubstr("'torch_dtype'"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["eos_token_id"] = "</s>";
  EXPECT_THAT(ConfigError(j), HasSubstr("'eos_token_id'"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["quantization"] = {{"group_size", 64}, {"bits", 7}};
  EXPECT_THAT(ConfigError(j), HasSubstr("quantization"));
  EXPECT_THAT(ConfigError(j), HasSubstr("bits=7"));
  j = nlohmann::json::parse(kLlama32_1B);
  j["quantization_config"] = {{"quant_method", "gptq"}};
  EXPECT_THAT(ConfigError(j), HasSubstr("unsupported quantization method"));
  EXPECT_THAT(ConfigError(nlohmann::json::array()), HasSubstr("/m/config.json"));
  try {
    ParseModelConfig("{not json", "/m/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/m/config.json: not valid JSON"));
  }
  EXPECT_THROW(LoadModelConfig("/nonexistent/dir"), Error);
}

}  // namespace
}  // namespace pensieve
