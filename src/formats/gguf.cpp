#include "formats/gguf.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "util/error.h"
#include "util/pages.h"
#include "util/file.h"

namespace pensieve {
namespace {

// Caps that no real file approaches; they stop a forged count from driving huge allocations before the
// per-element bounds checks would catch it.
constexpr uint64_t kMaxDims = 8;
constexpr uint64_t kMaxStringLen = uint64_t{1} << 30;

// Bounds-checked little-endian cursor over the file bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void Fail(const std::string& what, const std::string& where, uint64_t at) const {
    throw Error("GGUF " + name_ + ": " + what + (where.empty() ? "" : " (" + where + ")") + " at offset " +
                std::to_string(at));
  }

  void Need(uint64_t n, const std::string& where) const {
    if (n > remaining())
      Fail("truncated: need " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left", where,
           pos_);
  }

  template <typename T>
  T Read(const std::string& where) {
    Need(sizeof(T), where);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // GGUF is little-endian; so are our targets
    pos_ += sizeof(T);
    return v;
  }

  std::string ReadString(const std::string& where) {
    uint64_t at = pos_;
    uint64_t len = Read<uint64_t>(where);
    if (len > kMaxStringLen || len > remaining())
      Fail("string length " + std::to_string(len) + " runs past the end of the file", where, at);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

uint64_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    default: return 0;
  }
}

bool ValidType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

// Reads one scalar of `type` into v (scalar fields) and returns it also as int64/double for arrays.
void ReadScalar(Cursor& c, GgufType type, GgufValue& v, const std::string& key) {
  uint64_t at = c.pos();
  switch (type) {
    case GgufType::kUint8: v.uint_value = c.Read<uint8_t>(key); v.int_value = static_cast<int64_t>(v.uint_value); break;
    case GgufType::kInt8: v.int_value = c.Read<int8_t>(key); break;
    case GgufType::kUint16: v.uint_value = c.Read<uint16_t>(key); v.int_value = static_cast<int64_t>(v.uint_value); break;
    case GgufType::kInt16: v.int_value = c.Read<int16_t>(key); break;
    case GgufType::kUint32: v.uint_value = c.Read<uint32_t>(key); v.int_value = static_cast<int64_t>(v.uint_value); break;
    case GgufType::kInt32: v.int_value = c.Read<int32_t>(key); break;
    case GgufType::kUint64:
      v.uint_value = c.Read<uint64_t>(key);
      v.int_value = v.uint_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                        ? std::numeric_limits<int64_t>::max()
                        : static_cast<int64_t>(v.uint_value);
      break;
    case GgufType::kInt64: v.int_value = c.Read<int64_t>(key); break;
    case GgufType::kFloat32: v.float_value = c.Read<float>(key); break;
    case GgufType::kFloat64: v.float_value = c.Read<double>(key); break;
    case GgufType::kBool: {
      uint8_t b = c.Read<uint8_t>(key);
      if (b > 1) c.Fail("bool value " + std::to_string(b) + " is neither 0 nor 1", key, at);
      v.int_value = b;
      break;
    }
    case GgufType::kString: v.string_value = c.ReadString(key); break;
    default: c.Fail("bad value type " + std::to_string(static_cast<uint32_t>(type)), key, at);
  }
}

void ReadArray(Cursor& c, GgufValue& v, const std::string& key) {
  uint64_t at = c.pos();
  uint32_t et = c.Read<uint32_t>(key);
  if (!ValidType(et)) c.Fail("bad array element type " + std::to_string(et), key, at);
  v.elem_type = static_cast<GgufType>(et);
  uint64_t count_at = c.pos();
  uint64_t n = c.Read<uint64_t>(key);
  v.array_size = n;
  if (v.elem_type == GgufType::kArray) c.Fail("nested arrays are not supported", key, at);
  if (v.elem_type == GgufType::kString) {
    // Each string needs at least its 8-byte length.
    if (n > c.remaining() / 8)
      c.Fail("array count " + std::to_string(n) + " exceeds what the file can hold", key, count_at);
    v.strings.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.strings.push_back(c.ReadString(key + "[" + std::to_string(i) + "]"));
    return;
  }
  uint64_t es = ScalarSize(v.elem_type);
  if (n > c.remaining() / es)
    c.Fail("array count " + std::to_string(n) + " exceeds what the file can hold", key, count_at);
  bool is_float = v.elem_type == GgufType::kFloat32 || v.elem_type == GgufType::kFloat64;
  if (is_float) v.floats.reserve(n); else v.ints.reserve(n);
  GgufValue tmp;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t eat = c.pos();
    ReadScalar(c, v.elem_type, tmp, key);
    if (is_float) {
      v.floats.push_back(tmp.float_value);
    } else {
      if (v.elem_type == GgufType::kUint64 &&
          tmp.uint_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.Fail("uint64 array element too large", key + "[" + std::to_string(i) + "]", eat);
      v.ints.push_back(tmp.int_value);
    }
  }
}

}  // namespace

