#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/pages.h"
#include "util/file.h"

namespace pensieve {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The reference implementation refuses headers above 100 MB; so do we (and a bigger one is no model).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Reads an unsigned integer from a JSON value; false if it is not a non-negative integer.
bool AsU64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) { *out = v.get<uint64_t>(); return true; }
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x < 0) return false;
    *out = static_cast<uint64_t>(x);
    return true;
  }
  return false;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::Describe() const {
  return name + " " + ShapeString(shape) + " " + std::string(DTypeName(dtype));
}

SafetensorsHeader ParseSafetensorsHeader(const std::byte* bytes, size_t size, const std::string& file) {
  auto fail = [&](const std::string& msg) -> Error { return Error(file + ": " + msg); };
  if (size < 8)
    throw fail("not a safetensors file: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  if (n > kMaxHeaderBytes)
    throw fail("safetensors header length " + std::to_string(n) + " is absurd (limit " +
               std::to_string(kMaxHeaderBytes) + " bytes)");
  if (n > size - 8)
    throw fail("safetensors header length " + std::to_string(n) + " runs past the end of the file (" +
               std::to_string(size) + " bytes)");
  if (n < 2) throw fail("safetensors header of " + std::to_string(n) + " bytes cannot hold a JSON object");

  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json j;
  try {
    j = json::parse(text, text + n);
  } catch (const json::exception& e) {
    throw fail(std::string("safetensors header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw fail("safetensors header is not a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw fail("__metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m)
        h.metadata[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
      continue;
    }
    auto tfail = [&](const std::string& msg) { return fail("tensor '" + name + "': " + msg); };
    if (!v.is_object()) throw tfail("entry is not a JSON object");
    SafetensorsEntry e;
    e.name = name;

    auto dt = v.find("dtype");
    if (dt == v.end()) throw tfail("missing 'dtype'");
    if (!dt->is_string()) throw tfail("'dtype' is not a string");
    auto parsed = ParseDType(dt->get<std::string>());
    if (!parsed) throw tfail("unsupported dtype '" + dt->get<std::string>() + "'");
    e.dtype = *parsed;

    auto sh = v.find("shape");
    if (sh == v.end()) throw tfail("missing 'shape'");
    if (!sh->is_array()) throw tfail("'shape' is not an array");
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
        throw tfail("negative dimension " + std::to_string(d.get<int64_t>()) + " in shape");
      uint64_t dim;
      if (!AsU64(d, &dim)) throw tfail("shape holds a non-integer " + d.dump());
      if (dim > static_cast<uint64_t>(INT64_MAX)) throw tfail("dimension " + d.dump() + " too large");
      e.shape.push_back(static_cast<int64_t>(dim));
      if (__builtin_mul_overflow(numel, dim, &numel)) throw tfail("shape " + sh->dump() + " overflows 64 bits");
    }
    uint64_t expected;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeSize(e.dtype)), &expected))
      throw tfail("shape " + sh->dump() + " overflows 64 bits");

    auto off = v.find("data_offsets");
    if (off == v.end()) throw tfail("missing 'data_offsets'");
    if (!off->is_array() || off->size() != 2 || !AsU64((*off)[0], &e.begin) || !AsU64((*off)[1], &e.end))
      throw tfail("'data_offsets' must be two non-negative integers, got " + off->dump());
    if (e.begin > e.end)
      throw tfail("data_offsets begin " + std::to_string(e.begin) + " > end " + std::to_string(e.end));
    if (e.end > data_size)
      throw tfail("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                  "] outside the data area of " + std::to_string(data_size) + " bytes (file truncated?)");
    if (e.end - e.begin != expected)
      throw tfail("holds " + std::to_string(e.end - e.begin) + " bytes but dtype " +
                  std::string(DTypeName(e.dtype)) + " x shape " + ShapeString(e.shape) + " needs " +
                  std::to_string(expected));
    h.tensors.push_back(std::move(e));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Overlap check over non-empty tensors (an empty tensor occupies no bytes, wherever it points).
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : h.tensors) {
    if (e.begin == e.end) continue;
    if (prev && e.begin < prev->end)
      throw fail("tensors '" + prev->name + "' [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) +
                 ") and '" + e.name + "' [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ") overlap");
    prev = &e;
  }
  return h;
}

// ---- MappedFile ----

