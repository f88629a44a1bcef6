#include "formats/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "formats/dtype.h"
#include "temp_dir.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve {
namespace {

using test::TempDir;
using ::testing::HasSubstr;

// A safetensors file from a header text and a data area, built by hand (no use of our writer).
std::string RawFile(const std::string& header, const std::string& data, int64_t len_override = -1) {
  uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Opens `bytes` as a file and returns the error message (fails the test if no Error is thrown).
std::string OpenError(const TempDir& dir, const std::string& bytes, const std::string& name = "bad.safetensors") {
  std::string path = dir.Write(name, bytes);
  try {
    TensorStore::Open(path);
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_THAT(msg, HasSubstr(path));  // every message names the file
    return msg;
  }
  ADD_FAILURE() << "no error for " << name;
  return "";
}

TEST(Safetensors, ReadsHandMadeFile) {
  TempDir dir;
  float vals[3] = {1.0f, -2.5f, 3.0f};
  std::string data(reinterpret_cast<const char*>(vals), 12);
  data += std::string("\x01\x02\x03\x04", 4);  // U8 [2, 2]
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"U8","shape":[2,2],"data_offsets":[12,16]}})";
  std::string path = dir.Write("m.safetensors", RawFile(header, data));
  TensorStore st = TensorStore::Open(path);
  ASSERT_EQ(st.size(), 2u);
  const TensorView& a = st.Get("a");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(a.nbytes, 12u);
  EXPECT_EQ(a.numel(), 3);
  EXPECT_EQ(a.as<float>()[1], -2.5f);
  const TensorView& b = st.Get("b");
  EXPECT_EQ(b.dim(-1), 2);
  EXPECT_EQ(b.as<uint8_t>()[3], 4);
  EXPECT_EQ(st.Find("c"), nullptr);
  EXPECT_EQ(st.Metadata().at("format"), "pt");
  EXPECT_EQ(st.TotalBytes(), 16u);
  EXPECT_EQ(st.Names(), (std::vector<std::string>{"a", "b"}));
  try {
    st.Get("missing.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.weight"));
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
}

TEST(Safetensors, EmptyTensorsAndScalars) {
  TempDir dir;
  std::string header = R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                       R"("s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})";
  TensorStore st = TensorStore::Open(dir.Write("m.safetensors", RawFile(header, std::string(4, '\x07'))));
  EXPECT_EQ(st.Get("e").nbytes, 0u);
  EXPECT_EQ(st.Get("s").numel(), 1);
}

TEST(Safetensors, UnpaddedHeaderStillGivesAlignedData) {
  TempDir dir;
  // Header length 55: the data area starts at byte 63, misaligned in the file.
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} )";
  ASSERT_NE((8 + header.size()) % 4, 0u);
  float vals[2] = {0.5f, -7.0f};
  TensorStore st = TensorStore::Open(dir.Write("m.safetensors", RawFile(header, std::string(reinterpret_cast<const char*>(vals), 8))));
  const TensorView& a = st.Get("a");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 4, 0u);
  EXPECT_EQ(a.as<float>()[1], -7.0f);
}

TEST(Safetensors, OddOffsetTensorGetsAlignedCopy) {
  TempDir dir;
  float v = 2.5f;
  std::string data = "ab" + std::string(reinterpret_cast<const char*>(&v), 4);
  std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("w":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  TensorStore st = TensorStore::Open(dir.Write("m.safetensors", RawFile(header, data)));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(st.Get("w").data) % 4, 0u);
  EXPECT_EQ(st.Get("w").as<float>()[0], 2.5f);
  EXPECT_EQ(st.Get("a").as<uint8_t>()[1], 'b');
}

TEST(Safetensors, EvictReleasesTheOwnedBytesOfATensor) {
  // A converted GGUF lives in bytes the store owns; once a backend has copied a tensor, Evict gives its whole
  // pages back (they read as zeros after), so the model is not resident twice. The bytes before and after the
  // tensor's whole pages stay.
  constexpr size_t kFloats = 1 << 20;  // 4 MiB
  SafetensorsWriter w;
  w.AddMoved("a", DType::kF32, {static_cast<int64_t>(kFloats)}, std::vector<float>(kFloats, 1.5f));
  w.AddMoved("b", DType::kF32, {4}, std::vector<float>(4, 2.5f));
  TensorStore store = TensorStore::FromOwnedBytes("mem", w.ToBytes());
  const float* a = store.Get("a").as<float>();
  const float* b = store.Get("b").as<float>();
  store.Evict(a, kFloats * sizeof(float));
  EXPECT_EQ(a[kFloats / 2], 0.0f);  // released: a fresh zero page
  EXPECT_EQ(b[0], 2.5f);
  EXPECT_EQ(b[3], 2.5f);
}

