#pragma once
// GGUF reader: header, key/value metadata and tensor infos (versions 2 and 3).
//
// Contract:
//  - A GGUF file is untrusted input. Every length, count, type tag and offset is checked against the file size
//    before use; anything wrong throws pensieve::Error naming the file, the key (or tensor) and the byte offset.
//  - Metadata is parsed eagerly into owned values (small: vocabularies are the biggest part). Tensor data is not
//    read: TensorInfo gives each tensor's absolute file offset (checked to lie inside the file for the size its
//    type and shape imply, where the type's size is known) so the model loader can map it later.
//  - The bytes are memory-mapped (Open) or borrowed (Parse, for fuzzing and tests); a GgufFile owns its mapping.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
const char* GgufTypeName(GgufType type);

// One metadata value. Scalars live in one of int_/uint_/float_/str_; arrays keep their element type and one
// vector filled according to it (integers and bools in ints, floats in floats, strings in strings).
struct GgufValue {
  GgufType type = GgufType::kUint8;
  GgufType elem_type = GgufType::kUint8;  // for arrays
  int64_t int_value = 0;                 // signed integers and bool
  uint64_t uint_value = 0;               // unsigned integers (also mirrored into int_value when it fits)
  double float_value = 0;
  std::string string_value;
  std::vector<int64_t> ints;         // array of integers / bools (uint64 > INT64_MAX is rejected)
  std::vector<double> floats;        // array of float32/float64
  std::vector<std::string> strings;  // array of strings
  uint64_t array_size = 0;

  bool IsInteger() const;
  bool IsArray() const { return type == GgufType::kArray; }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // ggml order: shape[0] is the fastest-moving dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;       // relative to data_offset(), as stored
  uint64_t file_offset = 0;  // absolute
  uint64_t n_bytes = 0;      // size implied by type and shape; 0 when the type's block size is unknown here
};
// A ggml tensor type's name ("Q4_0", "Q6_K", ...; "an unknown type" for numbers this reader does not know).
const char* GgmlTypeName(uint32_t ggml_type);
// Bytes per block and elements per block of a ggml tensor type; false when unknown to this reader.
bool GgmlTypeBlock(uint32_t ggml_type, uint64_t* block_bytes, uint64_t* block_elems);

class GgufFile {
 public:
  // Maps and parses `path`. Throws Error on I/O failure or malformed content.
  static std::unique_ptr<GgufFile> Open(const std::string& path);
  // Parses bytes owned by the caller (they must outlive the result). `name` is used in error messages.
  static std::unique_ptr<GgufFile> Parse(std::span<const uint8_t> bytes, const std::string& name);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  std::span<const uint8_t> bytes() const { return bytes_; }
  // Drops the mapped pages of bytes [p, p + n) from memory once they have been read (they come back from the
  // file if touched again); nothing for bytes given to Parse.
  void Release(const void* p, size_t n) const;

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  bool Has(std::string_view key) const;
  const GgufValue* Find(std::string_view key) const;
  // Typed getters: nullopt when absent, Error when present with the wrong type.
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<int64_t> GetInt(std::string_view key) const;  // any integer type
  std::optional<bool> GetBool(std::string_view key) const;
  std::optional<double> GetFloat(std::string_view key) const;  // float32/float64
  // Arrays: Error when present with the wrong element type; nullptr when absent.
  const std::vector<std::string>* GetStringArray(std::string_view key) const;
  const std::vector<int64_t>* GetIntArray(std::string_view key) const;
  const std::vector<double>* GetFloatArray(std::string_view key) const;

 private:
  GgufFile() = default;
  void ParseAll();

  std::string name_;
  std::span<const uint8_t> bytes_;
  void* map_ = nullptr;  // mmap base when Open() mapped the file
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace pensieve