MappedFile::MappedFile(const std::string& path) : path_(path) {
  RegularFile file(path);  // closed at return: the mapping keeps the file alive
  size_ = file.size();
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) {
      throw Error(path + ": cannot mmap " + std::to_string(size_) + " bytes: " + std::strerror(errno));
    }
    data_ = static_cast<const std::byte*>(p);
  }
}

MappedFile MappedFile::FromMemory(const std::string& name, const std::byte* data, size_t size) {
  MappedFile m;
  m.path_ = name;
  m.data_ = size ? data : nullptr;
  m.size_ = size;
  m.owned_ = false;
  return m;
}

void MappedFile::Evict(const void* p, size_t n) const {
  // Read-only private mapping of a file never written: dropped pages come back from the file unchanged.
  if (data_ && owned_) DropWholePages(data_, size_, p, n);
}

MappedFile::~MappedFile() {
  if (data_ && owned_) ::munmap(const_cast<std::byte*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_), owned_(o.owned_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_ && owned_) ::munmap(const_cast<std::byte*>(data_), size_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    owned_ = o.owned_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

// ---- SafetensorsFile ----

SafetensorsFile::SafetensorsFile(const std::string& path) : SafetensorsFile(MappedFile(path)) {}

SafetensorsFile::SafetensorsFile(MappedFile map) : map_(std::move(map)) {
  const std::string& path = map_.path();
  SafetensorsHeader h = ParseSafetensorsHeader(map_.data(), map_.size(), path);
  metadata_ = std::move(h.metadata);
  tensors_.reserve(h.tensors.size());
  for (auto& e : h.tensors) {
    TensorView v;
    v.name = std::move(e.name);
    v.dtype = e.dtype;
    v.shape = std::move(e.shape);
    v.data = map_.data() + h.data_start + e.begin;
    v.nbytes = static_cast<size_t>(e.end - e.begin);
    v.file = path;
    if (reinterpret_cast<uintptr_t>(v.data) % DTypeSize(v.dtype) != 0) {
      // Legal but rare (an unpadded legacy header, or an odd layout): kernels need element alignment, so
      // this tensor gets an aligned heap copy (operator new aligns to at least 16 bytes).
      copies_.emplace_back(new std::byte[v.nbytes]);
      std::memcpy(copies_.back().get(), v.data, v.nbytes);
      v.data = copies_.back().get();
    }
    tensors_.push_back(std::move(v));
  }
}

// ---- TensorStore ----

namespace {


}  // namespace

TensorStore TensorStore::Open(const std::string& path) {
  TensorStore store;
  store.path_ = path;
  std::error_code ec;
  if (!PathPresent(path)) throw Error(path + ": no such file or directory");

  std::vector<std::string> shard_files;
  std::string index_path;
  if (IsDirectory(path)) {
    fs::path dir(path);
    if (PathPresent((dir / "model.safetensors.index.json").string())) {
      index_path = (dir / "model.safetensors.index.json").string();
    } else if (PathPresent((dir / "model.safetensors").string())) {
      shard_files.push_back((dir / "model.safetensors").string());
    } else {
      for (const auto& ent : fs::directory_iterator(dir, ec))
        if (ent.path().extension() == ".safetensors") shard_files.push_back(ent.path().string());
      std::sort(shard_files.begin(), shard_files.end());
      if (shard_files.empty()) throw Error(path + ": no model.safetensors, index or *.safetensors file in directory");
    }
  } else if (path.ends_with(".index.json")) {
    index_path = path;
  } else {
    shard_files.push_back(path);
  }

  // weight_map from the index, checked after the shards are loaded.
  std::vector<std::pair<std::string, std::string>> weight_map;
  if (!index_path.empty()) {
    json j;
    try {
      j = json::parse(ReadRegularFile(index_path));
    } catch (const json::exception& e) {
      throw Error(index_path + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw Error(index_path + ": not a JSON object");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) throw Error(index_path + ": missing 'weight_map' object");
    fs::path dir = fs::path(index_path).parent_path();
    std::set<std::string> seen;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        throw Error(index_path + ": weight_map['" + it.key() + "'] is not a file name");
      std::string shard = it.value().get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        throw Error(index_path + ": weight_map['" + it.key() + "'] names an invalid shard '" + shard + "'");
      std::string shard_path = (dir / shard).string();
      weight_map.emplace_back(it.key(), shard_path);
      if (seen.insert(shard_path).second) {
        if (!PathPresent(shard_path))
          throw Error(index_path + ": shard '" + shard + "' (holding tensor '" + it.key() + "') does not exist");
        shard_files.push_back(shard_path);
      }
    }
    if (shard_files.empty()) throw Error(index_path + ": weight_map is empty");
  }

  for (const auto& f : shard_files) {
    store.files_.push_back(std::make_unique<SafetensorsFile>(f));
    for (const TensorView& v : store.files_.back()->tensors()) {
      auto [it, inserted] = store.by_name_.emplace(v.name, &v);
      if (!inserted)
        throw Error(path + ": tensor '" + v.name + "' appears in both " + it->second->file + " and " + v.file);
    }
  }
  for (const auto& [name, shard_path] : weight_map) {
    auto it = store.by_name_.find(name);
    if (it == store.by_name_.end() || it->second->file != shard_path)
      throw Error(index_path + ": tensor '" + name + "' is mapped to " + shard_path + ", which does not hold it");
  }
  return store;
}

TensorStore TensorStore::FromMemory(const std::string& name, const std::byte* data, size_t size) {
  TensorStore store;
  store.path_ = name;
  store.files_.push_back(std::make_unique<SafetensorsFile>(MappedFile::FromMemory(name, data, size)));
  for (const TensorView& v : store.files_.back()->tensors()) {
    auto [it, inserted] = store.by_name_.emplace(v.name, &v);
    if (!inserted) throw Error(name + ": tensor '" + v.name + "' appears twice");
  }
  return store;
}

TensorStore TensorStore::FromOwnedBytes(const std::string& name, std::vector<std::byte> bytes) {
  auto owned = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  TensorStore store = FromMemory(name, owned->data(), owned->size());
  store.owned_ = std::move(owned);
  return store;
}

const TensorView* TensorStore::Find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& TensorStore::Get(std::string_view name) const {
  const TensorView* v = Find(name);
  if (!v) throw Error(path_ + ": tensor '" + std::string(name) + "' not found");
  return *v;
}

std::vector<std::string> TensorStore::Names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [k, v] : by_name_) names.push_back(k);
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t TensorStore::TotalBytes() const {
  uint64_t n = 0;
  for (const auto& [k, v] : by_name_) n += v->nbytes;
  return n;
}

void TensorStore::Evict(const void* p, size_t n) const {
  for (const auto& f : files_) f->Evict(p, n);
  // Bytes this store owns (a converted GGUF): the pages go back to the system and would read as zeros, which
  // the contract allows (evicted bytes are not read again); the buffer stays allocated until the store goes.
  if (owned_) DropWholePages(owned_->data(), owned_->size(), p, n);
}

uint64_t TensorStore::FileBytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += f->file_bytes();
  return n;
}

