// quantize (QuantizeModelDir) and random-model (WriteRandomModel): names, shapes, dtypes and values.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "formats/quantize_model.h"
#include "formats/random_model.h"
#include "formats/safetensors.h"
#include "temp_dir.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Parameter counts of the published checkpoints (safetensors totals on the Hugging Face hub).
TEST(RandomModel, ShapesMatchPublishedParameterCounts) {
  const std::pair<const char*, double> kPublished[] = {{"llama-3.2-1b", 1235814400.0},
                                                        {"llama-3-8b", 8030261248.0},
                                                        {"phi-3-mini", 3821079552.0},
                                                        {"phi-4", 14659507200.0},
                                                        {"qwen3-0.6b", 596049920.0}};
  for (const auto& [shape, count] : kPublished) {
    RandomModelOptions o;
    o.shape = shape;
    ModelConfig c = ParseModelConfigJson(RandomModelConfigJson(o), shape);
    double n = 0;
    for (const TensorSpec& t : HfTensorList(c)) {
      double k = 1;
      for (int64_t d : t.shape) k *= static_cast<double>(d);
      n += k;
    }
    EXPECT_EQ(n, count) << shape;
  }
  RandomModelOptions bad;
  bad.shape = "gpt-5";
  EXPECT_THROW(RandomModelConfigJson(bad), Error);
}

TEST(RandomModel, TinyFloatStatistics) {
  test::TempDir dir;
  RandomModelOptions o;
  o.dtype = DType::kF32;
  o.seed = 7;
  WriteRandomModel(dir.path(), o);
  ModelConfig c = LoadModelConfig(dir.path());
  TensorStore st = TensorStore::Open(dir.path());
  ASSERT_EQ(st.size(), HfTensorList(c).size());
  for (const TensorSpec& t : HfTensorList(c)) {
    const TensorView& v = st.Get(t.name);
    ASSERT_EQ(v.shape, t.shape) << t.name;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < v.numel(); ++i) {
      float x = v.as<float>()[i];
      ASSERT_NE(x, 0.0f) << t.name;
      sum += x;
      sq += x * x;
    }
    double n = static_cast<double>(v.numel());
    double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    double want_mean = t.name.find("norm.weight") != std::string::npos ? 1.0 : 0.0;
    EXPECT_NEAR(mean, want_mean, 5 * 0.02 / std::sqrt(n) + 1e-6) << t.name;
    EXPECT_NEAR(sd, 0.02, n > 1000 ? 0.001 : 0.008) << t.name;
  }
}

TEST(RandomModel, Mlx4EqualsQuantizedBf16AndDiffersBySeed) {
  test::TempDir bf, q, q2, mlx;
  RandomModelOptions o;
  o.seed = 3;
  WriteRandomModel(bf.path(), o);
  QuantizeModelDir(bf.path(), q.path(), QuantSpec{4, 64});
  o.quant_bits = 4;
  WriteRandomModel(mlx.path(), o);
  TensorStore a = TensorStore::Open(q.path()), b = TensorStore::Open(mlx.path());
  ASSERT_EQ(a.Names(), b.Names());
  for (const std::string& n : a.Names()) {
    const TensorView& x = a.Get(n);
    const TensorView& y = b.Get(n);
    ASSERT_EQ(x.dtype, y.dtype) << n;
    ASSERT_EQ(x.shape, y.shape) << n;
    ASSERT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << n;
  }
  EXPECT_EQ(LoadModelConfig(mlx.path()).quantization->global, (QuantSpec{4, 64}));
  o.seed = 4;
  WriteRandomModel(q2.path(), o);
  TensorStore c = TensorStore::Open(q2.path());
  EXPECT_NE(std::memcmp(c.Get("model.layers.0.mlp.up_proj.weight").data,
                        b.Get("model.layers.0.mlp.up_proj.weight").data, 64), 0);
}

