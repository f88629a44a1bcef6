#pragma once
// Little-endian GGUF writer for building test files by hand (well-formed or deliberately broken).
#include <cstdint>
#include <string>
#include <vector>

namespace pensieve::test {

class GgufWriter {
 public:
  GgufWriter& U32(uint32_t v) { return Raw(&v, 4); }
  GgufWriter& U64(uint64_t v) { return Raw(&v, 8); }
  GgufWriter& I32(int32_t v) { return Raw(&v, 4); }
  GgufWriter& F32(float v) { return Raw(&v, 4); }
  GgufWriter& Str(const std::string& s) {
    U64(s.size());
    return Raw(s.data(), s.size());
  }
  GgufWriter& Raw(const void* p, size_t n) {
    bytes.insert(bytes.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return *this;
  }
  GgufWriter& Header(uint64_t n_tensors, uint64_t n_kv) {
    Raw("GGUF", 4);
    U32(3);
    U64(n_tensors);
    return U64(n_kv);
  }
  // Zero bytes up to the next multiple of `alignment` (the data area and each tensor start aligned).
  GgufWriter& Pad(size_t alignment = 32) {
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  std::vector<uint8_t> bytes;
};

}  // namespace pensieve::test
