// Integer matmul against MLX affine 4- and 8-bit weights (value = scale * q + bias per group), on CPUs with
// AVX-512 VNNI. Rather than widening every weight to float (matmul_affine.cpp), the activations are quantized
// per block of 32 to int8 (x ~ dx * xq, dx = max|x| / 127, as llama.cpp's Q8_0) and multiplied by the unsigned
// codes with VPDPBUSD (u8 x s8 -> s32, four products per lane per instruction):
//
//   y_n = sum_g s_ng * sum_{b in g} dx_b * sum_{j in b} q_nj xq_j  +  sum_g b_ng * sum_{j in g} x_j
//
// The second term uses the float x (exact). Weights are rewritten once at load into 16-row tiles so that one
// 64-byte vector holds 16 rows (one per 32-bit lane) x 4 columns, and the four x bytes of those columns are
// one broadcast: no shuffles in the inner loop, and each weight load feeds every token of a prefill step.
//
// Tile layout (tile t holds rows 16t .. 16t+15; rows past the matrix are zero codes with zero scales):
//   4-bit codes: per 8 columns c8, 64 bytes; lane r (bytes 4r..4r+3) byte j: low nibble = column 8*c8 + j,
//                high nibble = column 8*c8 + 4 + j of row 16t + r.  Tile size K * 8 bytes.
//   8-bit codes: per 8 columns, 128 bytes: lane r of the first 64 = columns 8*c8 .. +3, of the second
//                64 = columns 8*c8 + 4 .. +7.  Tile size K * 16 bytes.
//   scales, biases: per tile and group, the 16 rows' values in the stored type (bf16, f16 or f32).
// GCC 12's AVX-512 headers start some conversions from a deliberately undefined register
// (_mm512_undefined_*), which -Wmaybe-uninitialized then reports at every inlined use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/reference.h"
#include "util/error.h"