const std::map<std::string, std::string>& TensorStore::Metadata() const {
  static const std::map<std::string, std::string> kEmpty;
  return files_.empty() ? kEmpty : files_.front()->metadata();
}

std::vector<std::string> TensorStore::Files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

// ---- SafetensorsWriter ----

namespace {

size_t CheckedBytes(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) throw Error("safetensors writer: tensor '" + name + "' has a negative dimension");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      throw Error("safetensors writer: tensor '" + name + "' is too large");
  }
  return static_cast<size_t>(n);
}

}  // namespace

void SafetensorsWriter::Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::span<const std::byte> bytes) {
  size_t nbytes = CheckedBytes(name, dtype, shape);
  if (bytes.size() != nbytes)
    throw Error("safetensors writer: tensor '" + name + "' given " + std::to_string(bytes.size()) +
                " bytes, its dtype and shape need " + std::to_string(nbytes));
  auto copy = std::make_shared<std::vector<std::byte>>(bytes.begin(), bytes.end());
  entries_.push_back({name, dtype, std::move(shape), nbytes,
                      [copy](std::byte* dst, size_t n) { std::memcpy(dst, copy->data(), n); }});
}

void SafetensorsWriter::AddHeld(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                std::shared_ptr<const void> owner, const void* data, size_t size) {
  size_t nbytes = CheckedBytes(name, dtype, shape);
  if (size != nbytes)
    throw Error("safetensors writer: tensor '" + name + "' given " + std::to_string(size) +
                " bytes, its dtype and shape need " + std::to_string(nbytes));
  entries_.push_back({name, dtype, std::move(shape), nbytes,
                      [owner, data](std::byte* dst, size_t n) { std::memcpy(dst, data, n); }});
}