const char* GgufTypeName(GgufType type) {
  static const char* kNames[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                 "bool",  "string", "array", "uint64", "int64",  "float64"};
  auto i = static_cast<uint32_t>(type);
  return i < 13 ? kNames[i] : "invalid";
}

bool GgufValue::IsInteger() const {
  switch (type) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

const char* GgmlTypeName(uint32_t t) {
  switch (t) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 6: return "Q5_0";
    case 7: return "Q5_1";
    case 8: return "Q8_0";
    case 9: return "Q8_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 12: return "Q4_K";
    case 13: return "Q5_K";
    case 14: return "Q6_K";
    case 15: return "Q8_K";
    case 16: return "IQ2_XXS";
    case 17: return "IQ2_XS";
    case 18: return "IQ3_XXS";
    case 19: return "IQ1_S";
    case 20: return "IQ4_NL";
    case 21: return "IQ3_S";
    case 22: return "IQ2_S";
    case 23: return "IQ4_XS";
    case 24: return "I8";
    case 25: return "I16";
    case 26: return "I32";
    case 27: return "I64";
    case 28: return "F64";
    case 29: return "IQ1_M";
    case 30: return "BF16";
    default: return "an unknown type";
  }
}

bool GgmlTypeBlock(uint32_t t, uint64_t* bytes, uint64_t* elems) {
  struct B { uint32_t type; uint64_t bytes, elems; };
  static constexpr B kBlocks[] = {
      {0, 4, 1},     {1, 2, 1},     {2, 18, 32},   {3, 20, 32},   {6, 22, 32},   {7, 24, 32},
      {8, 34, 32},   {9, 36, 32},   {10, 84, 256}, {11, 110, 256}, {12, 144, 256}, {13, 176, 256},
      {14, 210, 256}, {15, 292, 256}, {24, 1, 1},  {25, 2, 1},    {26, 4, 1},    {27, 8, 1},
      {20, 18, 32},  {23, 136, 256}, {28, 8, 1},  {30, 2, 1},
  };
  for (const B& b : kBlocks) {
    if (b.type == t) {
      *bytes = b.bytes;
      *elems = b.elems;
      return true;
    }
  }
  return false;
}

std::unique_ptr<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes, const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = name;
  f->bytes_ = bytes;
  f->ParseAll();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::Open(const std::string& path) {
  RegularFile file(path);  // closed at return: the mapping keeps the file alive
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = path;
  const size_t size = file.size();
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) throw Error(path + ": cannot map the GGUF file: " + std::strerror(errno));
    f->map_ = p;
    f->map_size_ = size;
    f->bytes_ = std::span<const uint8_t>(static_cast<const uint8_t*>(p), size);
  }
  f->ParseAll();
  return f;
}

void GgufFile::Release(const void* p, size_t n) const {
  if (map_) DropWholePages(map_, map_size_, p, n);
}

GgufFile::~GgufFile() {
  if (map_) ::munmap(map_, map_size_);
}

