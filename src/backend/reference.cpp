#include "backend/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace pensieve::backend {

size_t FloatTypeSize(FloatType t) { return t == FloatType::kF32 ? 4 : 2; }

int64_t MatRef::RowBytes() const {
  if (kind == Kind::kFloat) return cols * static_cast<int64_t>(FloatTypeSize(type));
  return cols * bits / 32 * 4;
}

int64_t MatRef::TotalBytes() const {
  int64_t bytes = rows * RowBytes();
  if (kind == Kind::kAffine) {
    int64_t groups = rows * (cols / group_size) * static_cast<int64_t>(FloatTypeSize(type));
    bytes += groups * (biases ? 2 : 1);
  }
  return bytes;
}

MatRef MatRef::RowSlice(int64_t begin, int64_t count) const {
  if (tiled && begin % 16 != 0) throw Error("weight view does not start at a 16-row tile of its relaid matrix");
  MatRef s = *this;
  s.rows = count;
  s.data = static_cast<const uint8_t*>(data) + begin * RowBytes();
  if (kind == Kind::kAffine) {
    int64_t group_row = (cols / group_size) * static_cast<int64_t>(FloatTypeSize(type));
    s.scales = static_cast<const uint8_t*>(scales) + begin * group_row;
    if (biases) s.biases = static_cast<const uint8_t*>(biases) + begin * group_row;
  }
  return s;
}

void MatRef::Validate(const std::string& what) const {
  if (!(rows > 0 && cols > 0 && data)) throw Error(what + ": empty weight");
  if (!(type < FloatType::kCount)) throw Error(what + ": bad float type");
  if (kind == Kind::kAffine) {
    if (!(bits >= 1 && bits <= 8)) throw Error(what + ": unsupported quantization bits " + std::to_string(bits));
    if (!(group_size > 0 && cols % group_size == 0))
      throw Error(what + ": columns " + std::to_string(cols) + " not a multiple of group size " +
                  std::to_string(group_size));
    if (!((cols * bits) % 32 == 0)) throw Error(what + ": packed row is not a whole number of u32 words");
    if (!(scales != nullptr)) throw Error(what + ": quantized weight without scales");
  }
}