void SafetensorsWriter::AddLazy(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                Producer produce) {
  size_t nbytes = CheckedBytes(name, dtype, shape);
  entries_.push_back({name, dtype, std::move(shape), nbytes, std::move(produce)});
}

std::vector<size_t> SafetensorsWriter::Layout() const {
  std::vector<size_t> order(entries_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  uint64_t offset = 0;
  bool aligned = true;
  for (const auto& e : entries_) {
    aligned = aligned && offset % DTypeSize(e.dtype) == 0;
    offset += e.nbytes;
  }
  // Insertion order unless it would misalign a tensor; then, as the reference writer does, larger element
  // sizes first (every offset is then a multiple of the element size that follows it). Stable, so a
  // quantized weight (U32) still precedes its scales and biases.
  if (!aligned)
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return DTypeSize(entries_[a].dtype) > DTypeSize(entries_[b].dtype);
    });
  return order;
}

std::string SafetensorsWriter::HeaderJson() const {
  json j = json::object();
  if (!metadata_.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    j["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (size_t i : Layout()) {
    const Entry& e = entries_[i];
    if (e.name == "__metadata__") throw Error("safetensors writer: '__metadata__' is not a tensor name");
    if (j.contains(e.name)) throw Error("safetensors writer: duplicate tensor '" + e.name + "'");
    j[e.name] = {{"dtype", std::string(DTypeName(e.dtype))}, {"shape", e.shape},
                 {"data_offsets", {offset, offset + e.nbytes}}};
    offset += e.nbytes;
  }
  std::string s = j.dump();
  s.append((8 - s.size() % 8) % 8, ' ');  // data area starts 8-aligned
  return s;
}

uint64_t SafetensorsWriter::FileBytes() const {
  uint64_t n = 8 + HeaderJson().size();
  for (const auto& e : entries_) n += e.nbytes;
  return n;
}

void SafetensorsWriter::Write(const std::string& path) const {
  std::string header = HeaderJson();
  std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path + ": cannot create: " + std::strerror(errno));
  auto io_fail = [&](const std::string& what) {
    int err = errno;
    std::fclose(f);
    std::remove(tmp.c_str());
    return Error(path + ": " + what + ": " + std::strerror(err));
  };
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  if (std::fwrite(len, 1, 8, f) != 8 || std::fwrite(header.data(), 1, header.size(), f) != header.size())
    throw io_fail("write failed");
  std::vector<std::byte> buf;
  for (size_t i : Layout()) {
    const Entry& e = entries_[i];
    if (buf.size() < e.nbytes) buf.resize(e.nbytes);
    try {
      e.produce(buf.data(), e.nbytes);
    } catch (...) {
      std::fclose(f);
      std::remove(tmp.c_str());
      throw;
    }
    if (e.nbytes && std::fwrite(buf.data(), 1, e.nbytes, f) != e.nbytes) throw io_fail("write failed");
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": close failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": rename failed: " + std::strerror(errno));
  }
}

std::vector<std::byte> SafetensorsWriter::ToBytes() const {
  const std::string header = HeaderJson();
  std::vector<std::byte> out(FileBytes());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(static_cast<uint64_t>(header.size()) >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  size_t at = 8 + header.size();
  for (size_t i : Layout()) {
    const Entry& e = entries_[i];
    e.produce(out.data() + at, e.nbytes);
    at += e.nbytes;
  }
  return out;
}

std::vector<std::string> SafetensorsWriter::WriteModelDir(const std::string& dir, uint64_t max_shard_bytes) const {
  uint64_t total = 0;
  for (const auto& e : entries_) total += e.nbytes;
  if (total <= max_shard_bytes) {
    Write((fs::path(dir) / "model.safetensors").string());
    return {"model.safetensors"};
  }
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0;
  for (size_t i : Layout()) {
    if (cur > 0 && cur + entries_[i].nbytes > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += entries_[i].nbytes;
  }
  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    SafetensorsWriter w;
    w.metadata_ = metadata_;
    for (size_t i : shards[s]) {
      w.entries_.push_back(entries_[i]);
      weight_map[entries_[i].name] = name;
    }
    w.Write((fs::path(dir) / name).string());
    names.push_back(name);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  std::ofstream out(index_path);
  out << index.dump(2) << "\n";
  if (!out) throw Error(index_path + ": write failed");
  names.push_back("model.safetensors.index.json");
  return names;
}

}  // namespace pensieve
