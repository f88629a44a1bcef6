// GGUF weights: each tensor type we read, dequantized from the converted store, equals llama.cpp's NumPy
// reference (gguf-py's quants.dequantize, fixtures by tools/gguf/make_dequant_fixtures.py); unsupported types,
// architectures and tensors get one clear error naming what is wrong. Whole real models (stories260K f32, Q8_0,
// Q4_0 GGUF files: generation and logits against an independent reference) are in tests/model/stories_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/reference.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "gguf_writer.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve {
namespace {

using backend::FloatType;
using backend::MatRef;

struct Tensor {
  std::string name;
  std::vector<uint64_t> shape;  // ggml order: columns first
  uint32_t type;
  std::vector<uint8_t> data;
};

// A GGUF of architecture `arch` (default `llama`) with hidden size 64, one layer, 4 heads (head_dim 16) and the
// given tensors.
// `more` adds u32 keys (a split file's split.no and split.count); with `arch` empty, those are the only keys.
std::vector<uint8_t> LlamaGguf(const std::vector<Tensor>& tensors, const std::string& arch = "llama",
                               const std::vector<std::pair<std::string, uint32_t>>& more = {}) {
  test::GgufWriter w;
  const std::string p = arch + ".";
  std::vector<std::pair<std::string, uint32_t>> ints = {{p + "embedding_length", 64}, {p + "block_count", 1},
                                                        {p + "feed_forward_length", 3},
                                                        {p + "attention.head_count", 4}, {p + "vocab_size", 8}};
  if (arch.empty()) ints.clear();
  ints.insert(ints.end(), more.begin(), more.end());
  w.Header(tensors.size(), ints.size() + (arch.empty() ? 0 : 1));
  if (!arch.empty()) w.Str("general.architecture").U32(8).Str(arch);
  for (const auto& [k, v] : ints) w.Str(k).U32(4).U32(v);
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    w.Str(t.name).U32(static_cast<uint32_t>(t.shape.size()));
    for (uint64_t d : t.shape) w.U64(d);
    w.U32(t.type).U64(offset);
    offset = (offset + t.data.size() + 31) / 32 * 32;
  }
  w.Pad();
  for (const Tensor& t : tensors) w.Raw(t.data.data(), t.data.size()).Pad();
  return w.bytes;
}

