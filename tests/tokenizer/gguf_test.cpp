// GGUF reader: real vocab files parse as their known contents; hand-built malformed files give Errors that
// name the file, key and offset.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/gguf.h"
#include "gguf_writer.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve {
namespace {

using Writer = test::GgufWriter;

std::string ErrorOf(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::Parse(bytes, "test.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Gguf, ReadsRealVocabularyFile) {
  PENSIEVE_REQUIRE_TEST_DATA("vocab/ggml-vocab-phi-3.gguf");
  auto f = GgufFile::Open(test::TestData("vocab/ggml-vocab-phi-3.gguf"));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f->GetInt("tokenizer.ggml.eos_token_id"), 32000);
  EXPECT_EQ(f->GetBool("tokenizer.ggml.add_bos_token"), true);
  ASSERT_NE(f->GetStringArray("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.tokens")->size(), 32064u);
  EXPECT_EQ((*f->GetStringArray("tokenizer.ggml.tokens"))[1], "<s>");
  EXPECT_EQ(f->GetFloatArray("tokenizer.ggml.scores")->size(), 32064u);
  auto tmpl = f->GetString("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.has_value());
  EXPECT_EQ(tmpl->rfind("{{ bos_token }}", 0), 0u);
  EXPECT_FALSE(f->GetString("no.such.key").has_value());
  EXPECT_THROW(f->GetString("tokenizer.ggml.eos_token_id"), Error);  // wrong type
}

TEST(Gguf, ReadsTensorInfosOfRealModel) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-Q8_0.gguf");
  auto f = GgufFile::Open(test::TestData("models/stories260K/stories260K-Q8_0.gguf"));
  ASSERT_EQ(f->tensors().size(), 47u);  // 5 layers x 9 + token_embd + output_norm
  for (const auto& t : f->tensors()) {
    EXPECT_EQ(t.file_offset % f->alignment(), 0u) << t.name;
    EXPECT_LE(t.file_offset + t.n_bytes, f->bytes().size()) << t.name;
  }
  EXPECT_EQ(f->GetInt("llama.embedding_length"), 64);
}

TEST(Gguf, MinimalFileParses) {
  Writer w;
  w.Header(1, 2).Str("a.str").U32(8).Str("hi").Str("a.arr").U32(9).U32(5).U64(2).I32(-1).I32(7);
  w.Str("t").U32(1).U64(8).U32(0).U64(0);  // tensor "t": f32[8] at 0
  while (w.bytes.size() % 32) w.bytes.push_back(0);
  for (int i = 0; i < 8; ++i) w.F32(1.0f);
  auto f = GgufFile::Parse(w.bytes, "mini.gguf");
  EXPECT_EQ(f->GetString("a.str"), "hi");
  EXPECT_EQ(*f->GetIntArray("a.arr"), (std::vector<int64_t>{-1, 7}));
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->tensors()[0].n_bytes, 32u);
  EXPECT_EQ(f->tensors()[0].file_offset, f->data_offset());
}

TEST(Gguf, MalformedFilesGiveErrorsWithOffsets) {
  EXPECT_NE(ErrorOf({'G', 'G'}).find("truncated"), std::string::npos);
  EXPECT_NE(ErrorOf({'G', 'G', 'U', 'X', 3, 0, 0, 0}).find("bad magic"), std::string::npos);
  {
    Writer w;
    w.Raw("GGUF", 4).U32(99).U64(0).U64(0);
    EXPECT_NE(ErrorOf(w.bytes).find("unsupported version 99"), std::string::npos);
  }
  {
    Writer w;
    w.Header(0, uint64_t{1} << 60);
    std::string e = ErrorOf(w.bytes);
    EXPECT_NE(e.find("kv_count"), std::string::npos) << e;
    EXPECT_NE(e.find("test.gguf"), std::string::npos) << e;
  }
  {
    Writer w;
    w.Header(0, 1).Str("k").U32(42).U32(0);
    std::string e = ErrorOf(w.bytes);
    EXPECT_NE(e.find("bad value type 42"), std::string::npos) << e;
    EXPECT_NE(e.find("(k)"), std::string::npos) << e;
    EXPECT_NE(e.find("offset 33"), std::string::npos) << e;
  }
  {
    Writer w;
    w.Header(0, 1).Str("k").U32(8).U64(1000).Raw("abc", 3);
    std::string e = ErrorOf(w.bytes);
    EXPECT_NE(e.find("string length 1000 runs past the end"), std::string::npos) << e;
  }
  {
    Writer w;
    w.Header(0, 1).Str("k").U32(9).U32(4).U64(uint64_t{1} << 62);
    EXPECT_NE(ErrorOf(w.bytes).find("array count"), std::string::npos);
  }
  {
    Writer w;
    w.Header(0, 1).Str("k").U32(9).U32(9).U64(1);
    EXPECT_NE(ErrorOf(w.bytes).find("nested arrays"), std::string::npos);
  }
  {
    Writer w;
    w.Header(0, 2).Str("k").U32(4).U32(1).Str("k").U32(4).U32(2);
    EXPECT_NE(ErrorOf(w.bytes).find("duplicate key"), std::string::npos);
  }
  {
    Writer w;  // tensor data beyond the end of the file
    w.Header(1, 0).Str("t").U32(1).U64(1024).U32(0).U64(0);
    std::string e = ErrorOf(w.bytes);
    EXPECT_NE(e.find("tensor t"), std::string::npos) << e;
    EXPECT_NE(e.find("past the end"), std::string::npos) << e;
  }
  {
    Writer w;  // absurd dimension count
    w.Header(1, 0).Str("t").U32(1000);
    w.bytes.resize(w.bytes.size() + 64, 0);
    EXPECT_NE(ErrorOf(w.bytes).find("bad dimension count"), std::string::npos);
  }
  {
    Writer w;
    w.Header(0, 1).Str("general.alignment").U32(4).U32(3);
    EXPECT_NE(ErrorOf(w.bytes).find("power of two"), std::string::npos);
  }
  EXPECT_THROW(GgufFile::Open("/nonexistent.gguf"), Error);
}

TEST(Gguf, EveryTruncationOfARealFileIsAnError) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-Q8_0.gguf");
  auto f = GgufFile::Open(test::TestData("models/stories260K/stories260K-Q8_0.gguf"));
  std::vector<uint8_t> all(f->bytes().begin(), f->bytes().end());
  // Cut inside the header/metadata at many points (every byte would be slow for the tensor data part).
  size_t meta_end = f->data_offset();
  for (size_t cut = 0; cut < meta_end; cut += (cut < 4096 ? 1 : 97)) {
    std::vector<uint8_t> part(all.begin(), all.begin() + cut);
    EXPECT_THROW(GgufFile::Parse(part, "cut.gguf"), Error) << "cut at " << cut;
  }
}

}  // namespace
}  // namespace pensieve