TEST(RandomModel, ShardsAndTokenizerCopy) {
  test::TempDir dir, tok;
  tok.Write("tokenizer.json", "{}");
  tok.Write("tokenizer_config.json", "{}");
  RandomModelOptions o;
  o.max_shard_bytes = 64 * 1024;  // forces several shards for the ~200 KiB tiny model
  o.tokenizer_dir = tok.path();
  o.vocab = 300;
  o.layers = 3;
  auto files = WriteRandomModel(dir.path(), o);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));
  ASSERT_GT(files.size(), 3u);
  EXPECT_THAT(files[0], HasSubstr("model-00001-of-0000"));
  EXPECT_TRUE(fs::exists(dir / files[0]));
  TensorStore st = TensorStore::Open(dir.path());
  ModelConfig c = LoadModelConfig(dir.path());
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(st.size(), HfTensorList(c).size());
  EXPECT_GT(st.Files().size(), 1u);
}

// The stop tendency adds 1 to the embedding rows (all but the quiet tokens) and beta to the stop tokens' lm_head
// rows, and changes nothing else; config.json's eos_token_id becomes the stop tokens.
TEST(RandomModel, StopTendencyAddsToEmbeddingAndStopRows) {
  test::TempDir plain, planted;
  RandomModelOptions o;
  o.dtype = DType::kF32;
  o.seed = 9;
  WriteRandomModel(plain.path(), o);
  o.stop = StopTendency{{2, 7}, {1, 2, 3}, 8.0};
  WriteRandomModel(planted.path(), o);
  TensorStore a = TensorStore::Open(plain.path()), b = TensorStore::Open(planted.path());
  ModelConfig c = LoadModelConfig(planted.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 7}));
  const int64_t H = c.hidden_size;
  const double boost = StopBoost(*o.stop, H, c.vocab_size);
  // p = 1/8 over 2 stop tokens of 256: L = ln(1/7) + ln(127) + 0.0128 = beta * hidden.
  EXPECT_NEAR(boost * 64.0, std::log(1.0 / 7.0) + std::log(127.0) + 0.0004 * 64 / 2, 1e-9);
  for (const std::string& n : a.Names()) {
    const TensorView& x = a.Get(n);
    const TensorView& y = b.Get(n);
    ASSERT_EQ(x.shape, y.shape) << n;
    if (n != "model.embed_tokens.weight" && n != "lm_head.weight") {
      EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << n;
      continue;
    }
    for (int64_t r = 0; r < x.shape[0]; ++r) {
      double centre = 0;  // stop rows of lm_head are centred first
      if (n == "lm_head.weight" && (r == 2 || r == 7)) {
        for (int64_t j = 0; j < H; ++j) centre += x.as<float>()[r * H + j];
        centre /= static_cast<double>(H);
      }
      for (int64_t j = 0; j < H; ++j) {
        const float want_add = n == "lm_head.weight" ? (r == 2 || r == 7 ? static_cast<float>(boost) : 0.0f)
                                                     : (r >= 1 && r <= 3 ? 0.0f : 1.0f);
        EXPECT_FLOAT_EQ(y.as<float>()[r * H + j], x.as<float>()[r * H + j] - static_cast<float>(centre) + want_add)
            << n << " " << r << "," << j;
      }
    }
  }
  o.stop->stop_tokens = {256};
  EXPECT_THROW(RandomModelConfigJson(o), Error);
  o.stop->stop_tokens = {2};
  o.stop->mean_tokens = 1.5;
  EXPECT_THROW(RandomModelConfigJson(o), Error);
}