namespace pensieve::backend::cpu {
namespace {

constexpr int kTile = 16;   // rows per tile: one per 32-bit lane of a 512-bit vector
constexpr int kBlock = 32;  // activation quantization block

int64_t Tiles(const MatRef& w) { return (w.rows + kTile - 1) / kTile; }
int64_t CodeBytes(const MatRef& w) { return Tiles(w) * w.cols * 2 * w.bits; }
int64_t GroupBytes(const MatRef& w) {
  return Tiles(w) * (w.cols / w.group_size) * kTile * static_cast<int64_t>(FloatTypeSize(w.type));
}
int64_t Align64(int64_t n) { return (n + 63) / 64 * 64; }

// Byte offset, within its tile, of element (lane r, column j), and whether it is the high nibble (4-bit).
int64_t TiledOffset(int bits, int64_t r, int64_t j, bool* high) {
  const int64_t c8 = j / 8, w = j % 8;
  if (bits == 4) {
    *high = w >= 4;
    return c8 * 64 + r * 4 + w % 4;
  }
  *high = false;
  return c8 * 128 + (w / 4) * 64 + r * 4 + w % 4;
}

#define PENSIEVE_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

template <FloatType kType>
PENSIEVE_VNNI inline __m512 Load16(const void* p) {
  if constexpr (kType == FloatType::kF32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (kType == FloatType::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
  } else {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
}

PENSIEVE_VNNI inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Quantized activations of one call: per row t, K int8 values, K/32 block scales, and the groups' float sums.
// With q2 (the fine form), x ~ dx * (q + q2 / 128): the second byte holds the first's rounding error.
struct QuantX {
  const int8_t* q;
  const int8_t* q2;  // null: one byte per value
  const float* dx;
  const float* gsum;
  int64_t K, blocks, groups;
};

// NI tiles x NT tokens, all of the matrix's columns: y rows [16 tile, 16 tile + 16) of tokens t0 .. t0+NT-1.
template <int kBits, FloatType kType, int NI, int NT, bool kFine>
PENSIEVE_VNNI void Micro(const MatRef& w, int64_t tile, const QuantX& x, int64_t t0, const float* bias, float* y) {
  const int64_t K = w.cols, gs = w.group_size, groups = K / gs, es = static_cast<int64_t>(FloatTypeSize(kType));
  const int64_t tile_bytes = K * 2 * kBits;
  const auto* codes = static_cast<const uint8_t*>(w.data) + tile * tile_bytes;
  const auto* scales = static_cast<const uint8_t*>(w.scales) + tile * groups * kTile * es;
  const auto* biases = w.biases ? static_cast<const uint8_t*>(w.biases) + tile * groups * kTile * es : nullptr;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 total[NI][NT];
  for (int i = 0; i < NI; ++i)
    for (int t = 0; t < NT; ++t) total[i][t] = _mm512_setzero_ps();
  const int64_t blocks_per_group = gs / kBlock;
  for (int64_t g = 0; g < groups; ++g) {
    if constexpr (NT <= 2) {
      for (int i = 0; i < NI; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(scales + ((i * groups + g) * kTile + 8 * kTile) * es), _MM_HINT_T0);
        if (biases)
          _mm_prefetch(reinterpret_cast<const char*>(biases + ((i * groups + g) * kTile + 8 * kTile) * es), _MM_HINT_T0);
      }
    }
    // sum over the group's blocks of dx_b * (integer dot of block b), per row lane
    __m512 part[NI][NT];
    for (int i = 0; i < NI; ++i)
      for (int t = 0; t < NT; ++t) part[i][t] = _mm512_setzero_ps();
    for (int64_t b = g * blocks_per_group; b < (g + 1) * blocks_per_group; ++b) {
      __m512i acc[NI][NT], acc2[NI][NT];
      for (int i = 0; i < NI; ++i)
        for (int t = 0; t < NT; ++t) acc[i][t] = acc2[i][t] = _mm512_setzero_si512();
      for (int64_t c8 = b * 4; c8 < b * 4 + 4; ++c8) {
        __m512i lo[NI], hi[NI];
        for (int i = 0; i < NI; ++i) {
          const uint8_t* p = codes + i * tile_bytes;
          // Streaming decode: software prefetch ~2 KB ahead in each tile's stream (the hardware prefetcher
          // alone leaves the 2-vCPU VM's bandwidth half used at batch 1: lm_head at 30 of ~55 GB/s).
          if constexpr (NT <= 2) _mm_prefetch(reinterpret_cast<const char*>(p + c8 * 8 * kBits * 2 + 2048), _MM_HINT_T0);
          if constexpr (kBits == 4) {
            const __m512i v = _mm512_loadu_si512(p + c8 * 64);
            lo[i] = _mm512_and_si512(v, low4);
            hi[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
          } else {
            lo[i] = _mm512_loadu_si512(p + c8 * 128);
            hi[i] = _mm512_loadu_si512(p + c8 * 128 + 64);
          }
        }
        for (int t = 0; t < NT; ++t) {
          const int8_t* xt = x.q + (t0 + t) * x.K + c8 * 8;
          const __m512i xa = Broadcast4(xt), xb = Broadcast4(xt + 4);
          for (int i = 0; i < NI; ++i) {
            acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], lo[i], xa);
            acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], hi[i], xb);
          }
          if constexpr (kFine) {
            const int8_t* x2 = x.q2 + (t0 + t) * x.K + c8 * 8;
            const __m512i xa2 = Broadcast4(x2), xb2 = Broadcast4(x2 + 4);
            for (int i = 0; i < NI; ++i) {
              acc2[i][t] = _mm512_dpbusd_epi32(acc2[i][t], lo[i], xa2);
              acc2[i][t] = _mm512_dpbusd_epi32(acc2[i][t], hi[i], xb2);
            }
          }
        }
      }
      for (int t = 0; t < NT; ++t) {
        const float dx = x.dx[(t0 + t) * x.blocks + b];
        const __m512 d = _mm512_set1_ps(kFine ? dx / 128 : dx);
        for (int i = 0; i < NI; ++i) {
          // fine: 128 * acc + acc2 (at most 32 * 255 * 127 * 128 + 32 * 255 * 64 < 2^31)
          const __m512i a = kFine ? _mm512_add_epi32(_mm512_slli_epi32(acc[i][t], 7), acc2[i][t]) : acc[i][t];
          part[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), d, part[i][t]);
        }
      }
    }
    for (int i = 0; i < NI; ++i) {
      const __m512 s = Load16<kType>(scales + (i * groups + g) * kTile * es);
      for (int t = 0; t < NT; ++t) total[i][t] = _mm512_fmadd_ps(part[i][t], s, total[i][t]);
      if (biases) {
        const __m512 bv = Load16<kType>(biases + (i * groups + g) * kTile * es);
        for (int t = 0; t < NT; ++t)
          total[i][t] = _mm512_fmadd_ps(bv, _mm512_set1_ps(x.gsum[(t0 + t) * x.groups + g]), total[i][t]);
      } else if (w.zero) {
        for (int t = 0; t < NT; ++t)
          total[i][t] = _mm512_fmadd_ps(s, _mm512_set1_ps(-w.zero * x.gsum[(t0 + t) * x.groups + g]), total[i][t]);
      }
    }
  }
  for (int i = 0; i < NI; ++i) {
    const int64_t row0 = (tile + i) * kTile;
    const int64_t valid = std::min<int64_t>(kTile, w.rows - row0);
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + row0) : _mm512_setzero_ps();
    for (int t = 0; t < NT; ++t)
      _mm512_mask_storeu_ps(y + (t0 + t) * w.rows + row0, mask, _mm512_add_ps(total[i][t], bv));
  }
}

