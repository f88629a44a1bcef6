#pragma once
// Element types of tensors stored in model files, and the float conversions every layer needs.
// Contract: DType values map 1:1 to safetensors dtype strings ("F32", "BF16", ...). Conversions are exact
// where the target can represent the value; f32 -> bf16/f16 round to nearest, ties to even (as PyTorch's
// .to(torch.bfloat16) and numpy's float16 cast do); NaN stays NaN, overflow goes to +-inf.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace pensieve {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kU32, kI16, kU16, kI8, kU8, kBool };

// Bytes per element.
constexpr size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF64: case DType::kI64: return 8;
    case DType::kF32: case DType::kI32: case DType::kU32: return 4;
    case DType::kF16: case DType::kBF16: case DType::kI16: case DType::kU16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
  }
  return 0;
}

// The safetensors spelling ("F32", "BF16", "U32", ...).
constexpr std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kU32: return "U32";
    case DType::kI16: return "I16";
    case DType::kU16: return "U16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

// Parses a safetensors dtype string; nullopt for anything else (e.g. "F8_E4M3", which we do not support).
std::optional<DType> ParseDType(std::string_view s);

// Parses a torch dtype name as config.json writes it ("float32", "bfloat16", "float16"); nullopt otherwise.
std::optional<DType> ParseTorchDType(std::string_view s);

inline bool IsFloat(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

// ---- bf16 / f16 <-> f32 ----

inline float BF16ToF32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t F32ToBF16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float F16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);  // inf / NaN
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {
    // Subnormal half: value = mant * 2^-24, exactly representable in f32.
    float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(u);
}

inline uint16_t F32ToF16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;             // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;            // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                                 // normal half (>= 2^-14)
    uint32_t r = a - (112u << 23);                        // rebias exponent
    r += 0xfffu + ((r >> 13) & 1u);                       // round to nearest even at bit 13
    return sign | static_cast<uint16_t>(r >> 13);
  }
  if (a < 0x33000000u) return sign;                       // < 2^-25: rounds to zero (ties to even: 0)
  // Subnormal half: value / 2^-24 rounded to nearest even integer.
  uint32_t exp = a >> 23;
  uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126 - exp;                             // mant * 2^(exp-150) / 2^-24 = mant >> (126-exp)
  uint32_t q = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return sign | static_cast<uint16_t>(q);
}

// Reads element i of a float tensor of dtype t (F32, F16, BF16, F64) as f32. For tests and slow paths.
inline float LoadAsF32(const void* data, DType t, size_t i) {
  const auto* p = static_cast<const unsigned char*>(data);
  switch (t) {
    case DType::kF32: { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
    case DType::kBF16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return BF16ToF32(v); }
    case DType::kF16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return F16ToF32(v); }
    case DType::kF64: { double v; std::memcpy(&v, p + 8 * i, 8); return static_cast<float>(v); }
    default: return 0.0f;
  }
}

// Writes v as element i of a float tensor of dtype t (F32, F16, BF16, F64), rounding as above.
inline void StoreFromF32(void* data, DType t, size_t i, float v) {
  auto* p = static_cast<unsigned char*>(data);
  switch (t) {
    case DType::kF32: std::memcpy(p + 4 * i, &v, 4); break;
    case DType::kBF16: { uint16_t h = F32ToBF16(v); std::memcpy(p + 2 * i, &h, 2); break; }
    case DType::kF16: { uint16_t h = F32ToF16(v); std::memcpy(p + 2 * i, &h, 2); break; }
    case DType::kF64: { double d = v; std::memcpy(p + 8 * i, &d, 8); break; }
    default: break;
  }
}

}  // namespace pensieve