TEST(SafetensorsBad, FileShorterThan8Bytes) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, "abc"), HasSubstr("shorter than the 8-byte header length"));
  EXPECT_THAT(OpenError(dir, ""), HasSubstr("shorter than the 8-byte"));
}

TEST(SafetensorsBad, HeaderLengthPastEnd) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile("{}", "", 1000)), HasSubstr("runs past the end of the file"));
}

TEST(SafetensorsBad, HeaderLengthAbsurd) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile("{}", "", int64_t{1} << 40)), HasSubstr("absurd"));
  EXPECT_THAT(OpenError(dir, RawFile("{}", "", INT64_MAX)), HasSubstr("absurd"));
}

TEST(SafetensorsBad, HeaderNotJsonOrNotObject) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile("{\"a\": [1, 2", "")), HasSubstr("not valid JSON"));
  EXPECT_THAT(OpenError(dir, RawFile("[1, 2, 3]", "")), HasSubstr("not a JSON object"));
  EXPECT_THAT(OpenError(dir, RawFile(R"({"__metadata__": 3})", "")), HasSubstr("__metadata__"));
}

TEST(SafetensorsBad, EntryMissingFields) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "xxxx")),
              HasSubstr("tensor 'w': missing 'dtype'"));
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "xxxx")),
              HasSubstr("tensor 'w': missing 'shape'"));
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[1]}})", "xxxx")),
              HasSubstr("tensor 'w': missing 'data_offsets'"));
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":[1,2]})", "")), HasSubstr("tensor 'w': entry is not a JSON object"));
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "xxxx")),
              HasSubstr("'data_offsets' must be two"));
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "xxxx")),
              HasSubstr("non-integer"));
}

TEST(SafetensorsBad, UnknownDtype) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "xxxx")),
              HasSubstr("tensor 'w': unsupported dtype 'F8_E4M3'"));
}

TEST(SafetensorsBad, NegativeDims) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx")),
              HasSubstr("tensor 'w': negative dimension"));
}

TEST(SafetensorsBad, OffsetsOutsideDataArea) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "xxxx")),
              HasSubstr("tensor 'w': data_offsets [0, 8] outside the data area of 4 bytes"));
}

TEST(SafetensorsBad, TruncatedRealFile) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf/model.safetensors");
  TempDir dir;
  std::string src = test::TestData("models/stories260K/stories260K-hf/model.safetensors");
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100000u);
  // Cut inside the last tensor: the message names a tensor and says outside the data area.
  std::string msg = OpenError(dir, bytes.substr(0, bytes.size() - 100));
  EXPECT_THAT(msg, HasSubstr("outside the data area"));
  EXPECT_THAT(msg, HasSubstr("tensor '"));
  // Cut inside the header.
  EXPECT_THAT(OpenError(dir, bytes.substr(0, 1000)), HasSubstr("runs past the end"));
}

TEST(SafetensorsBad, BeginAfterEnd) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "xxxx")),
              HasSubstr("tensor 'w': data_offsets begin 4 > end 0"));
}

TEST(SafetensorsBad, OverlappingTensors) {
  TempDir dir;
  std::string msg = OpenError(dir, RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                           std::string(12, 'x')));
  EXPECT_THAT(msg, HasSubstr("'a'"));
  EXPECT_THAT(msg, HasSubstr("'b'"));
  EXPECT_THAT(msg, HasSubstr("overlap"));
  // Same range twice is an overlap too.
  EXPECT_THAT(OpenError(dir, RawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                     R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                                     std::string(4, 'x'))),
              HasSubstr("overlap"));
}

TEST(SafetensorsBad, SizeNotDtypeTimesShape) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})",
                                     std::string(8, 'x'))),
              HasSubstr("tensor 'w': holds 8 bytes but dtype BF16 x shape [3] needs 6"));
}

