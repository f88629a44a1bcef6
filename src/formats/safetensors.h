#pragma once
// safetensors: memory-mapped reading (single file, model directory, sharded set) and writing.
//
// File layout (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes of
// JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data area; offsets are relative to the data area (byte 8 + N).
//
// Contract: opening validates everything before any tensor is handed out (header length, JSON shape, dtype,
// dims >= 0, no overflow of the shape product, begin <= end inside the data area, no overlaps,
// end - begin == numel * dtype size); any failure throws pensieve::Error naming the file and the tensor.
// TensorView::data points into a read-only private mapping that lives as long as the TensorStore (or the
// SafetensorsFile) that made it: weights are used in place, nothing copies them.
// Alignment: every TensorView::data is aligned to its element size. Writers pad the header to 8 bytes and
// order tensors so the mapped data already is; a tensor that is not (unpadded legacy header, odd layout) is
// copied once into an aligned heap buffer, the only case where a weight is copied.
// Thread safety: a store is immutable after Open; concurrent readers are fine.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/dtype.h"

namespace pensieve {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // path of the file that holds it, for error messages

  int64_t numel() const;
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  // Dimension i; negative i counts from the end (dim(-1) is the last).
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : static_cast<size_t>(i)); }
  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(data); }
  // "name [512, 64] F32" — for messages and `pensieve info`.
  std::string Describe() const;
};

// One parsed header entry (offsets relative to the data area). Exposed for the fuzzer and tests.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// Parses and validates the header of a safetensors file held in bytes[0, size). `file` names it in errors.
// Checks everything listed in the contract above against `size`.
SafetensorsHeader ParseSafetensorsHeader(const std::byte* bytes, size_t size, const std::string& file);

// A read-only memory mapping of a whole file. Move-only.
class MappedFile {
 public:
  // Throws Error naming path if it cannot be opened or mapped. An empty file maps to (nullptr, 0).
  explicit MappedFile(const std::string& path);
  // A view of bytes someone else owns (e.g. a model embedded in the binary): nothing is mapped or copied, and
  // the bytes must outlive this object. `name` stands in for the path in messages.
  static MappedFile FromMemory(const std::string& name, const std::byte* data, size_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the whole pages of [p, p + n) that lie in this mapping from memory (they are read from the file
  // again if touched): for bytes copied elsewhere at load. A no-op for FromMemory views and outside ranges.
  void Evict(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = true;  // false for FromMemory views: never unmapped
};

// One mapped, validated .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  // Over bytes held in memory (see MappedFile::FromMemory), validated the same way.
  explicit SafetensorsFile(MappedFile map);
  const std::string& path() const { return map_.path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_bytes() const { return map_.size(); }
  void Evict(const void* p, size_t n) const { map_.Evict(p, n); }

 private:
  MappedFile map_;
  std::vector<std::unique_ptr<std::byte[]>> copies_;  // aligned copies of misaligned tensors (rare)
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model: a single .safetensors file, a directory holding model.safetensors or
// model.safetensors.index.json (sharded; "weight_map": {tensor: shard file}), or a directory with exactly
// the *.safetensors files of one model (all are loaded; duplicate names are an error).
class TensorStore {
 public:
  // Throws Error (naming the path, file and tensor) on any problem, including an index that names a missing
  // shard or a tensor its shard does not hold.
  static TensorStore Open(const std::string& path);
  // One safetensors file held in memory (bytes owned by the caller and outliving the store; used in place,
  // not copied). `name` stands in for the path in messages. Same validation as Open.
  static TensorStore FromMemory(const std::string& name, const std::byte* data, size_t size);
  // The same over bytes the store keeps (a checkpoint rewritten at load, e.g. from GGUF).
  static TensorStore FromOwnedBytes(const std::string& name, std::vector<std::byte> bytes);

  // Nullptr when absent.
  const TensorView* Find(std::string_view name) const;
  // Throws Error "tensor 'x' not found in <path>" when absent.
  const TensorView& Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }

  // Sorted tensor names.
  std::vector<std::string> Names() const;
  size_t size() const { return by_name_.size(); }
  // Sum of tensor data bytes.
  uint64_t TotalBytes() const;
  // Sum of file sizes (headers included).
  uint64_t FileBytes() const;
  // __metadata__ of the first file (e.g. {"format": "mlx"} or {"format": "pt"}); empty when none.
  const std::map<std::string, std::string>& Metadata() const;
  // The path given to Open.
  const std::string& path() const { return path_; }
  // The opened files, in load order.
  std::vector<std::string> Files() const;
  // Tensor bytes [p, p + n) are no longer read where they are (a backend copied them): the whole pages of the
  // range that lie in a mapped file leave memory (MappedFile::Evict) and are read from the file if touched; those
  // in bytes the store owns (FromOwnedBytes) are released and read as zeros after; other memory stays.
  void Evict(const void* p, size_t n) const;

 private:
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorView*> by_name_;
  std::shared_ptr<const std::vector<std::byte>> owned_;  // FromOwnedBytes: the bytes the views point into
};

// Writes a .safetensors file. Tensors are declared first and their bytes produced at Write time, so a
// writer of a large model never holds more than one tensor in memory (use AddLazy).
// The header is padded with spaces to a multiple of 8 bytes so the data area is 8-aligned; tensors are laid
// out contiguously (the format allows no holes) in the order added, unless that would leave a tensor at an
// offset that is not a multiple of its element size: then they are ordered by element size, largest first
// (stable), so every tensor is aligned to its element size.
class SafetensorsWriter {
 public:
  // Fills exactly nbytes bytes at dst.
  using Producer = std::function<void(std::byte* dst, size_t nbytes)>;

  void SetMetadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }
  // Copies bytes (size must equal numel * dtype size; throws Error otherwise). For small tensors and tests.
  void Add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes);
  // Takes the bytes of `data` (moved in, not copied; its size must equal numel * dtype size).
  template <class T>
  void AddMoved(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<T> data) {
    auto held = std::make_shared<const std::vector<T>>(std::move(data));
    AddHeld(name, dtype, std::move(shape), held, held->data(), held->size() * sizeof(T));
  }
  // Declares a tensor whose bytes `produce` fills when Write runs.
  void AddLazy(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer produce);
  // Writes the file (to path + ".tmp", then renames). Throws Error on I/O failure or duplicate names.
  void Write(const std::string& path) const;
  // The same file's bytes, in memory.
  std::vector<std::byte> ToBytes() const;
  // Writes the tensors into model directory `dir` as mlx-lm and transformers do: one `model.safetensors` when
  // the data fits in max_shard_bytes, else `model-0000i-of-0000N.safetensors` shards (tensors in the order
  // added, a new shard when the next tensor would overflow the current one) plus
  // `model.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {name: shard}}).
  // Returns the files written (names relative to dir).
  std::vector<std::string> WriteModelDir(const std::string& dir, uint64_t max_shard_bytes = 5ull << 30) const;
  // Bytes the file will have.
  uint64_t FileBytes() const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t nbytes;
    Producer produce;
  };
  // Add's check, then a tensor whose bytes are `size` bytes at `data`, kept alive by `owner`.
  void AddHeld(const std::string& name, DType dtype, std::vector<int64_t> shape, std::shared_ptr<const void> owner,
               const void* data, size_t size);
  std::string HeaderJson() const;
  std::vector<size_t> Layout() const;  // order of entries in the data area
  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
};

}  // namespace pensieve