TEST(Quantize, Stories260KLayoutAndValues) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  std::string src = test::TestData("models/stories260K/stories260K-hf");
  test::TempDir out;
  QuantizeStats s = QuantizeModelDir(src, out.path(), QuantSpec{4, 32});
  // 5 layers x 7 linears + embed_tokens = 36 matrices; down_proj's input dim 172 is not a multiple of 32.
  EXPECT_EQ(s.quantized_tensors, 31);
  EXPECT_EQ(s.copied_tensors, 16);
  TensorStore in = TensorStore::Open(src);
  TensorStore q = TensorStore::Open(out.path());
  EXPECT_EQ(q.Metadata().at("format"), "mlx");
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "generation_config.json"));

  auto cj = nlohmann::json::parse(std::ifstream(out / "config.json"));
  EXPECT_EQ(cj["quantization"], (nlohmann::json{{"group_size", 32}, {"bits", 4}}));
  EXPECT_EQ(cj["quantization_config"], cj["quantization"]);
  EXPECT_EQ(cj["vocab_size"], 512);  // other keys kept

  // Unquantized tensors are byte-identical copies.
  for (const char* n : {"model.norm.weight", "model.layers.2.mlp.down_proj.weight"}) {
    ASSERT_EQ(q.Get(n).dtype, DType::kF32);
    EXPECT_EQ(std::memcmp(q.Get(n).data, in.Get(n).data, in.Get(n).nbytes), 0) << n;
  }
  // Quantized layout as mlx-lm writes it, and dequantized values within the affine scheme's error.
  const TensorView& w = q.Get("model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(w.dtype, DType::kU32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{32, 8}));  // [32, 64 * 4 / 32]
  const TensorView& sc = q.Get("model.layers.1.self_attn.k_proj.scales");
  const TensorView& bi = q.Get("model.layers.1.self_attn.k_proj.biases");
  EXPECT_EQ(sc.shape, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(bi.dtype, DType::kF32);
  const TensorView& orig = in.Get("model.layers.1.self_attn.k_proj.weight");
  std::vector<float> row(64);
  for (int r = 0; r < 32; ++r) {
    DequantizeRow(w.as<uint32_t>() + r * 8, sc.as<float>() + r * 2, bi.as<float>() + r * 2, DType::kF32, 64,
                  QuantSpec{4, 32}, row.data());
    for (int g = 0; g < 2; ++g) {
      const float* o = orig.as<float>() + r * 64 + g * 32;
      float lo = *std::min_element(o, o + 32), hi = *std::max_element(o, o + 32);
      float step = std::abs(sc.as<float>()[r * 2 + g]);
      // 4 bits: |edge/q0| >= 7.5/8 of the nominal step, so at most 15/16 of a nominal step is clipped.
      float tol = std::max(step / 2, (hi - lo) / 15 - step) * 15 + step / 2 + 1e-6f;
      int edge_hits = 0;
      for (int i = 0; i < 32; ++i) {
        EXPECT_LE(std::abs(row[g * 32 + i] - o[i]), tol);
        edge_hits += row[g * 32 + i] == o[i];
      }
      EXPECT_GE(edge_hits, 1) << "the group's edge value is represented exactly";
    }
  }
  EXPECT_EQ(q.Get("model.embed_tokens.weight").shape, (std::vector<int64_t>{512, 8}));
  EXPECT_EQ(q.Get("model.embed_tokens.scales").shape, (std::vector<int64_t>{512, 2}));
}

TEST(Quantize, Refusals) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  std::string src = test::TestData("models/stories260K/stories260K-hf");
  test::TempDir out, out2;
  EXPECT_THROW(QuantizeModelDir(src, out.path(), QuantSpec{7, 64}), Error);
  EXPECT_THROW(QuantizeModelDir(src, out.path(), QuantSpec{4, 48}), Error);
  QuantizeModelDir(src, out.path(), QuantSpec{8, 64});
  try {
    QuantizeModelDir(out.path(), out2.path(), QuantSpec{4, 64});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("already quantized"));
  }
  EXPECT_THROW(QuantizeModelDir("/nonexistent", out2.path(), QuantSpec{4, 64}), Error);
}

}  // namespace
}  // namespace pensieve
