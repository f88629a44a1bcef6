#include "formats/gguf_model.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <span>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "util/error.h"
#include "util/parallel.h"

namespace pensieve {
namespace {

using json = nlohmann::json;

// ggml tensor types this loader reads.
enum GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ2_K = 10, kQ3_K = 11, kQ4_K = 12,
  kQ5_K = 13, kQ6_K = 14, kIQ4_NL = 20, kIQ4_XS = 23, kBF16 = 30
};

float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      uint32_t m = mant;
      do {
        ++e;
        m <<= 1;
      } while ((m & 0x400) == 0);
      bits = sign | ((127 - 15 - e) << 23) | ((m & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// One group of 32 codes as (codes, scale, bias) with w = scale * code + bias: group g of a row of a legacy type
// (a block each) or of Q4_K / Q5_K (eight per 256-value super-block, each with its 6-bit scale and min).
struct Block {
  uint8_t q[32];
  float scale, bias;
};

// Sub-block j's 6-bit scale and min from a K-quant's 12 packed bytes.
void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63, *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

Block DecodeGroup(uint32_t type, const uint8_t* row, int64_t g) {
  Block out{};
  if (type == kQ4_K || type == kQ5_K) {
    const uint8_t* b = row + (g / 8) * (type == kQ4_K ? 144 : 176);
    const int k = static_cast<int>(g % 8), pair = k / 2, shift = 4 * (k % 2);
    int sc, m;
    ScaleMinK4(k, b + 4, &sc, &m);
    const uint8_t* qs = b + (type == kQ4_K ? 16 : 48) + 32 * pair;
    for (int l = 0; l < 32; ++l) {
      out.q[l] = static_cast<uint8_t>((qs[l] >> shift) & 15);
      if (type == kQ5_K) out.q[l] |= static_cast<uint8_t>(((b[16 + l] >> k) & 1) << 4);
    }
    out.scale = HalfToFloat(Le16(b)) * static_cast<float>(sc);
    out.bias = -(HalfToFloat(Le16(b + 2)) * static_cast<float>(m));
    return out;
  }
  const uint8_t* b = row + g * (type == kQ4_0 ? 18 : type == kQ4_1 ? 20 : type == kQ5_0 ? 22 : type == kQ5_1 ? 24 : 34);
  const float d = HalfToFloat(Le16(b));
  switch (type) {
    case kQ4_0:
      for (int j = 0; j < 16; ++j) out.q[j] = b[2 + j] & 15, out.q[j + 16] = b[2 + j] >> 4;
      out.scale = d, out.bias = -8.0f * d;
      break;
    case kQ4_1:
      for (int j = 0; j < 16; ++j) out.q[j] = b[4 + j] & 15, out.q[j + 16] = b[4 + j] >> 4;
      out.scale = d, out.bias = HalfToFloat(Le16(b + 2));
      break;
    case kQ5_0:
    case kQ5_1: {
      const int at = type == kQ5_0 ? 2 : 4;
      uint32_t qh;
      std::memcpy(&qh, b + at, 4);
      for (int j = 0; j < 16; ++j) {
        out.q[j] = static_cast<uint8_t>((b[at + 4 + j] & 15) | (((qh >> j) & 1) << 4));
        out.q[j + 16] = static_cast<uint8_t>((b[at + 4 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
      }
      out.scale = d, out.bias = type == kQ5_0 ? -16.0f * d : HalfToFloat(Le16(b + 2));
      break;
    }
    case kQ8_0:
      for (int j = 0; j < 32; ++j) out.q[j] = static_cast<uint8_t>(static_cast<int8_t>(b[2 + j]) + 128);
      out.scale = d, out.bias = -128.0f * d;
      break;
  }
  return out;
}

// Types whose blocks have no exact affine form with groups of 32 (groups of 16 with their own scales and mins,
// signed 6-bit scales, or a non-linear code book): a block's values are decoded to f32 as gguf-py's quants.py
// computes them, and stored as f16.

// Q2_K (84 bytes): 16 groups of 16, each with a 4-bit scale and min (d sc q - dmin m), 2-bit codes.
void DecodeQ2K(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = HalfToFloat(Le16(b + 80)), dmin = HalfToFloat(Le16(b + 82));
  for (int v = 0; v < 256; ++v) {  // v = 128 c + 32 s + l: bits 2s of byte 32 c + l
    const int q = (qs[(v / 128) * 32 + v % 32] >> (2 * ((v / 32) % 4))) & 3;
    const uint8_t sc = scales[v / 16];
    y[v] = (d * static_cast<float>(sc & 0xF)) * static_cast<float>(q) - dmin * static_cast<float>(sc >> 4);
  }
}

// Q3_K (110 bytes): 16 groups of 16 with signed 6-bit scales, 2-bit codes plus a high bit (set: no offset).
void DecodeQ3K(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sc = b + 96;
  const float d = HalfToFloat(Le16(b + 108));
  for (int v = 0; v < 256; ++v) {
    const int j = v / 16;
    const int scale = (((sc[j % 8] >> (4 * (j / 8))) & 0xF) | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    const int low = (qs[(v / 128) * 32 + v % 32] >> (2 * ((v / 32) % 4))) & 3;
    const int high = (hmask[v % 32] >> (v / 32)) & 1;
    y[v] = (d * static_cast<float>(scale)) * static_cast<float>(low - 4 * (1 - high));
  }
}

// Q6_K (210 bytes): 16 groups of 16 with int8 scales, 6-bit codes.
void DecodeQ6K(const uint8_t* b, float* y) {
  const float d = HalfToFloat(Le16(b + 208));
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b + 64 * n;
    const uint8_t* qh = b + 128 + 32 * n;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * n);
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      float* o = y + 128 * n;
      o[l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
      o[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      o[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      o[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
  }
}

// The non-linear code book of IQ4_NL and IQ4_XS.
constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// IQ4_NL (18 bytes, 32 values): d times the code book's entry; low nibbles are values 0-15, high ones 16-31.
void DecodeIq4Nl(const uint8_t* b, float* y) {
  const float d = HalfToFloat(Le16(b));
  for (int v = 0; v < 32; ++v) y[v] = d * static_cast<float>(kIq4Values[(b[2 + v % 16] >> (4 * (v / 16))) & 0xF]);
}

// IQ4_XS (136 bytes): 8 groups of 32 with signed 6-bit scales (4 low bits packed in pairs, 2 high bits in a
// 16-bit word), each group's codes as IQ4_NL's.
void DecodeIq4Xs(const uint8_t* b, float* y) {
  const float d = HalfToFloat(Le16(b));
  const uint16_t high = Le16(b + 2);
  for (int j = 0; j < 8; ++j) {
    const int scale = (((b[4 + j / 2] >> (4 * (j % 2))) & 0xF) | (((high >> (2 * j)) & 3) << 4)) - 32;
    const float dl = d * static_cast<float>(scale);
    const uint8_t* qs = b + 8 + 16 * j;
    for (int v = 0; v < 32; ++v) y[32 * j + v] = dl * static_cast<float>(kIq4Values[(qs[v % 16] >> (4 * (v / 16))) & 0xF]);
  }
}

struct FloatBlocks {
  uint32_t type;
  int64_t values, bytes;
  void (*decode)(const uint8_t* block, float* y);
};
constexpr FloatBlocks kFloatBlocks[] = {
    {kQ2_K, 256, 84, DecodeQ2K},     {kQ3_K, 256, 110, DecodeQ3K},  {kQ6_K, 256, 210, DecodeQ6K},
    {kIQ4_NL, 32, 18, DecodeIq4Nl}, {kIQ4_XS, 256, 136, DecodeIq4Xs},
};
const FloatBlocks* FloatBlocksOf(uint32_t type) {
  for (const FloatBlocks& f : kFloatBlocks)
    if (f.type == type) return &f;
  return nullptr;
}

// f32 -> f16 bits, rounding to nearest even; false when |f| is beyond f16's range.
bool ToHalf(float f, uint16_t* out) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000u, abs = b & 0x7FFFFFFFu;
  if (abs >= 0x477FF000u) return false;  // rounds to 65536 or more (or inf/nan)
  if (abs < 0x33000001u) return *out = static_cast<uint16_t>(sign), true;  // below half the smallest subnormal
  const int exp = static_cast<int>(abs >> 23) - 127;
  uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const int shift = exp >= -14 ? 13 : 13 + (-14 - exp);  // normal, or subnormal f16
  const uint32_t rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  mant >>= shift;
  if (rest > halfway || (rest == halfway && (mant & 1))) ++mant;
  // Normal: the exponent field then the mantissa (a carry moves into the exponent, as it should).
  const uint32_t h = exp >= -14 ? ((static_cast<uint32_t>(exp + 15) << 10) + (mant - 0x400u)) : mant;
  *out = static_cast<uint16_t>(sign | h);
  return true;
}

int BitsOf(uint32_t type) {
  switch (type) {
    case kQ4_0: case kQ4_1: case kQ4_K: return 4;
    case kQ5_0: case kQ5_1: case kQ5_K: return 5;
    case kQ8_0: return 8;
    default: return 0;
  }
}

// What differs between the GGUF architectures this loader reads; everything else (metadata keys under the
// architecture's prefix, tensor names) is shared.
struct GgufArch {
  std::string_view name;      // general.architecture, and the prefix of its metadata keys
  const char* model_type;     // Hugging Face's
  const char* hf_class;
  bool permuted_qk;           // llama.cpp's converter interleaved each head's q/k rows (its non-NeoX rope)
  bool fused;                 // q/k/v in one attn_qkv, gate and up in one ffn_up (phi3)
  bool qk_norm;               // attn_q_norm / attn_k_norm (qwen3)
};
constexpr GgufArch kArchs[] = {
    {"llama", "llama", "LlamaForCausalLM", true, false, false},
    {"qwen2", "qwen2", "Qwen2ForCausalLM", false, false, false},
    {"qwen3", "qwen3", "Qwen3ForCausalLM", false, false, true},
    {"phi3", "phi3", "Phi3ForCausalLM", false, true, false},
};

const GgufArch& ArchOf(const GgufFile& f) {
  const std::string arch = f.GetString("general.architecture").value_or("");
  for (const GgufArch& a : kArchs)
    if (a.name == arch) return a;
  throw Error(f.name() + ": general.architecture '" + arch +
              "' is not supported for GGUF weights yet (llama, qwen2, qwen3, phi3)");
}

// Tensors that carry rope frequencies rather than weights (read into the config by ConfigFrom).
bool IsRopeTable(const std::string& g) {
  return g == "rope_freqs.weight" || g == "rope_factors_long.weight" || g == "rope_factors_short.weight";
}

// GGUF tensor name -> Hugging Face name for architecture `a`; empty when its table does not name it.
std::string HfName(const GgufArch& a, const std::string& g) {
  static const std::map<std::string, std::string, std::less<>> kTop = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string, std::less<>> kLayer = {
      {"attn_norm.weight", "input_layernorm.weight"},       {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},         {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},         {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},             {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},             {"attn_output.bias", "self_attn.o_proj.bias"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},          {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  static const std::map<std::string, std::string, std::less<>> kFused = {  // phi3
      {"attn_norm.weight", "input_layernorm.weight"},       {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_qkv.weight", "self_attn.qkv_proj.weight"},     {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_up.weight", "mlp.gate_up_proj.weight"},         {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  static const std::map<std::string, std::string, std::less<>> kQkNorm = {  // qwen3
      {"attn_q_norm.weight", "self_attn.q_norm.weight"},    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
  };
  if (auto it = kTop.find(g); it != kTop.end()) return it->second;
  if (g.rfind("blk.", 0) != 0) return "";
  const size_t dot = g.find('.', 4);
  if (dot == std::string::npos || dot == 4) return "";
  const std::string layer = g.substr(4, dot - 4);
  if (layer.find_first_not_of("0123456789") != std::string::npos) return "";
  const std::string_view rest = std::string_view(g).substr(dot + 1);
  const auto lookup = [&](const auto& table) -> std::string {
    auto it = table.find(rest);
    return it == table.end() ? "" : "model.layers." + layer + "." + it->second;
  };
  std::string hf = lookup(a.fused ? kFused : kLayer);
  if (hf.empty() && a.qk_norm) hf = lookup(kQkNorm);
  return hf;
}

// Rows of a tensor one conversion thread takes at least (an 8B model's load is mostly this conversion).
constexpr int64_t kRowsPerThread = 256;

// "-0000i-of-0000n.gguf": how llama.cpp's gguf-split names part i (1-based) of n.
std::string SplitSuffix(int64_t i, int64_t n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "-%05lld-of-%05lld.gguf", static_cast<long long>(i), static_cast<long long>(n));
  return buf;
}

// The files of one model: a single GGUF, or the parts of a split one in order (metadata in the first).
using Parts = std::span<const GgufFile* const>;

// Calls f(file, tensor) for every tensor of every part.
template <typename F>
void ForEachTensor(Parts parts, F&& f) {
  for (const GgufFile* file : parts)
    for (const GgufTensorInfo& t : file->tensors()) f(*file, t);
}

// The values of a 1-dimensional F32 tensor (a rope table), or nothing when no part has a tensor `name`.
std::optional<std::vector<double>> F32Vector(Parts parts, const std::string& name) {
  const GgufFile* file = nullptr;
  const GgufTensorInfo* info = nullptr;
  ForEachTensor(parts, [&](const GgufFile& f, const GgufTensorInfo& t) {
    if (!info && t.name == name) file = &f, info = &t;
  });
  if (!info) return std::nullopt;
  const GgufTensorInfo& t = *info;
  const std::string where = file->name() + ": tensor '" + name + "'";
  if (t.ggml_type != kF32 || t.shape.size() != 1 || t.n_bytes != t.shape[0] * 4 ||
      t.file_offset + t.n_bytes > file->bytes().size())
    throw Error(where + " must be a vector of F32 values");
  std::vector<double> v(t.shape[0]);
  for (size_t i = 0; i < v.size(); ++i) {
    float x;
    std::memcpy(&x, file->bytes().data() + t.file_offset + 4 * i, 4);
    if (!(x > 0) || !std::isfinite(x)) throw Error(where + ": entry " + std::to_string(i) + " is not a positive number");
    v[i] = x;
  }
  return v;
}

// The Hugging Face config.json the metadata (and the tensor list: tied output, vocabulary rows, rope tables)
// of a GGUF implies.
json ConfigFrom(Parts parts) {
  const GgufFile& f = *parts[0];
  const std::string& name = f.name();
  const GgufArch& arch = ArchOf(f);
  bool tied = true;
  int64_t vocab_rows = 0;
  ForEachTensor(parts, [&](const GgufFile&, const GgufTensorInfo& t) {
    if (t.name == "output.weight") tied = false;
    if (t.name == "token_embd.weight" && t.shape.size() == 2) vocab_rows = static_cast<int64_t>(t.shape[1]);
  });
  const std::string p = std::string(arch.name) + ".";
  const auto need = [&](const std::string& key) {
    const auto v = f.GetInt(p + key);
    if (!v) throw Error(name + ": GGUF metadata '" + p + key + "' is missing");
    return *v;
  };
  const int64_t hidden = need("embedding_length"), heads = need("attention.head_count");
  const int64_t head_dim = f.GetInt(p + "attention.key_length").value_or(heads > 0 ? hidden / heads : 0);
  const int64_t context = f.GetInt(p + "context_length").value_or(4096);
  json c = {
      {"architectures", {arch.hf_class}},
      {"model_type", arch.model_type},
      {"hidden_size", hidden},
      {"intermediate_size", need("feed_forward_length")},
      {"num_hidden_layers", need("block_count")},
      {"num_attention_heads", heads},
      {"num_key_value_heads", f.GetInt(p + "attention.head_count_kv").value_or(heads)},
      {"head_dim", head_dim},
      {"vocab_size", f.GetInt(p + "vocab_size").value_or(vocab_rows)},
      {"max_position_embeddings", context},
      {"rms_norm_eps", f.GetFloat(p + "attention.layer_norm_rms_epsilon").value_or(1e-5)},
      {"rope_theta", f.GetFloat(p + "rope.freq_base").value_or(10000.0)},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", tied},
  };
  if (const auto rot = f.GetInt(p + "rope.dimension_count"); rot && head_dim > 0 && *rot != head_dim)
    c["partial_rotary_factor"] = static_cast<double>(*rot) / static_cast<double>(head_dim);
  if (const auto bos = f.GetInt("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = *bos;
  if (const auto eos = f.GetInt("tokenizer.ggml.eos_token_id")) c["eos_token_id"] = *eos;
  if (const auto sw = f.GetInt(p + "attention.sliding_window"); sw && *sw > 0) c["sliding_window"] = *sw;
  if (arch.name == "qwen2" || arch.name == "qwen3") c["use_sliding_window"] = c.contains("sliding_window");

  // Rope scaling. Linear and YaRN as their metadata says; per-frequency tables as tensors: Phi-3's long and
  // short factors (longrope), and Llama 3.1's rope_freqs, the divisors its converter computed from the llama3
  // rule, which are longrope with one table for every length and no attention factor.
  const std::string scaling = f.GetString(p + "rope.scaling.type").value_or("none");
  const int64_t orig = f.GetInt(p + "rope.scaling.original_context_length").value_or(0);
  if (scaling == "linear" || scaling == "yarn") {
    const auto factor = f.GetFloat(p + "rope.scaling.factor");
    if (!factor) throw Error(name + ": GGUF metadata '" + p + "rope.scaling.factor' is missing (rope scaling " + scaling + ")");
    c["rope_scaling"] = {{"type", scaling}, {"factor", *factor}};
    if (scaling == "yarn") {
      if (orig <= 0) throw Error(name + ": GGUF metadata '" + p + "rope.scaling.original_context_length' is missing (yarn)");
      c["rope_scaling"]["original_max_position_embeddings"] = orig;
    }
  } else if (scaling != "none") {
    throw Error(name + ": " + p + "rope.scaling.type '" + scaling + "' is not supported for GGUF weights yet");
  }
  const auto freqs = F32Vector(parts, "rope_freqs.weight");
  const auto longf = F32Vector(parts, "rope_factors_long.weight"), shortf = F32Vector(parts, "rope_factors_short.weight");
  if ((freqs || longf || shortf) && c.contains("rope_scaling"))
    throw Error(name + ": both " + p + "rope.scaling.type and a rope factor tensor");
  if (freqs) {
    c["rope_scaling"] = {{"type", "longrope"}, {"long_factor", *freqs}, {"short_factor", *freqs},
                         {"original_max_position_embeddings", context}, {"attention_factor", 1.0}};
  } else if (longf || shortf) {
    if (!longf || !shortf) throw Error(name + ": rope_factors_long.weight and rope_factors_short.weight come as a pair");
    if (orig <= 0) throw Error(name + ": GGUF metadata '" + p + "rope.scaling.original_context_length' is missing (longrope)");
    c["rope_scaling"] = {{"type", "longrope"}, {"long_factor", *longf}, {"short_factor", *shortf},
                         {"original_max_position_embeddings", orig}};
    c["original_max_position_embeddings"] = orig;
    if (const auto af = f.GetFloat(p + "rope.scaling.attn_factor")) c["rope_scaling"]["attention_factor"] = *af;
  }
  return c;
}

// Row r of Hugging Face's q (or k) holds GGUF row Source(r): HF orders each head's rotary pairs as two halves,
// llama.cpp interleaves them.
int64_t GgufRowOf(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, w = r % head_dim, half = head_dim / 2;
  return h * head_dim + 2 * (w % half) + w / half;
}

}  // namespace

bool IsGgufFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

std::vector<std::unique_ptr<GgufFile>> OpenGgufParts(const std::string& path) {
  std::vector<std::unique_ptr<GgufFile>> parts;
  parts.push_back(GgufFile::Open(path));
  const int64_t count = parts[0]->GetInt("split.count").value_or(1);
  if (count <= 1) return parts;
  if (const int64_t no = parts[0]->GetInt("split.no").value_or(0); no != 0)
    throw Error(path + ": this is part " + std::to_string(no + 1) + " of a split GGUF of " + std::to_string(count) +
                "; give the first part, PREFIX" + SplitSuffix(1, count));
  if (count > 99999) throw Error(path + ": split.count " + std::to_string(count) + " is implausible");
  // llama.cpp (gguf-split) names part i of n PREFIX-%05d-of-%05d.gguf.
  const std::string first = SplitSuffix(1, count);
  if (path.size() <= first.size() || path.compare(path.size() - first.size(), first.size(), first) != 0)
    throw Error(path + ": the first part of a split GGUF of " + std::to_string(count) + " parts must be named PREFIX" +
                first + " (the other parts are found by that name)");
  const std::string prefix = path.substr(0, path.size() - first.size());
  for (int64_t i = 2; i <= count; ++i) {
    const std::string part = prefix + SplitSuffix(i, count);
    if (::access(part.c_str(), R_OK) != 0)
      throw Error(path + ": part " + std::to_string(i) + " of " + std::to_string(count) + " is missing: " + part);
    parts.push_back(GgufFile::Open(part));
    if (parts.back()->GetInt("split.no").value_or(-1) != i - 1 || parts.back()->GetInt("split.count").value_or(-1) != count)
      throw Error(part + ": split.no / split.count do not say part " + std::to_string(i) + " of " + std::to_string(count));
  }
  return parts;
}

namespace {

// The files' pointers, for Parts.
std::vector<const GgufFile*> PointersOf(const std::vector<std::unique_ptr<GgufFile>>& parts) {
  std::vector<const GgufFile*> out;
  for (const auto& p : parts) out.push_back(p.get());
  return out;
}

// A file loaded on its own must be the whole model.
void RequireWhole(const GgufFile& f) {
  if (const int64_t count = f.GetInt("split.count").value_or(1); count > 1)
    throw Error(f.name() + ": one part of a split GGUF of " + std::to_string(count) + " parts: open it by its path");
}

ModelConfig ConfigOf(Parts parts) {
  return ParseModelConfigJson(ConfigFrom(parts), parts[0]->name() + " (GGUF metadata)");
}

Checkpoint LoadParts(Parts parts) {
  const GgufFile& first = *parts[0];
  json cj = ConfigFrom(parts);
  const GgufArch& arch = ArchOf(first);
  const int64_t head_dim = ParseModelConfigJson(cj, first.name() + " (GGUF metadata)").head_dim;  // validated: > 0

  SafetensorsWriter w;
  std::set<std::string> seen;
  json quant = json::object();
  std::map<int, int> bits_count;  // how many matrices have each bit width: the most common is the default
  ForEachTensor(parts, [&](const GgufFile& f, const GgufTensorInfo& t) {
    const std::string where = f.name() + ": tensor '" + t.name + "'";
    if (IsRopeTable(t.name)) return;  // in the config
    const std::string hf = HfName(arch, t.name);
    if (hf.empty()) throw Error(where + " is not a tensor of a " + std::string(arch.name) + " model");
    if (!seen.insert(hf).second) throw Error(where + " appears twice");
    if (t.shape.empty() || t.shape.size() > 2) throw Error(where + ": " + std::to_string(t.shape.size()) + " dimensions");
    const int64_t cols = static_cast<int64_t>(t.shape[0]);
    const int64_t rows = t.shape.size() == 2 ? static_cast<int64_t>(t.shape[1]) : 1;
    if (rows == 0 || cols == 0) throw Error(where + " has no elements");
    // q and k outputs (the rows of a matrix, the entries of a bias) go back into Hugging Face's rope order.
    const bool permute = arch.permuted_qk &&
                         (t.name.find(".attn_q.") != std::string::npos || t.name.find(".attn_k.") != std::string::npos);
    const int64_t outputs = t.shape.size() == 2 ? rows : cols;
    if (permute && (head_dim % 2 != 0 || outputs % head_dim != 0))
      throw Error(where + ": " + std::to_string(outputs) + " outputs are not whole heads of " + std::to_string(head_dim));
    // By value: the packing of the codes below runs later, when the store is assembled.
    const auto src_row = [permute, head_dim](int64_t r) { return permute ? GgufRowOf(r, head_dim) : r; };
    if (t.n_bytes == 0 || t.file_offset + t.n_bytes > f.bytes().size())
      throw Error(where + " has type " + GgmlTypeName(t.ggml_type) + ", which is not supported for GGUF weights");
    const uint8_t* base = f.bytes().data() + t.file_offset;
    const std::vector<int64_t> shape = t.shape.size() == 2 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{cols};

    if (t.ggml_type == kF32 || t.ggml_type == kF16 || t.ggml_type == kBF16) {
      const size_t es = t.ggml_type == kF32 ? 4 : 2;
      const size_t row_bytes = static_cast<size_t>(cols) * es;
      std::vector<std::byte> bytes(static_cast<size_t>(rows) * row_bytes);
      if (t.shape.size() == 2) {
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(bytes.data() + r * row_bytes, base + src_row(r) * row_bytes, row_bytes);
      } else {  // a vector: its entries are the outputs
        for (int64_t i = 0; i < cols; ++i) std::memcpy(bytes.data() + i * es, base + src_row(i) * es, es);
      }
      const DType dt = t.ggml_type == kF32 ? DType::kF32 : t.ggml_type == kF16 ? DType::kF16 : DType::kBF16;
      w.AddMoved(hf, dt, shape, std::move(bytes));
      f.Release(base, t.n_bytes);  // copied: the file's pages need not stay resident beside the copy
      return;
    }
    const size_t row_bytes = t.n_bytes / static_cast<size_t>(rows);
    const FloatBlocks* fb = FloatBlocksOf(t.ggml_type);
    if (fb && t.shape.size() == 2) {  // f16 values (f32 where one leaves f16's range)
      std::vector<float> v(static_cast<size_t>(rows * cols));
      ParallelRanges(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t blk = 0; blk < cols / fb->values; ++blk)
            fb->decode(base + src_row(r) * row_bytes + blk * fb->bytes, &v[r * cols + blk * fb->values]);
      });
      f.Release(base, t.n_bytes);
      std::vector<uint16_t> h(v.size());
      bool half = true;
      for (size_t i = 0; i < v.size() && half; ++i) half = ToHalf(v[i], &h[i]);
      if (half) w.AddMoved(hf, DType::kF16, shape, std::move(h));
      else w.AddMoved(hf, DType::kF32, shape, std::move(v));
      return;
    }
    const int bits = BitsOf(t.ggml_type);
    if (bits == 0 || t.shape.size() != 2)
      throw Error(where + " has type " + std::string(GgmlTypeName(t.ggml_type)) +
                  ", which is not supported for GGUF weights yet (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                  "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)");
    const int64_t groups = cols / 32, words = cols * bits / 32;  // rows own whole words (cols % 32 == 0)
    // Scales and biases now (their type depends on their values); the codes are packed straight into the
    // store's bytes when it is assembled, so an 8B model's codes are not held twice.
    std::vector<float> scale(static_cast<size_t>(rows * groups)), bias(scale.size());
    ParallelRanges(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t g = 0; g < groups; ++g) {
          const Block b = DecodeGroup(t.ggml_type, base + src_row(r) * row_bytes, g);
          scale[r * groups + g] = b.scale, bias[r * groups + g] = b.bias;
        }
    });
    f.Release(base, t.n_bytes);  // read again (from the page cache) when the codes are packed
    w.AddLazy(hf, DType::kU32, {rows, words}, [=, file = &f, type = t.ggml_type](std::byte* dst, size_t) {
      ParallelRanges(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
        std::vector<uint32_t> out(static_cast<size_t>(words));
        for (int64_t r = r0; r < r1; ++r) {
          const uint8_t* row = base + src_row(r) * row_bytes;
          std::fill(out.begin(), out.end(), 0u);
          for (int64_t g = 0; g < groups; ++g) {
            const Block b = DecodeGroup(type, row, g);
            for (int j = 0; j < 32; ++j) {  // MLX packs codes as one little-endian bit stream per row
              const int64_t bit = (g * 32 + j) * bits;
              out[bit / 32] |= uint32_t{b.q[j]} << (bit % 32);
              if (bit % 32 + bits > 32) out[bit / 32 + 1] |= uint32_t{b.q[j]} >> (32 - bit % 32);
            }
          }
          std::memcpy(dst + r * words * 4, out.data(), static_cast<size_t>(words) * 4);
        }
      });
      file->Release(base, t.n_bytes);
    });
    // f16 scales and biases when every one is exact in f16 (the GPU's fast kernels read 16-bit ones).
    std::vector<uint16_t> s16(scale.size()), b16(bias.size());
    bool half = true;
    const auto exact = [](float f, uint16_t* h) { return ToHalf(f, h) && HalfToFloat(*h) == f; };
    for (size_t i = 0; i < scale.size() && half; ++i) half = exact(scale[i], &s16[i]) && exact(bias[i], &b16[i]);
    const std::string module = hf.substr(0, hf.size() - std::string(".weight").size());
    if (half) {
      w.AddMoved(module + ".scales", DType::kF16, {rows, groups}, std::move(s16));
      w.AddMoved(module + ".biases", DType::kF16, {rows, groups}, std::move(b16));
    } else {
      w.AddMoved(module + ".scales", DType::kF32, {rows, groups}, std::move(scale));
      w.AddMoved(module + ".biases", DType::kF32, {rows, groups}, std::move(bias));
    }
    quant[module] = {{"group_size", 32}, {"bits", bits}};
    ++bits_count[bits];
  });
  if (!bits_count.empty()) {
    int common = bits_count.begin()->first;
    for (const auto& [b, n] : bits_count)
      if (n > bits_count[common]) common = b;
    json q = {{"group_size", 32}, {"bits", common}};
    for (auto& [module, spec] : quant.items())
      if (spec["bits"].get<int>() != common) q[module] = spec;
    cj["quantization"] = q;
  }
  ModelConfig config = ParseModelConfigJson(cj, first.name() + " (GGUF metadata)");
  return {std::move(config), TensorStore::FromOwnedBytes(first.name(), w.ToBytes())};
}

}  // namespace

Checkpoint LoadGgufCheckpoint(const std::string& path) { return LoadParts(PointersOf(OpenGgufParts(path))); }

ModelConfig GgufModelConfig(const std::string& path) { return ConfigOf(PointersOf(OpenGgufParts(path))); }

ModelConfig GgufModelConfig(const GgufFile& f) {
  RequireWhole(f);
  const GgufFile* part[] = {&f};
  return ConfigOf(part);
}

Checkpoint LoadGgufCheckpoint(const GgufFile& f) {
  RequireWhole(f);
  const GgufFile* part[] = {&f};
  return LoadParts(part);
}

}  // namespace pensieve