TEST(SafetensorsBad, ShapeProductOverflow) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                                     std::string(4, 'x'))),
              HasSubstr("overflows 64 bits"));
  // numel fits but numel * 4 does not.
  EXPECT_THAT(OpenError(dir, RawFile(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})",
                                     std::string(4, 'x'))),
              HasSubstr("overflows 64 bits"));
}

// ---- sharded sets ----

void WriteShard(const std::string& path, const std::string& name, float value) {
  SafetensorsWriter w;
  w.Add(name, DType::kF32, {1}, std::as_bytes(std::span<const float>(&value, 1)));
  w.Write(path);
}

TEST(Safetensors, ShardedIndex) {
  TempDir dir;
  WriteShard(dir / "model-00001-of-00002.safetensors", "a.weight", 1.0f);
  WriteShard(dir / "model-00002-of-00002.safetensors", "b.weight", 2.0f);
  dir.Write("model.safetensors.index.json",
            R"({"metadata":{"total_size":8},"weight_map":{"a.weight":"model-00001-of-00002.safetensors",)"
            R"("b.weight":"model-00002-of-00002.safetensors"}})");
  TensorStore st = TensorStore::Open(dir.path());
  EXPECT_EQ(st.size(), 2u);
  EXPECT_EQ(st.Get("b.weight").as<float>()[0], 2.0f);
  EXPECT_THAT(st.Get("a.weight").file, HasSubstr("model-00001-of-00002"));
  EXPECT_EQ(st.Files().size(), 2u);
}