namespace ref {

float Bf16ToF32(uint16_t bits) {
  uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float F16ToF32(uint16_t h) {
  uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

uint16_t F32ToF16(float f) {
  // Via the exact f16 grid: scale into integer mantissa steps and round half to even.
  uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  float a = std::fabs(f);
  if (std::isnan(f)) return 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;
  int e;
  std::frexp(a, &e);               // a = m * 2^e, m in [0.5, 1)
  int exp = std::max(e - 1, -14);  // unbiased exponent of the f16 result (subnormals share -14)
  float step = std::ldexp(1.0f, exp - 10);
  float q = std::nearbyint(a / step);  // default rounding mode: nearest even
  uint32_t m = static_cast<uint32_t>(q);
  if (m >= 2048) {
    m >>= 1;
    ++exp;
  }
  if (m < 1024) return sign | static_cast<uint16_t>(m);  // subnormal (exp == -14)
  if (exp > 15) return sign | 0x7c00;
  return sign | static_cast<uint16_t>(((exp + 15) << 10) | (m & 0x3ff));
}

float LoadFloat(FloatType type, const void* base, int64_t i) {
  switch (type) {
    case FloatType::kF32:
      return static_cast<const float*>(base)[i];
    case FloatType::kBF16:
      return Bf16ToF32(static_cast<const uint16_t*>(base)[i]);
    case FloatType::kF16:
      return F16ToF32(static_cast<const uint16_t*>(base)[i]);
    default:
      return 0;
  }
}

void DequantizeRow(const MatRef& w, int64_t r, float* out) {
  if (w.kind == MatRef::Kind::kFloat) {
    for (int64_t c = 0; c < w.cols; ++c) out[c] = LoadFloat(w.type, w.data, r * w.cols + c);
    return;
  }
  const uint32_t* words = static_cast<const uint32_t*>(w.data) + r * (w.cols * w.bits / 32);
  int64_t groups = w.cols / w.group_size;
  uint32_t mask = (uint32_t{1} << w.bits) - 1;
  for (int64_t c = 0; c < w.cols; ++c) {
    int64_t bit = c * w.bits;
    uint64_t pair = words[bit / 32];
    if (bit % 32 + w.bits > 32) pair |= uint64_t{words[bit / 32 + 1]} << 32;
    uint32_t q = static_cast<uint32_t>(pair >> (bit % 32)) & mask;
    int64_t g = r * groups + c / w.group_size;
    float scale = LoadFloat(w.type, w.scales, g);
    float bias = w.biases ? LoadFloat(w.type, w.biases, g) : 0.0f;
    out[c] = scale * static_cast<float>(q) + bias;
  }
}

void MatMul(const float* x, int64_t T, const MatRef& w, const float* bias, float* y) {
  std::vector<float> row(w.cols);
  for (int64_t n = 0; n < w.rows; ++n) {
    DequantizeRow(w, n, row.data());
    for (int64_t t = 0; t < T; ++t) {
      double acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += double{x[t * w.cols + k]} * row[k];
      y[t * w.rows + n] = static_cast<float>(acc) + (bias ? bias[n] : 0.0f);
    }
  }
}

void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double{x[r * dim + i]} * x[r * dim + i];
    float inv = 1.0f / std::sqrt(static_cast<float>(ss / dim) + eps);
    for (int64_t i = 0; i < dim; ++i) y[r * dim + i] = x[r * dim + i] * inv * weight[i];
  }
}

void Rope(float* x, int64_t T, int heads, int head_dim, const int32_t* pos, int rotary_dim, const float* inv_freq,
          float attention_factor) {
  int half = rotary_dim / 2;
  for (int64_t t = 0; t < T; ++t) {
    for (int h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        // transformers forms the angle in float32: position * inv_freq.
        float angle = static_cast<float>(pos[t]) * inv_freq[i];
        float c = static_cast<float>(std::cos(double{angle})) * attention_factor;
        float s = static_cast<float>(std::sin(double{angle})) * attention_factor;
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

void Attention(const HostKvStorage& cache, const HostAttention& a) {
  int group = a.n_heads / a.n_kv_heads;
  int64_t kv_dim = cache.kv_dim();
  int bt = cache.block_tokens();
  for (int64_t t = 0; t < a.T; ++t) {
    auto blocks = a.Blocks(a.row_item[t]);
    int64_t p = a.pos[t];
    int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
    std::vector<float> scores(p - lo + 1);
    for (int h = 0; h < a.n_heads; ++h) {
      const float* q = a.q + (t * a.n_heads + h) * a.head_dim;
      int64_t kv_off = int64_t{h / group} * a.head_dim;
      float max_s = -INFINITY;
      for (int64_t k = lo; k <= p; ++k) {
        const float* key = cache.Keys(blocks[k / bt], a.layer) + (k % bt) * kv_dim + kv_off;
        double dot = 0;
        for (int d = 0; d < a.head_dim; ++d) dot += double{q[d]} * key[d];
        scores[k - lo] = static_cast<float>(dot) * a.scale;
        max_s = std::max(max_s, scores[k - lo]);
      }
      double sum = 0;
      for (auto& s : scores) sum += (s = std::exp(s - max_s));
      float* out = a.out + (t * a.n_heads + h) * a.head_dim;
      for (int d = 0; d < a.head_dim; ++d) {
        double acc = 0;
        for (int64_t k = lo; k <= p; ++k)
          acc += double{scores[k - lo]} * cache.Values(blocks[k / bt], a.layer)[(k % bt) * kv_dim + kv_off + d];
        out[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void GeluMul(const float* gate, const float* up, int64_t n, float* out) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(kC * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void Embed(const MatRef& table, std::span<const int32_t> ids, float* out) {
  for (size_t t = 0; t < ids.size(); ++t) {
    if (!(ids[t] >= 0 && ids[t] < table.rows))
      throw Error("token id " + std::to_string(ids[t]) + " outside vocabulary of " + std::to_string(table.rows));
    DequantizeRow(table, ids[t], out + t * table.cols);
  }
}

void Softmax(float* x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * n;
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, v[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double{v[i]} - m);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::exp(double{v[i]} - m) / sum);
  }
}

void ReferenceBackend::MatMulMulti(Tensor x, std::span<const MatMulOut> outs) {
  for (const MatMulOut& o : outs) ref::MatMul(x.data, x.rows, o.w, o.bias.empty() ? nullptr : o.bias.data, o.y.data);
}

}  // namespace ref
}  // namespace pensieve::backend