// Tiles [tile, tile + NI) for every token: token groups of 4, then the remainder.
template <int kBits, FloatType kType, int NI, bool kFine>
PENSIEVE_VNNI void TokensOf(const MatRef& w, int64_t tile, const QuantX& x, int64_t T, const float* bias, float* y) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Micro<kBits, kType, NI, 4, kFine>(w, tile, x, t, bias, y);
  switch (T - t) {
    case 3: Micro<kBits, kType, NI, 3, kFine>(w, tile, x, t, bias, y); break;
    case 2: Micro<kBits, kType, NI, 2, kFine>(w, tile, x, t, bias, y); break;
    case 1: Micro<kBits, kType, NI, 1, kFine>(w, tile, x, t, bias, y); break;
    default: break;
  }
}
template <int kBits, FloatType kType, int NI>
PENSIEVE_VNNI void Tokens(const MatRef& w, int64_t tile, const QuantX& x, int64_t T, const float* bias, float* y) {
  if (x.q2) {
    TokensOf<kBits, kType, NI, true>(w, tile, x, T, bias, y);
  } else {
    TokensOf<kBits, kType, NI, false>(w, tile, x, T, bias, y);
  }
}

template <int kBits, FloatType kType>
PENSIEVE_VNNI void Tiles(const MatRef& w, int64_t tile, int64_t count, const QuantX& x, int64_t T, const float* bias,
                         float* y) {
  if (count == 2) {
    Tokens<kBits, kType, 2>(w, tile, x, T, bias, y);
  } else {
    Tokens<kBits, kType, 1>(w, tile, x, T, bias, y);
  }
}

using TilesFn = void (*)(const MatRef&, int64_t, int64_t, const QuantX&, int64_t, const float*, float*);
template <int kBits>
TilesFn PickType(FloatType t) {
  switch (t) {
    case FloatType::kF32: return &Tiles<kBits, FloatType::kF32>;
    case FloatType::kF16: return &Tiles<kBits, FloatType::kF16>;
    default: return &Tiles<kBits, FloatType::kBF16>;
  }
}
TilesFn Pick(const MatRef& w) { return w.bits == 4 ? PickType<4>(w.type) : PickType<8>(w.type); }

// Row t of x as int8 blocks of 32 with their scales (and, with q2, the rounding error of each value in
// 128ths of a step), and the float sums of each group.
PENSIEVE_VNNI void QuantizeRow(const float* x, int64_t K, int64_t gs, int8_t* q, int8_t* q2, float* dx,
                               float* gsum) {
  // Vector form of: d = max|x_j| / 127, q_j = nearbyint(x_j / d) (cvtps_epi32 rounds to nearest even, as
  // nearbyint does in the default rounding mode), q2_j = nearbyint((x_j / d - q_j) * 128). Decode quantizes
  // 14k values per layer on one thread (Llama-3.2-1B): scalar nearbyint cost ~6% of a step.
  const __m512 sign = _mm512_set1_ps(-0.0f), k128 = _mm512_set1_ps(128.0f);
  for (int64_t b = 0; b < K / kBlock; ++b) {
    const __m512 a0 = _mm512_loadu_ps(x + b * kBlock), a1 = _mm512_loadu_ps(x + b * kBlock + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, a0), _mm512_andnot_ps(sign, a1)));
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    dx[b] = d;
    const __m512 v0 = _mm512_mul_ps(a0, _mm512_set1_ps(id)), v1 = _mm512_mul_ps(a1, _mm512_set1_ps(id));
    const __m512i r0 = _mm512_cvtps_epi32(v0), r1 = _mm512_cvtps_epi32(v1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock), _mm512_cvtepi32_epi8(r0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock + 16), _mm512_cvtepi32_epi8(r1));
    if (q2) {
      const __m512i e0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v0, _mm512_cvtepi32_ps(r0)), k128));
      const __m512i e1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v1, _mm512_cvtepi32_ps(r1)), k128));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q2 + b * kBlock), _mm512_cvtepi32_epi8(e0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q2 + b * kBlock + 16), _mm512_cvtepi32_epi8(e1));
    }
  }
  for (int64_t g = 0; g < K / gs; ++g) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t j = 0; j < gs; j += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + g * gs + j));
    gsum[g] = _mm512_reduce_add_ps(s);
  }
}