TEST(SafetensorsBad, IndexNamesMissingShard) {
  TempDir dir;
  WriteShard(dir / "model-00001-of-00002.safetensors", "a.weight", 1.0f);
  dir.Write("model.safetensors.index.json",
            R"({"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors"}})");
  try {
    TensorStore::Open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.safetensors.index.json"));
    EXPECT_THAT(e.what(), HasSubstr("model-00002-of-00002.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr("does not exist"));
  }
}

TEST(SafetensorsBad, IndexNamesTensorShardLacks) {
  TempDir dir;
  WriteShard(dir / "s1.safetensors", "a.weight", 1.0f);
  dir.Write("model.safetensors.index.json", R"({"weight_map":{"a.weight":"s1.safetensors","c.weight":"s1.safetensors"}})");
  try {
    TensorStore::Open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor 'c.weight'"));
    EXPECT_THAT(e.what(), HasSubstr("does not hold it"));
  }
}

TEST(SafetensorsBad, IndexMalformedOrEscaping) {
  TempDir dir;
  dir.Write("model.safetensors.index.json", R"({"weight_map": 5})");
  EXPECT_THROW(TensorStore::Open(dir.path()), Error);
  dir.Write("model.safetensors.index.json", R"({"weight_map": {"a": "../etc/passwd"}})");
  EXPECT_THROW(TensorStore::Open(dir.path()), Error);
  dir.Write("model.safetensors.index.json", "not json");
  EXPECT_THROW(TensorStore::Open(dir.path()), Error);
}

TEST(SafetensorsBad, DuplicateTensorAcrossFilesAndMissingPaths) {
  TempDir dir;
  WriteShard(dir / "x.safetensors", "a", 1.0f);
  WriteShard(dir / "y.safetensors", "a", 2.0f);
  EXPECT_THROW(TensorStore::Open(dir.path()), Error);  // directory of loose files, same name twice
  EXPECT_THROW(TensorStore::Open(dir / "nope"), Error);
  TempDir empty;
  EXPECT_THROW(TensorStore::Open(empty.path()), Error);
}

// ---- writer ----

TEST(SafetensorsWriter, RoundTripWithMetadataAndAlignment) {
  TempDir dir;
  SafetensorsWriter w;
  w.SetMetadata({{"format", "mlx"}});
  std::vector<uint16_t> bf = {F32ToBF16(1.5f), F32ToBF16(-3.0f), F32ToBF16(0.25f)};
  std::vector<uint32_t> u = {0xdeadbeef, 7};
  w.Add("x.bf", DType::kBF16, {3}, std::as_bytes(std::span(bf)));
  w.AddLazy("x.u", DType::kU32, {1, 2}, [&](std::byte* dst, size_t n) { std::memcpy(dst, u.data(), n); });
  std::string path = dir / "out.safetensors";
  w.Write(path);
  EXPECT_EQ(std::filesystem::file_size(path), w.FileBytes());

  // Header length is a multiple of 8 (the data area is 8-aligned) and padded with spaces.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_NE(bytes.substr(8, n).find("\"format\":\"mlx\""), std::string::npos);

  TensorStore st = TensorStore::Open(path);
  EXPECT_EQ(st.Metadata().at("format"), "mlx");
  EXPECT_EQ(st.Get("x.bf").dtype, DType::kBF16);
  EXPECT_EQ(BF16ToF32(st.Get("x.bf").as<uint16_t>()[1]), -3.0f);
  EXPECT_EQ(st.Get("x.u").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(st.Get("x.u").as<uint32_t>()[0], 0xdeadbeefu);
  // BF16[3] (6 bytes) was added first: the writer put the U32 tensor first so both stay aligned in the file.
  EXPECT_LT(st.Get("x.u").data, st.Get("x.bf").data);
}

TEST(SafetensorsWriter, RejectsBadInput) {
  SafetensorsWriter w;
  float f[2] = {1, 2};
  EXPECT_THROW(w.Add("a", DType::kF32, {3}, std::as_bytes(std::span(f))), Error);  // wrong byte count
  EXPECT_THROW(w.Add("a", DType::kF32, {-2}, std::as_bytes(std::span(f))), Error);
  w.Add("a", DType::kF32, {2}, std::as_bytes(std::span(f)));
  w.Add("a", DType::kF32, {2}, std::as_bytes(std::span(f)));
  TempDir dir;
  EXPECT_THROW(w.Write(dir / "dup.safetensors"), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "dup.safetensors"));
}

// ---- a real model nobody here wrote ----

TEST(SafetensorsReal, Stories260K) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K");
  std::string base = test::TestData("models/stories260K/");
  TensorStore f32 = TensorStore::Open(base + "stories260K-hf");
  TensorStore bf16 = TensorStore::Open(base + "stories260K-hf-bf16/model.safetensors");
  // README: dim 64, 5 layers, 8 heads of 8, 4 KV heads, vocab 512, tied embeddings (no lm_head).
  EXPECT_EQ(f32.size(), 47u);  // embed + 5 x 9 + final norm
  EXPECT_EQ(f32.FileBytes(), 1044992u);
  EXPECT_EQ(f32.Metadata().at("format"), "pt");
  EXPECT_FALSE(f32.Has("lm_head.weight"));
  const TensorView& emb = f32.Get("model.embed_tokens.weight");
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(emb.nbytes, 512u * 64 * 4);
  EXPECT_EQ(f32.Get("model.layers.3.self_attn.k_proj.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(f32.Get("model.layers.4.mlp.down_proj.weight").shape, (std::vector<int64_t>{64, 172}));
  // Values read by Python's struct module from the same file.
  EXPECT_FLOAT_EQ(emb.as<float>()[0], -0.29474878311157227f);
  EXPECT_FLOAT_EQ(emb.as<float>()[1], 0.5618956089019775f);
  double norm_sum = 0;
  const TensorView& norm = f32.Get("model.norm.weight");
  for (int i = 0; i < 64; ++i) norm_sum += norm.as<float>()[i];
  EXPECT_NEAR(norm_sum, 115.95276230573654, 1e-4);

  // The bf16 copy is the f32 model rounded to bf16 (round to nearest even, as torch does): exact agreement.
  ASSERT_EQ(bf16.Names(), f32.Names());
  EXPECT_EQ(bf16.TotalBytes() * 2, f32.TotalBytes());
  for (const std::string& name : f32.Names()) {
    const TensorView& a = f32.Get(name);
    const TensorView& b = bf16.Get(name);
    ASSERT_EQ(b.dtype, DType::kBF16) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    for (int64_t i = 0; i < a.numel(); ++i)
      ASSERT_EQ(F32ToBF16(a.as<float>()[i]), b.as<uint16_t>()[i]) << name << " element " << i;
  }
}

}  // namespace
}  // namespace pensieve
