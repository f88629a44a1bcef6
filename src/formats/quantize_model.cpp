#include "formats/quantize_model.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "util/error.h"
#include "util/file.h"
#include "util/parallel.h"

namespace pensieve {
namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string>& ModelSideFiles() {
  static const std::vector<std::string> kFiles = {
      "tokenizer.json", "tokenizer.json.gz", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
      "generation_config.json", "chat_template.jinja", "chat_template.json", "added_tokens.json",
      "vocab.json", "merges.txt"};
  return kFiles;
}

void AddQuantizedWeight(SafetensorsWriter& w, const std::string& module, int64_t rows, int64_t cols,
                        const QuantSpec& spec, DType param_dtype, RowSource source) {
  RequireSupportedQuant(spec, module);
  if (cols % spec.group_size != 0)
    throw Error(module + ": input dim " + std::to_string(cols) + " is not a multiple of group_size " +
                std::to_string(spec.group_size));
  struct Pending {
    std::vector<std::byte> scales, biases;
  };
  auto state = std::make_shared<Pending>();
  const int64_t packed_cols = spec.PackedCols(cols);
  const int64_t groups = spec.Groups(cols);
  const size_t psize = DTypeSize(param_dtype);
  w.AddLazy(module + ".weight", DType::kU32, {rows, packed_cols},
            [=](std::byte* dst, size_t) {
              state->scales.resize(static_cast<size_t>(rows * groups) * psize);
              state->biases.resize(state->scales.size());
              auto* packed = reinterpret_cast<uint32_t*>(dst);
              ParallelRanges(rows, 64, [&](int64_t begin, int64_t end) {
                std::vector<float> row(static_cast<size_t>(cols));
                for (int64_t r = begin; r < end; ++r) {
                  source(r, row.data());
                  QuantizeAffineRow(row.data(), cols, spec, packed + r * packed_cols, param_dtype,
                                    state->scales.data() + r * groups * psize,
                                    state->biases.data() + r * groups * psize);
                }
              });
            });
  w.AddLazy(module + ".scales", param_dtype, {rows, groups}, [=](std::byte* dst, size_t n) {
    if (state->scales.size() != n) throw Error(module + ".scales written before its weight");
    std::memcpy(dst, state->scales.data(), n);
    std::vector<std::byte>().swap(state->scales);
  });
  w.AddLazy(module + ".biases", param_dtype, {rows, groups}, [=](std::byte* dst, size_t n) {
    if (state->biases.size() != n) throw Error(module + ".biases written before its weight");
    std::memcpy(dst, state->biases.data(), n);
    std::vector<std::byte>().swap(state->biases);
  });
}

bool ShouldQuantize(const std::string& name, const std::vector<int64_t>& shape, DType dtype, const QuantSpec& spec) {
  return name.ends_with(".weight") && shape.size() == 2 && IsFloat(dtype) && spec.group_size > 0 &&
         shape[1] % spec.group_size == 0 && shape[1] > 0;
}

QuantizeStats QuantizeModelDir(const std::string& in_dir, const std::string& out_dir, const QuantSpec& spec) {
  RequireSupportedQuant(spec, "quantize");
  std::error_code ec;
  if (!fs::is_directory(in_dir, ec)) throw Error(in_dir + ": not a model directory");
  fs::path config_path = fs::path(in_dir) / "config.json";
  ModelConfig config = LoadModelConfig(in_dir);  // validates: supported architecture, sane dims
  if (config.quantization) throw Error(config_path.string() + ": model is already quantized");
  if (fs::exists(out_dir, ec) && fs::equivalent(in_dir, out_dir, ec))
    throw Error(out_dir + ": output directory must differ from the input");
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir + ": cannot create: " + ec.message());

  TensorStore store = TensorStore::Open(in_dir);
  QuantizeStats stats;
  stats.bytes_in = store.TotalBytes();
  SafetensorsWriter w;
  w.SetMetadata({{"format", "mlx"}});
  for (const std::string& name : store.Names()) {
    const TensorView& t = store.Get(name);
    if (ShouldQuantize(name, t.shape, t.dtype, spec)) {
      const TensorView* tp = &t;
      const int64_t cols = t.shape[1];
      AddQuantizedWeight(w, name.substr(0, name.size() - 7), t.shape[0], cols, spec, t.dtype,
                         [tp, cols](int64_t r, float* out) {
                           for (int64_t j = 0; j < cols; ++j)
                             out[j] = LoadAsF32(tp->data, tp->dtype, static_cast<size_t>(r * cols + j));
                         });
      ++stats.quantized_tensors;
    } else {
      const TensorView* tp = &t;
      w.AddLazy(name, t.dtype, t.shape, [tp](std::byte* dst, size_t n) { std::memcpy(dst, tp->data, n); });
      ++stats.copied_tensors;
    }
  }
  stats.files = w.WriteModelDir(out_dir);
  for (const auto& f : stats.files) stats.bytes_out += fs::file_size(fs::path(out_dir) / f, ec);

  // config.json: the input's keys unchanged, plus the quantization block mlx-lm writes.
  json cj = json::parse(ReadRegularFile(config_path.string()), nullptr, false);
  if (!cj.is_object()) throw Error(config_path.string() + ": not a JSON object");
  json q = {{"group_size", spec.group_size}, {"bits", spec.bits}};
  cj["quantization"] = q;
  cj["quantization_config"] = q;
  std::string out_config = (fs::path(out_dir) / "config.json").string();
  std::ofstream out(out_config);
  out << cj.dump(4) << "\n";
  if (!out) throw Error(out_config + ": write failed");
  stats.files.push_back("config.json");

  for (const std::string& f : ModelSideFiles()) {
    fs::path src = fs::path(in_dir) / f;
    if (!fs::exists(src, ec)) continue;
    fs::copy_file(src, fs::path(out_dir) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error((fs::path(out_dir) / f).string() + ": cannot copy: " + ec.message());
    stats.files.push_back(f);
  }
  return stats;
}

}  // namespace pensieve
