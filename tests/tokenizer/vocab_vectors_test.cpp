// llama.cpp's tokenizer conformance vectors (ids from HF `encode(text, add_special_tokens=False)`), run through
// our GGUF vocabularies and the paired tokenizer.json files. Every string must match exactly.
#include <gtest/gtest.h>

#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"

namespace pensieve {
namespace {

struct VectorCase {
  const char* name;       // test name
  const char* tokenizer;  // relative to the test data folder (test::TestDataDir())
  const char* inp;
  const char* out;
  bool byte_level;        // decoding must give back the input exactly
};

std::ostream& operator<<(std::ostream& os, const VectorCase& c) { return os << c.name; }

class VocabVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(VocabVectors, EncodeMatchesReferenceAndDecodeRoundTrips) {
  const VectorCase& c = GetParam();
  PENSIEVE_REQUIRE_TEST_DATA(c.tokenizer, c.inp, c.out);
  const std::string data = test::TestDataDir() + "/";
  const Tokenizer* tok = &test::CachedTokenizer(data + c.tokenizer);
  auto inputs = test::ReadVocabInputs(data + c.inp);
  auto expected = test::ReadVocabOutputs(data + c.out);
  ASSERT_EQ(inputs.size(), 46u);
  ASSERT_EQ(expected.size(), inputs.size());
  int passed = 0, roundtrips = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<int32_t> ids = tok->Encode(inputs[i], /*add_special=*/false);
    EXPECT_EQ(test::IdsToString(ids), test::IdsToString(expected[i])) << "string #" << i << ": '" << inputs[i] << "'";
    if (ids == expected[i]) ++passed;
    std::string back = tok->Decode(ids);
    if (back == inputs[i]) ++roundtrips;
    if (c.byte_level) {
      EXPECT_EQ(back, inputs[i]) << "decode of string #" << i;
    }
    // Streaming the same ids gives the same text.
    StreamDecoder sd(*tok);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.Push(id);
    streamed += sd.Flush();
    EXPECT_EQ(streamed, back) << "stream decode of string #" << i;
  }
  std::printf("[%s] encode %d/%zu, decode round trip %d/%zu\n", c.name, passed, inputs.size(), roundtrips,
              inputs.size());
}

INSTANTIATE_TEST_SUITE_P(
    All, VocabVectors,
    ::testing::Values(
        VectorCase{"gguf_llama_spm", "vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-llama-spm.gguf.inp",
                   "vocab/ggml-vocab-llama-spm.gguf.out", false},
        VectorCase{"gguf_phi_3", "vocab/ggml-vocab-phi-3.gguf", "vocab/ggml-vocab-phi-3.gguf.inp",
                   "vocab/ggml-vocab-phi-3.gguf.out", false},
        VectorCase{"gguf_gpt_2", "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-gpt-2.gguf.inp",
                   "vocab/ggml-vocab-gpt-2.gguf.out", true},
        VectorCase{"gguf_deepseek_coder", "vocab/ggml-vocab-deepseek-coder.gguf",
                   "vocab/ggml-vocab-deepseek-coder.gguf.inp", "vocab/ggml-vocab-deepseek-coder.gguf.out",
                   // "Führer" encodes through the user-defined added token "ü" (HF does the same: id 32009),
                   // which the byte-level decoder reads as the lone byte 0xFC: HF's decode gives U+FFFD too.
                   false},
        VectorCase{"gguf_mpt", "vocab/ggml-vocab-mpt.gguf", "vocab/ggml-vocab-mpt.gguf.inp",
                   "vocab/ggml-vocab-mpt.gguf.out", true},
        VectorCase{"json_llama_bpe", "tokenizers/llama-3.1", "vocab/ggml-vocab-llama-bpe.gguf.inp",
                   "vocab/ggml-vocab-llama-bpe.gguf.out", true},
        VectorCase{"json_qwen2", "tokenizers/qwen3", "vocab/ggml-vocab-qwen2.gguf.inp",
                   "vocab/ggml-vocab-qwen2.gguf.out", true},
        VectorCase{"json_deepseek_r1_qwen", "tokenizers/qwen3", "vocab/ggml-vocab-deepseek-r1-qwen.gguf.inp",
                   "vocab/ggml-vocab-deepseek-r1-qwen.gguf.out", true},
        VectorCase{"json_mistral_secondary", "tokenizers/mistral-7b-v0.1", "vocab/ggml-vocab-llama-spm.gguf.inp",
                   "tokenizers/mistral-7b-v0.1/ggml-vocab-tests.generated.out", false}),
    [](const ::testing::TestParamInfo<VectorCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace pensieve