bool CpuHasVnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
}

}  // namespace

bool Int8Available() {
  static const bool on = [] {
    const char* v = std::getenv("PENSIEVE_CPU_INT8");
    return CpuHasVnni() && !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

bool Int8Fits(const MatRef& w) {
  return w.kind == MatRef::Kind::kAffine && !w.tiled && (w.bits == 4 || w.bits == 8) && w.group_size > 0 &&
         w.group_size % kBlock == 0 && w.cols % w.group_size == 0 && w.rows > 0;
}

// Whether every bias is -2^(bits-1) * its scale (a symmetric format stored as affine: Q4_0, Q8_0). Vectorised:
// an 8B model has 2.5e8 groups.
template <FloatType kType>
PENSIEVE_VNNI bool SymmetricTyped(const MatRef& w) {
  const float z = static_cast<float>(1 << (w.bits - 1));
  const int64_t n = w.rows * (w.cols / w.group_size), es = static_cast<int64_t>(FloatTypeSize(kType));
  const auto* sc = static_cast<const uint8_t*>(w.scales);
  const auto* bi = static_cast<const uint8_t*>(w.biases);
  const __m512 mz = _mm512_set1_ps(-z);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    if (_mm512_cmp_ps_mask(Load16<kType>(bi + i * es), _mm512_mul_ps(mz, Load16<kType>(sc + i * es)), _CMP_EQ_OQ) != 0xFFFF)
      return false;
  for (; i < n; ++i)
    if (ref::LoadFloat(kType, bi, i) != -z * ref::LoadFloat(kType, sc, i)) return false;
  return true;
}
bool Symmetric(const MatRef& w) {
  if (!w.biases) return false;
  switch (w.type) {
    case FloatType::kF32: return SymmetricTyped<FloatType::kF32>(w);
    case FloatType::kF16: return SymmetricTyped<FloatType::kF16>(w);
    default: return SymmetricTyped<FloatType::kBF16>(w);
  }
}

int64_t Int8TiledBytes(const MatRef& w) {
  return Align64(CodeBytes(w)) + Align64(GroupBytes(w)) + (w.biases && !Symmetric(w) ? Align64(GroupBytes(w)) : 0);
}

MatRef Int8Relayout(ThreadPool& pool, const MatRef& w, void* dst) {
  MatRef out = w;
  auto* base = static_cast<uint8_t*>(dst);
  out.data = base;
  out.scales = base + Align64(CodeBytes(w));
  out.tiled = true;
  // Symmetric groups need no biases: the kernel subtracts zero * scale * (sum of x) instead (10% fewer bytes
  // per decode step for Q4_0's groups of 32).
  if (Symmetric(w)) {
    out.biases = nullptr;
    out.zero = 1 << (w.bits - 1);
  } else {
    out.biases = w.biases ? base + Align64(CodeBytes(w)) + Align64(GroupBytes(w)) : nullptr;
  }
  const int64_t K = w.cols, groups = K / w.group_size, es = static_cast<int64_t>(FloatTypeSize(w.type));
  const int64_t tile_bytes = K * 2 * w.bits, words_per_row = K * w.bits / 32;
  pool.Run(Tiles(w), [&](int64_t tile, int) {
    uint8_t* codes = base + tile * tile_bytes;
    const bool partial = (tile + 1) * kTile > w.rows;
    if (partial) std::memset(codes, 0, tile_bytes);  // rows past the matrix: zero codes, scales and biases
    auto* sc = const_cast<uint8_t*>(static_cast<const uint8_t*>(out.scales)) + tile * groups * kTile * es;
    auto* bi = out.biases ? const_cast<uint8_t*>(static_cast<const uint8_t*>(out.biases)) + tile * groups * kTile * es
                          : nullptr;
    if (partial) std::memset(sc, 0, groups * kTile * es);
    if (partial && bi) std::memset(bi, 0, groups * kTile * es);
    for (int64_t r = 0; r < kTile; ++r) {
      const int64_t row = tile * kTile + r;
      if (row >= w.rows) break;
      const uint32_t* src = static_cast<const uint32_t*>(w.data) + row * words_per_row;
      // Word by word (TiledOffset's layout, unrolled): a 4-bit word is columns 8c..8c+7, nibble k = column
      // 8c + k; an 8-bit word is 4 columns, byte k = column 4c + k.
      for (int64_t c = 0; c < words_per_row; ++c) {
        const uint32_t v = src[c];
        uint32_t out = v;
        int64_t off = (c / 2) * 128 + (c % 2) * 64 + r * 4;
        if (w.bits == 4) {
          out = 0;
          for (int j = 0; j < 4; ++j) out |= (((v >> (4 * j)) & 0xF) | (((v >> (16 + 4 * j)) & 0xF) << 4)) << (8 * j);
          off = c * 64 + r * 4;
        }
        std::memcpy(codes + off, &out, 4);
      }
      for (int64_t g = 0; g < groups; ++g) {
        std::memcpy(sc + (g * kTile + r) * es, static_cast<const uint8_t*>(w.scales) + (row * groups + g) * es, es);
        if (bi)  // null also when symmetric
          std::memcpy(bi + (g * kTile + r) * es, static_cast<const uint8_t*>(w.biases) + (row * groups + g) * es, es);
      }
    }
  });
  return out;
}

void DequantizeTiledRow(const MatRef& w, int64_t row, float* out) {
  const int64_t K = w.cols, groups = K / w.group_size, es = static_cast<int64_t>(FloatTypeSize(w.type));
  const int64_t tile = row / kTile, r = row % kTile;
  const auto* codes = static_cast<const uint8_t*>(w.data) + tile * K * 2 * w.bits;
  const auto* sc = static_cast<const uint8_t*>(w.scales) + tile * groups * kTile * es;
  const auto* bi = w.biases ? static_cast<const uint8_t*>(w.biases) + tile * groups * kTile * es : nullptr;
  for (int64_t j = 0; j < K; ++j) {
    bool high;
    const uint8_t byte = codes[TiledOffset(w.bits, r, j, &high)];
    const uint32_t q = w.bits == 4 ? (high ? byte >> 4 : byte & 0x0F) : byte;
    const int64_t at = j / w.group_size * kTile + r;
    const float s = ref::LoadFloat(w.type, sc, at);
    const float b = bi ? ref::LoadFloat(w.type, bi, at) : -static_cast<float>(w.zero) * s;  // exact: zero is 2^k
    out[j] = s * static_cast<float>(q) + b;
  }
}

void MatMulInt8(ThreadPool& pool, Scratch& scratch, const float* x, int64_t T, std::span<const MatOut> outs,
                bool fine) {
  const MatRef& w0 = outs[0].w;
  const int64_t K = w0.cols, gs = w0.group_size, groups = K / gs, blocks = K / kBlock;
  // Shared scratch (floats): int8 x (K/4 floats per row; twice that when fine), block scales, group sums.
  const int64_t per_row = (fine ? K / 2 : K / 4) + blocks + groups;
  scratch.EnsureShared(T * per_row);
  float* base = scratch.shared.data();
  auto* q = reinterpret_cast<int8_t*>(base);
  int8_t* q2 = fine ? q + T * K : nullptr;
  float* dx = base + T * (fine ? K / 2 : K / 4);
  float* gsum = dx + T * blocks;
  const auto quantize = [&](int64_t t) {
    QuantizeRow(x + t * K, K, gs, q + t * K, q2 ? q2 + t * K : nullptr, dx + t * blocks, gsum + t * groups);
  };
  if (T >= 16) {
    pool.Run(T, [&](int64_t t, int) { quantize(t); });
  } else {
    for (int64_t t = 0; t < T; ++t) quantize(t);
  }
  const QuantX qx{q, q2, dx, gsum, K, blocks, groups};

  // Units of two tiles (the last of a matrix may be one), never straddling two matrices; a task is a run of
  // consecutive units (about 8 tasks per thread), so each thread streams long contiguous stretches of tiles.
  int64_t first[kMaxOuts + 1] = {0};
  const int n = static_cast<int>(outs.size());
  for (int s = 0; s < n; ++s) first[s + 1] = first[s] + (Tiles(outs[s].w) + 1) / 2;
  const int64_t per_task = std::max<int64_t>(1, first[n] / (int64_t{pool.size()} * 8));
  pool.Run((first[n] + per_task - 1) / per_task, [&](int64_t task, int) {
    int s = 0;
    for (int64_t unit = task * per_task; unit < std::min(first[n], (task + 1) * per_task); ++unit) {
      while (unit >= first[s + 1]) ++s;
      const MatRef& w = outs[s].w;
      const int64_t tile = (unit - first[s]) * 2;
      Pick(w)(w, tile, std::min<int64_t>(2, Tiles(w) - tile), qx, T, outs[s].bias, outs[s].y);
    }
  });
}

}  // namespace pensieve::backend::cpu