void GgufFile::ParseAll() {
  Cursor c(bytes_, name_);
  c.Need(4, "magic");
  if (std::memcmp(bytes_.data(), "GGUF", 4) != 0) c.Fail("not a GGUF file (bad magic)", "magic", 0);
  c.Read<uint32_t>("magic");
  uint64_t at = c.pos();
  version_ = c.Read<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    c.Fail("unsupported version " + std::to_string(version_) + " (need 2 or 3)", "version", at);
  uint64_t n_tensors = c.Read<uint64_t>("tensor_count");
  at = c.pos();
  uint64_t n_kv = c.Read<uint64_t>("kv_count");
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least 8+4+4+8.
  if (n_kv > c.remaining() / 13)
    c.Fail("kv_count " + std::to_string(n_kv) + " exceeds what the file can hold", "kv_count", at);
  for (uint64_t i = 0; i < n_kv; ++i) {
    uint64_t key_at = c.pos();
    std::string key = c.ReadString("key #" + std::to_string(i));
    if (key.empty()) c.Fail("empty key", "key #" + std::to_string(i), key_at);
    if (kv_.count(key)) c.Fail("duplicate key", key, key_at);
    uint64_t type_at = c.pos();
    uint32_t t = c.Read<uint32_t>(key);
    if (!ValidType(t)) c.Fail("bad value type " + std::to_string(t), key, type_at);
    GgufValue v;
    v.type = static_cast<GgufType>(t);
    if (v.type == GgufType::kArray) ReadArray(c, v, key); else ReadScalar(c, v.type, v, key);
    kv_.emplace(std::move(key), std::move(v));
  }
  if (const GgufValue* a = Find("general.alignment")) {
    if (!a->IsInteger() || a->int_value <= 0 || (a->int_value & (a->int_value - 1)) != 0 ||
        a->int_value > (1 << 20))
      c.Fail("general.alignment must be a power of two integer", "general.alignment", 0);
    alignment_ = static_cast<uint64_t>(a->int_value);
  }
  at = c.pos();
  if (n_tensors > c.remaining() / 24)
    c.Fail("tensor_count " + std::to_string(n_tensors) + " exceeds what the file can hold", "tensor_count", 8);
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo ti;
    ti.name = c.ReadString("tensor #" + std::to_string(i) + " name");
    const std::string where = "tensor " + ti.name;
    uint64_t dims_at = c.pos();
    uint32_t nd = c.Read<uint32_t>(where);
    if (nd == 0 || nd > kMaxDims) c.Fail("bad dimension count " + std::to_string(nd), where, dims_at);
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t dim_at = c.pos();
      uint64_t dim = c.Read<uint64_t>(where);
      if (dim != 0 && n_elems > (uint64_t{1} << 62) / dim) c.Fail("shape overflows", where, dim_at);
      n_elems *= dim;
      ti.shape.push_back(dim);
    }
    ti.ggml_type = c.Read<uint32_t>(where);
    ti.offset = c.Read<uint64_t>(where);
    uint64_t bb, be;
    if (GgmlTypeBlock(ti.ggml_type, &bb, &be)) {
      if (ti.shape[0] % be != 0)
        c.Fail("first dimension " + std::to_string(ti.shape[0]) + " is not a multiple of the block size", where,
               dims_at);
      ti.n_bytes = n_elems / be * bb;
    }
    tensors_.push_back(std::move(ti));
  }
  uint64_t end_of_infos = c.pos();
  data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
  for (GgufTensorInfo& ti : tensors_) {
    if (ti.offset % alignment_ != 0)
      c.Fail("tensor data offset " + std::to_string(ti.offset) + " is not aligned", "tensor " + ti.name,
             end_of_infos);
    if (n_tensors > 0 && (data_offset_ > bytes_.size() || ti.offset > bytes_.size() - data_offset_ ||
                          ti.n_bytes > bytes_.size() - data_offset_ - ti.offset))
      c.Fail("tensor data [" + std::to_string(ti.offset) + ", +" + std::to_string(ti.n_bytes) +
                 ") lies past the end of the file",
             "tensor " + ti.name, end_of_infos);
    ti.file_offset = data_offset_ + ti.offset;
  }
}

bool GgufFile::Has(std::string_view key) const { return kv_.find(key) != kv_.end(); }

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void WrongType(const std::string& file, std::string_view key, const GgufValue& v, const char* want) {
  std::string got = GgufTypeName(v.type);
  if (v.IsArray()) got += std::string(" of ") + GgufTypeName(v.elem_type);
  throw Error("GGUF " + file + ": key " + std::string(key) + " has type " + got + ", expected " + want);
}
}  // namespace

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kString) WrongType(name_, key, *v, "string");
  return v->string_value;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return std::nullopt;
  if (!v->IsInteger()) WrongType(name_, key, *v, "integer");
  return v->int_value;
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kBool) WrongType(name_, key, *v, "bool");
  return v->int_value != 0;
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kFloat32 && v->type != GgufType::kFloat64) WrongType(name_, key, *v, "float");
  return v->float_value;
}

const std::vector<std::string>* GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return nullptr;
  if (!v->IsArray() || v->elem_type != GgufType::kString) WrongType(name_, key, *v, "array of string");
  return &v->strings;
}

const std::vector<int64_t>* GgufFile::GetIntArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return nullptr;
  if (!v->IsArray() || v->elem_type == GgufType::kString || v->elem_type == GgufType::kFloat32 ||
      v->elem_type == GgufType::kFloat64)
    WrongType(name_, key, *v, "array of integer");
  return &v->ints;
}

const std::vector<double>* GgufFile::GetFloatArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return nullptr;
  if (!v->IsArray() || (v->elem_type != GgufType::kFloat32 && v->elem_type != GgufType::kFloat64))
    WrongType(name_, key, *v, "array of float");
  return &v->floats;
}

}  // namespace pensieve
