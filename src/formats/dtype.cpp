#include "formats/dtype.h"

namespace pensieve {

std::optional<DType> ParseDType(std::string_view s) {
  static constexpr DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64, DType::kI32,
                                   DType::kU32, DType::kI16, DType::kU16, DType::kI8,  DType::kU8,  DType::kBool};
  for (DType t : kAll)
    if (DTypeName(t) == s) return t;
  return std::nullopt;
}

std::optional<DType> ParseTorchDType(std::string_view s) {
  if (s.starts_with("torch.")) s.remove_prefix(6);
  if (s == "float32" || s == "float") return DType::kF32;
  if (s == "bfloat16") return DType::kBF16;
  if (s == "float16" || s == "half") return DType::kF16;
  if (s == "float64" || s == "double") return DType::kF64;
  return std::nullopt;
}

}  // namespace pensieve