std::string ErrorOf(const std::vector<uint8_t>& bytes) {
  try {
    LoadGgufCheckpoint(*GgufFile::Parse(bytes, "test.gguf"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<uint8_t> Hex(const std::string& h) {
  std::vector<uint8_t> out(h.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

// The converted module `m` of the store as a MatRef (float, or MLX affine with the config's bits).
MatRef MatRefOf(const Checkpoint& c, const std::string& m, int64_t rows, int64_t cols) {
  MatRef r;
  r.rows = rows, r.cols = cols;
  const TensorView& w = c.store.Get(m + ".weight");
  r.data = w.data;
  const auto type = [](DType d) {
    return d == DType::kF32 ? FloatType::kF32 : d == DType::kF16 ? FloatType::kF16 : FloatType::kBF16;
  };
  if (const TensorView* s = c.store.Find(m + ".scales")) {
    const QuantSpec q = c.config.quantization->ForModule(m);
    r.kind = MatRef::Kind::kAffine, r.bits = q.bits, r.group_size = q.group_size;
    r.type = type(s->dtype);
    r.scales = s->data;
    r.biases = c.store.Get(m + ".biases").data;
  } else {
    r.type = type(w.dtype);
  }
  return r;
}

TEST(GgufModel, EveryTypeDequantizesAsGgufPy) {
  std::ifstream in(std::string(PENSIEVE_FIXTURES_DIR) + "/gguf/dequant.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json fx = nlohmann::json::parse(in);
  int seen = 0;
  for (const auto& [name, c] : fx["types"].items()) {
    SCOPED_TRACE(name);
    const int64_t rows = c["shape"][0], cols = c["shape"][1];
    const std::vector<float> want = c["values"].get<std::vector<float>>();
    const Checkpoint ck = LoadGgufCheckpoint(*GgufFile::Parse(
        LlamaGguf({{"blk.0.ffn_up.weight", {uint64_t(cols), uint64_t(rows)}, c["ggml_type"].get<uint32_t>(), Hex(c["bytes"])}}),
        "test.gguf"));
    const MatRef m = MatRefOf(ck, "model.layers.0.mlp.up_proj", rows, cols);
    // Exact where MLX affine holds the block format exactly; the types without an affine form of groups of 32
    // (Q2_K, Q3_K, Q6_K: groups of 16; IQ4_NL, IQ4_XS: a code book) have their values stored as f16 (relative
    // rounding 2^-11, absolute 2^-25 for subnormals).
    const bool as_f16 = name == "Q2_K" || name == "Q3_K" || name == "Q6_K" || name == "IQ4_NL" || name == "IQ4_XS";
    const double tol = as_f16 ? 4.9e-4 : 1e-6;
    std::vector<float> row(cols);
    for (int64_t r = 0; r < rows; ++r) {
      backend::ref::DequantizeRow(m, r, row.data());
      for (int64_t j = 0; j < cols; ++j)
        ASSERT_NEAR(row[j], want[r * cols + j], tol * std::fabs(want[r * cols + j]) + (tol > 1e-6 ? 6e-8 : 0))
            << "row " << r << " col " << j;
    }
    ++seen;
  }
  EXPECT_EQ(seen, 15);  // F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K, IQ4_NL, IQ4_XS
}

TEST(GgufModel, QuantizedTypesKeepHalfScalesWhereExactAndF32WhereNot) {
  // Q4_0 block: d = 1.0 (f16 0x3C00): s = 1, b = -8 exact in f16. d = 16384 (0x7400): -8 d leaves f16.
  std::vector<uint8_t> block(18, 0x21);
  block[0] = 0x00, block[1] = 0x3C;
  Checkpoint a = LoadGgufCheckpoint(*GgufFile::Parse(LlamaGguf({{"blk.0.ffn_up.weight", {32, 1}, 2, block}}), "a"));
  EXPECT_EQ(a.store.Get("model.layers.0.mlp.up_proj.scales").dtype, DType::kF16);
  EXPECT_EQ(a.config.quantization->ForModule("model.layers.0.mlp.up_proj").bits, 4);
  block[1] = 0x74;
  Checkpoint b = LoadGgufCheckpoint(*GgufFile::Parse(LlamaGguf({{"blk.0.ffn_up.weight", {32, 1}, 2, block}}), "b"));
  EXPECT_EQ(b.store.Get("model.layers.0.mlp.up_proj.biases").dtype, DType::kF32);
}

TEST(GgufModel, UnsupportedInputsGetOneClearError) {
  const std::vector<uint8_t> q8_1(36, 0);  // one Q8_1 block (32 values): an activation type, never weights
  std::string e = ErrorOf(LlamaGguf({{"blk.0.ffn_up.weight", {32, 1}, 9, q8_1}}));
  EXPECT_NE(e.find("blk.0.ffn_up.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("Q8_1"), std::string::npos) << e;
  const std::vector<uint8_t> f32(4 * 64, 0);
  e = ErrorOf(LlamaGguf({{"blk.0.mystery.weight", {64}, 0, f32}}));
  EXPECT_NE(e.find("'blk.0.mystery.weight' is not a tensor of a llama model"), std::string::npos) << e;
  e = ErrorOf(LlamaGguf({{"rope_freqs.weight", {8}, 0, std::vector<uint8_t>(32, 0)}}));
  EXPECT_NE(e.find("rope"), std::string::npos) << e;
  e = ErrorOf(LlamaGguf({}, "gpt2"));
  EXPECT_NE(e.find("general.architecture 'gpt2'"), std::string::npos) << e;
  // q/k outputs that are not whole heads of 16 cannot be put back into Hugging Face's rope order.
  e = ErrorOf(LlamaGguf({{"blk.0.attn_k.weight", {64, 8}, 0, std::vector<uint8_t>(4 * 64 * 8, 0)}}));
  EXPECT_NE(e.find("not whole heads"), std::string::npos) << e;
  e = ErrorOf(LlamaGguf({{"blk.0.attn_norm.weight", {64}, 0, f32}, {"blk.0.attn_norm.weight", {64}, 0, f32}}));
  EXPECT_NE(e.find("appears twice"), std::string::npos) << e;
}

TEST(GgufModel, EachArchitectureNamesItsOwnTensors) {
  const std::vector<uint8_t> vec(4 * 16, 0);  // F32 [16]
  // q/k norms are qwen3's alone; phi3 fuses gate and up into ffn_up and has no ffn_gate.
  std::string e = ErrorOf(LlamaGguf({{"blk.0.attn_q_norm.weight", {16}, 0, vec}}));
  EXPECT_NE(e.find("'blk.0.attn_q_norm.weight' is not a tensor of a llama model"), std::string::npos) << e;
  const Checkpoint q3 = LoadGgufCheckpoint(*GgufFile::Parse(LlamaGguf({{"blk.0.attn_q_norm.weight", {16}, 0, vec}}, "qwen3"), "q"));
  EXPECT_TRUE(q3.store.Has("model.layers.0.self_attn.q_norm.weight"));
  EXPECT_EQ(q3.config.arch, Architecture::kQwen3);
  e = ErrorOf(LlamaGguf({{"blk.0.ffn_gate.weight", {64, 3}, 0, std::vector<uint8_t>(4 * 64 * 3, 0)}}, "phi3"));
  EXPECT_NE(e.find("is not a tensor of a phi3 model"), std::string::npos) << e;
  const Checkpoint phi = LoadGgufCheckpoint(
      *GgufFile::Parse(LlamaGguf({{"blk.0.ffn_up.weight", {64, 6}, 0, std::vector<uint8_t>(4 * 64 * 6, 0)}}, "phi3"), "p"));
  EXPECT_TRUE(phi.store.Has("model.layers.0.mlp.gate_up_proj.weight"));
  // Phi-3's rope tables come as a pair; Llama 3.1's rope_freqs become the config's per-frequency divisors.
  std::vector<uint8_t> ones(4 * 8);
  for (size_t i = 0; i < 8; ++i) {
    const float v = 1.0f + static_cast<float>(i);
    std::memcpy(ones.data() + 4 * i, &v, 4);
  }
  e = ErrorOf(LlamaGguf({{"rope_factors_long.weight", {8}, 0, ones}}, "phi3"));
  EXPECT_NE(e.find("come as a pair"), std::string::npos) << e;
  const Checkpoint l31 = LoadGgufCheckpoint(*GgufFile::Parse(LlamaGguf({{"rope_freqs.weight", {8}, 0, ones}}), "l"));
  ASSERT_EQ(l31.config.rope_scaling.long_factor.size(), 8u);
  EXPECT_EQ(l31.config.rope_scaling.long_factor[7], 8.0);
  EXPECT_EQ(l31.config.rope_scaling.attention_factor, 1.0);
  e = ErrorOf(LlamaGguf({}, "qwen2moe"));
  EXPECT_NE(e.find("general.architecture 'qwen2moe' is not supported"), std::string::npos) << e;
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

TEST(GgufModel, SplitFilesLoadFromTheFirstPart) {
  // As llama.cpp's gguf-split writes them: every key in the first part, split.no / split.count in each, the
  // tensors spread over the parts.
  const std::string dir = ::testing::TempDir() + "/gguf_split";
  std::filesystem::create_directories(dir);
  const std::string first = dir + "/m-00001-of-00002.gguf", second = dir + "/m-00002-of-00002.gguf";
  const std::vector<uint8_t> vec(4 * 64, 0);
  WriteFile(first, LlamaGguf({{"blk.0.attn_norm.weight", {64}, 0, vec}}, "llama", {{"split.no", 0}, {"split.count", 2}}));
  WriteFile(second, LlamaGguf({{"blk.0.ffn_norm.weight", {64}, 0, vec}, {"output.weight", {64, 8}, 0, std::vector<uint8_t>(4 * 64 * 8)}},
                              "", {{"split.no", 1}, {"split.count", 2}}));
  const Checkpoint c = LoadGgufCheckpoint(first);
  EXPECT_TRUE(c.store.Has("model.layers.0.input_layernorm.weight"));
  EXPECT_TRUE(c.store.Has("model.layers.0.post_attention_layernorm.weight"));
  EXPECT_FALSE(c.config.tie_word_embeddings);  // output.weight is in the second part
  EXPECT_FALSE(GgufModelConfig(first).tie_word_embeddings);
  EXPECT_EQ(OpenGgufParts(first).size(), 2u);

  const auto error_of = [](const std::string& path) -> std::string {
    try {
      LoadGgufCheckpoint(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string e = error_of(second);
  EXPECT_NE(e.find("part 2 of a split GGUF of 2"), std::string::npos) << e;
  // A part that says it is another one, a missing part, a first part not named as gguf-split names it.
  WriteFile(second, LlamaGguf({}, "", {{"split.no", 0}, {"split.count", 2}}));
  e = error_of(first);
  EXPECT_NE(e.find("do not say part 2 of 2"), std::string::npos) << e;
  std::filesystem::remove(second);
  e = error_of(first);
  EXPECT_NE(e.find("part 2 of 2 is missing: " + second), std::string::npos) << e;
  const std::string renamed = dir + "/m.gguf";
  std::filesystem::copy_file(first, renamed, std::filesystem::copy_options::overwrite_existing);
  e = error_of(renamed);
  EXPECT_NE(e.find("must be named PREFIX-00001-of-00002.gguf"), std::string::npos) << e;
  // Parsed from bytes, a part cannot find its siblings.
  e = ErrorOf(LlamaGguf({}, "llama", {{"split.no", 0}, {"split.count", 2}}));
  EXPECT_NE(e.find("open it by its path"), std::string::npos) << e;
}

TEST(GgufModel, RealFileLoadsWithItsConfig) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-Q4_0.gguf", "models/stories260K/stories260K-hf");
  const std::string path = test::TestData("models/stories260K/stories260K-Q4_0.gguf");
  ASSERT_TRUE(IsGgufFile(path));
  EXPECT_FALSE(IsGgufFile(test::TestData("models/stories260K/stories260K-hf")));
  const Checkpoint c = LoadGgufCheckpoint(path);
  EXPECT_EQ(c.config.hidden_size, 64);
  EXPECT_EQ(c.config.num_key_value_heads, 4);
  EXPECT_EQ(c.config.vocab_size, 512);
  EXPECT_TRUE(c.config.tie_word_embeddings);
  EXPECT_TRUE(c.store.Has("model.embed_tokens.scales"));  // Q4_0 embedding, quantized as MLX affine
  EXPECT_EQ(c.store.Get("model.layers.0.mlp.down_proj.weight").dtype, DType::kF32);  // 172 columns: F32 in the file
}

}  // namespace
}  // namespace pensieve
