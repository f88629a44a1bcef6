// SIMD kernels (CpuBackend) against the plain scalar reference (backend/reference.h), on every SIMD target
// compiled in and supported by this CPU, over odd sizes and misaligned pointers. Quantized matmuls are also
// checked against "dequantize with the formats layer's reference, then f32 matmul".
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_targets.h"  // must precede Highway: same target set as the kernels
#include "backend/host_kv.h"
#include "backend/reference.h"
#include "formats/dtype.h"
#include "formats/mlx_quant.h"
#include "hwy/highway.h"
#include "hwy/targets.h"

namespace pensieve::backend {
namespace {

std::vector<int64_t> Targets() { return hwy::SupportedAndGeneratedTargets(); }

void MatMul(cpu::CpuBackend& be, const float* x, int64_t T, const MatRef& w, const float* bias, float* y) {
  const cpu::MatOut out{w, bias, y};
  be.MatMulHost(x, T, std::span(&out, 1));
}

Tensor Host(const float* p, int64_t rows, int64_t cols) { return {const_cast<float*>(p), rows, cols}; }

// Sequences of the given lengths laid out block after block in one HostKvStorage, with their block tables.
struct Paged {
  HostKvStorage cache;
  std::vector<int32_t> tables;
  int64_t stride = 0;
  Paged(int layers, int kv_heads, int head_dim, int block_tokens, const std::vector<int64_t>& lengths)
      : cache(KvLayout{layers, kv_heads, head_dim, block_tokens, Blocks(lengths, block_tokens)}) {
    for (int64_t n : lengths) stride = std::max<int64_t>(stride, (n + block_tokens - 1) / block_tokens);
    tables.assign(lengths.size() * stride, -1);
    int32_t next = 0;
    for (size_t i = 0; i < lengths.size(); ++i)
      for (int64_t b = 0; b < (lengths[i] + block_tokens - 1) / block_tokens; ++b) tables[i * stride + b] = next++;
  }
  static int64_t Blocks(const std::vector<int64_t>& lengths, int bt) {
    int64_t n = 0;
    for (int64_t l : lengths) n += (l + bt - 1) / bt;
    return n;
  }
  StepPlan Plan(const std::vector<int32_t>& items, const std::vector<int32_t>& pos) const {
    StepPlan p;
    p.tokens = pos;  // unused by attention
    p.pos = pos;
    p.row_item = items;
    p.block_tables = tables;
    p.table_stride = stride;
    return p;
  }
};

class OpsTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
  std::mt19937 rng_{1234};
  std::vector<float> Random(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }
};

// Stores values as `type` into raw 16/32-bit storage, starting `offset` elements in (misalignment).
std::vector<uint8_t> Store(const std::vector<float>& v, FloatType type, int offset, const void** data) {
  size_t es = FloatTypeSize(type);
  std::vector<uint8_t> buf((v.size() + offset) * es + 64);
  for (size_t i = 0; i < v.size(); ++i) {
    DType dt = type == FloatType::kF32 ? DType::kF32 : type == FloatType::kBF16 ? DType::kBF16 : DType::kF16;
    StoreFromF32(buf.data() + (i + offset) * es, dt, 0, v[i]);
  }
  *data = buf.data() + offset * es;
  return buf;
}

// Tolerance for a dot product of length K: relative to the sum of |terms|.
float Tol(const float* x, const float* w, int64_t K) {
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += std::fabs(double{x[k]} * w[k]);
  return static_cast<float>(2e-6 * s + 1e-6);
}

TEST_P(OpsTest, FloatMatMulMatchesScalar) {
  cpu::CpuBackend be(2);
  for (FloatType type : {FloatType::kF32, FloatType::kBF16, FloatType::kF16}) {
    for (int64_t K : {1, 7, 16, 33, 64, 100, 257}) {
      for (int64_t T : {1, 2, 3, 9, 70}) {
        for (int offset : {0, 1}) {
          const int64_t N = 37;
          auto wf = Random(N * K);
          MatRef w;
          w.type = type;
          w.rows = N;
          w.cols = K;
          auto buf = Store(wf, type, offset, &w.data);
          auto xbuf = Random(T * K + 1);
          const float* x = xbuf.data() + offset;  // misaligned activations too
          auto bias = Random(N);
          std::vector<float> want(T * N), got(T * N, NAN);
          ref::MatMul(x, T, w, bias.data(), want.data());
          MatMul(be, x, T, w, bias.data(), got.data());
          std::vector<float> row(K);
          for (int64_t n = 0; n < N; ++n) {
            ref::DequantizeRow(w, n, row.data());
            for (int64_t t = 0; t < T; ++t)
              ASSERT_NEAR(got[t * N + n], want[t * N + n], Tol(x + t * K, row.data(), K))
                  << "type " << int(type) << " K " << K << " T " << T << " n " << n << " t " << t;
          }
        }
      }
    }
  }
}

struct Packed {
  std::vector<uint32_t> words;
  std::vector<uint8_t> scales, biases;
};

// Random codes with random group scales/biases in `type`; `word_offset` misaligns the packed rows.
MatRef MakeAffine(std::mt19937& rng, int64_t N, int64_t K, int bits, int gs, FloatType type, bool with_bias,
                  int word_offset, Packed& p) {
  std::uniform_int_distribution<uint32_t> u32;
  std::normal_distribution<float> dist(0.0f, 0.05f);
  p.words.resize(N * K * bits / 32 + word_offset + 16);
  for (auto& w : p.words) w = u32(rng);
  std::vector<float> s(N * K / gs), b(N * K / gs);
  for (auto& v : s) v = dist(rng);
  for (auto& v : b) v = dist(rng);
  const void *sd, *bd;
  p.scales = Store(s, type, 0, &sd);
  p.biases = Store(b, type, 0, &bd);
  MatRef m;
  m.kind = MatRef::Kind::kAffine;
  m.type = type;
  m.rows = N;
  m.cols = K;
  m.bits = bits;
  m.group_size = gs;
  m.data = p.words.data() + word_offset;
  m.scales = p.scales.data();
  m.biases = with_bias ? p.biases.data() : nullptr;
  return m;
}

TEST_P(OpsTest, AffineMatMulMatchesDequantizeThenF32) {
  cpu::CpuBackend be(2);
  for (int bits : {2, 3, 4, 8}) {
    for (int gs : {32, 64, 128}) {
      for (int64_t K : {gs * 1, gs * 3, 256, 384}) {
        if (K % gs) continue;
        for (int64_t T : {1, 4, 9, 70}) {
          for (FloatType type : {FloatType::kBF16, FloatType::kF16, FloatType::kF32}) {
            const bool with_bias = (K / gs) % 2 == 1 || type != FloatType::kF32;
            const int64_t N = 13;
            Packed p;
            MatRef w = MakeAffine(rng_, N, K, bits, gs, type, with_bias, static_cast<int>(T % 2), p);
            auto x = Random(T * K);
            std::vector<float> got(T * N, NAN);
            MatMul(be, x.data(), T, w, nullptr, got.data());
            // Independent dequantizer: the formats layer's reference of the MLX layout.
            DType pd = type == FloatType::kF32 ? DType::kF32 : type == FloatType::kBF16 ? DType::kBF16 : DType::kF16;
            std::vector<float> row(K), zero_b(K / gs, 0.0f);
            std::vector<uint8_t> zero_raw(K / gs * 4, 0);
            for (int64_t n = 0; n < N; ++n) {
              const size_t es = FloatTypeSize(type);
              DequantizeRow(static_cast<const uint32_t*>(w.data) + n * K * bits / 32,
                            static_cast<const uint8_t*>(w.scales) + n * (K / gs) * es,
                            with_bias ? static_cast<const uint8_t*>(w.biases) + n * (K / gs) * es
                                      : static_cast<const void*>(zero_raw.data()),
                            pd, K, QuantSpec{bits, gs}, row.data());
              for (int64_t t = 0; t < T; ++t) {
                double want = 0;
                for (int64_t k = 0; k < K; ++k) want += double{x[t * K + k]} * row[k];
                ASSERT_NEAR(got[t * N + n], want, Tol(x.data() + t * K, row.data(), K))
                    << "bits " << bits << " gs " << gs << " K " << K << " T " << T << " type " << int(type) << " bias "
                    << with_bias << " n " << n << " t " << t;
              }
            }
          }
        }
      }
    }
  }
}

TEST_P(OpsTest, MatMulMultiEqualsSeparateMatMuls) {
  cpu::CpuBackend be(2);
  const int64_t K = 128;
  for (int64_t T : {1, 5, 12}) {
    // Mixed formats in one call: the backend groups same-format runs; outputs must equal the reference.
    Packed p1, p2;
    std::vector<MatRef> ws;
    ws.push_back(MakeAffine(rng_, 21, K, 4, 32, FloatType::kBF16, true, 0, p1));
    ws.push_back(MakeAffine(rng_, 9, K, 4, 32, FloatType::kBF16, false, 0, p2));
    auto wf = Random(13 * K);
    MatRef f;
    f.type = FloatType::kBF16;
    f.rows = 13;
    f.cols = K;
    auto fbuf = Store(wf, FloatType::kBF16, 0, &f.data);
    ws.push_back(f);
    auto x = Random(T * K);
    auto bias = Random(21);
    std::vector<std::vector<float>> got(3), want(3);
    std::vector<MatMulOut> outs;
    for (int i = 0; i < 3; ++i) {
      got[i].assign(T * ws[i].rows, NAN);
      want[i].resize(T * ws[i].rows);
      outs.push_back({ws[i], i == 0 ? Host(bias.data(), 1, 21) : Tensor{}, Host(got[i].data(), T, ws[i].rows)});
      ref::MatMul(x.data(), T, ws[i], i == 0 ? bias.data() : nullptr, want[i].data());
    }
    be.MatMulMulti(Host(x.data(), T, K), outs);
    for (int i = 0; i < 3; ++i)
      for (size_t j = 0; j < got[i].size(); ++j) ASSERT_NEAR(got[i][j], want[i][j], 1e-4f) << i << " " << j;
  }
}

TEST_P(OpsTest, RowOpsMatchScalar) {
  cpu::CpuBackend be(2);
  for (int64_t dim : {1, 5, 16, 31, 64, 130}) {
    const int64_t rows = 7;
    auto x = Random(rows * dim + 1), w = Random(dim);
    std::vector<float> want(rows * dim), got(rows * dim);
    ref::RmsNorm(x.data() + 1, w.data(), rows, dim, 1e-5f, want.data());
    be.RmsNorm(Host(x.data() + 1, rows, dim), Host(w.data(), 1, dim), 1e-5f, Host(got.data(), rows, dim));
    for (int64_t i = 0; i < rows * dim; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i])));
  }
  for (int64_t n : {0, 1, 15, 17, 100, 40000}) {
    auto g = Random(n + 1, 3.0f), u = Random(n + 1);
    std::vector<float> want(n + 1), got(n + 1);
    ref::SiluMul(g.data() + 1, u.data(), n, want.data());
    be.GluRows(GluActivation::kSilu, g.data() + 1, u.data(), n, got.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i]))) << i;
    ref::GeluMul(g.data() + 1, u.data(), n, want.data());
    be.GluRows(GluActivation::kGeluTanh, g.data() + 1, u.data(), n, got.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i]))) << i;
    std::vector<float> y = u, y2 = u;
    be.AddRows(y.data(), g.data() + 1, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y2[i] + g[i + 1]);
  }
}

TEST_P(OpsTest, SoftmaxMatchesScalarAndSumsToOne) {
  cpu::CpuBackend be(2);
  for (int64_t n : {1, 3, 16, 17, 100, 1000}) {
    auto x = Random(3 * n, 5.0f);
    auto want = x;
    ref::Softmax(want.data(), 3, n);
    be.SoftmaxHost(x.data(), 3, n);
    for (int64_t r = 0; r < 3; ++r) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(x[r * n + i], want[r * n + i], 1e-6f + 1e-5f * want[r * n + i]);
        sum += x[r * n + i];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
  std::vector<float> v = {0.0f, std::log(3.0f)};  // by hand: 1/4, 3/4
  be.SoftmaxHost(v.data(), 1, 2);
  EXPECT_NEAR(v[0], 0.25f, 1e-6f);
  EXPECT_NEAR(v[1], 0.75f, 1e-6f);
}

TEST_P(OpsTest, RopeMatchesHandComputedRotation) {
  cpu::CpuBackend be(2);
  // head_dim 8, rotary_dim 4 (partial): dims 0,2 pair with 2,... i.e. i pairs with i + 2 for i < 2.
  std::vector<float> inv_freq = {1.0f, 0.01f};
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  int32_t pos = 3;
  be.RopeRows(x.data(), 1, 1, 8, &pos, 4, inv_freq.data(), 1.0f);
  const double a0 = 3.0, a1 = 0.03;
  EXPECT_NEAR(x[0], 1 * std::cos(a0) - 3 * std::sin(a0), 1e-6);
  EXPECT_NEAR(x[2], 3 * std::cos(a0) + 1 * std::sin(a0), 1e-6);
  EXPECT_NEAR(x[1], 2 * std::cos(a1) - 4 * std::sin(a1), 1e-6);
  EXPECT_NEAR(x[3], 4 * std::cos(a1) + 2 * std::sin(a1), 1e-6);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(x[i], i + 1);  // past rotary_dim: untouched
}

TEST_P(OpsTest, AttentionMatchesScalarWithGqaAndWindow) {
  cpu::CpuBackend be(2);
  ref::ReferenceBackend rb;
  for (int64_t len : {11, 400})
    for (int window : {0, 5, 1}) {
      Paged kv(2, 2, 12, 4, {len, 3});
      std::vector<int32_t> items, pos;
      for (int p = 0; p < len; ++p) items.push_back(0), pos.push_back(p);
      for (int p = 0; p < 3; ++p) items.push_back(1), pos.push_back(p);
      const int64_t T = items.size();
      const StepPlan plan = kv.Plan(items, pos);
      auto k = Random(T * 24), v = Random(T * 24), q = Random(T * 4 * 12);
      for (int layer = 0; layer < 2; ++layer) HostWriteKv(kv.cache, plan, layer, k.data(), v.data());
      AttentionArgs a;
      a.q = Host(q.data(), T, 48);
      // len 11 stays under the kernel's inline threshold; len 400 takes the threaded path.
      a.layer = 1;
      a.n_heads = 4;
      a.n_kv_heads = 2;
      a.head_dim = 12;
      a.scale = 0.3f;
      a.window = window;
      std::vector<float> want(T * 48), got(T * 48);
      a.out = Host(want.data(), T, 48);
      rb.SetStep(plan);
      rb.Attention(kv.cache, a);
      a.out = Host(got.data(), T, 48);
      be.SetStep(plan);
      be.Attention(kv.cache, a);
      for (int64_t i = 0; i < T * 48; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f) << i;
      // Position 0 sees only itself: output equals its value row (kv head 0 for heads 0 and 1).
      for (int d = 0; d < 12; ++d) EXPECT_NEAR(got[d], v[d], 1e-6f);
      for (int d = 0; d < 12; ++d) EXPECT_NEAR(got[12 + d], v[d], 1e-6f);
      // Window 1: every query sees only its own key (q - k < 1), so each head returns its kv head's value.
      if (window == 1) {
        for (int64_t t = 0; t < T; ++t)
          for (int h = 0; h < 4; ++h)
            for (int d = 0; d < 12; ++d) ASSERT_NEAR(got[(t * 4 + h) * 12 + d], v[t * 24 + (h / 2) * 12 + d], 1e-6f);
      }
    }
}

// The tile kernel (runs of rows of one sequence) against the scalar reference: GQA groups that do and do not
// divide the SIMD width, head sizes that are not multiples of it, cache blocks of other sizes than a key chunk,
// a chunk that starts after a cached prefix (chunked prefill), sliding windows, and decode rows of other
// sequences in the same call (row kernel).
TEST_P(OpsTest, AttentionTilesMatchScalarAcrossShapes) {
  // 16 threads: tiles shrink (down to one vector) so that there are at least two per thread.
  for (int threads : {2, 16}) {
  SCOPED_TRACE(testing::Message() << threads << " threads");
  cpu::CpuBackend be(threads);
  ref::ReferenceBackend rb;
  struct Shape { int heads, kv_heads, head_dim, block_tokens, window; };
  for (const Shape& sh : {Shape{4, 2, 64, 16, 0}, Shape{8, 8, 12, 4, 0}, Shape{28, 4, 20, 16, 0},
                          Shape{4, 1, 96, 7, 0}, Shape{4, 2, 32, 16, 37}, Shape{2, 2, 8, 32, 300}}) {
    SCOPED_TRACE(testing::Message() << "heads " << sh.heads << " kv " << sh.kv_heads << " hd " << sh.head_dim
                                    << " block " << sh.block_tokens << " window " << sh.window);
    const int kv_dim = sh.kv_heads * sh.head_dim, q_dim = sh.heads * sh.head_dim;
    // Item 0 (a): 180 cached positions, then a 333-row chunk. Items 1, 2 (b, c): one decode row each at 250 and 3.
    const int64_t cached = 180, chunk = 333;
    Paged kv(1, sh.kv_heads, sh.head_dim, sh.block_tokens, {cached + chunk, 251, 4});
    std::vector<int32_t> all_items, all_pos;
    for (int p = 0; p < cached + chunk; ++p) all_items.push_back(0), all_pos.push_back(p);
    for (int p = 0; p < 251; ++p) all_items.push_back(1), all_pos.push_back(p);
    for (int p = 0; p < 4; ++p) all_items.push_back(2), all_pos.push_back(p);
    const auto k = Random(all_items.size() * kv_dim), v = Random(all_items.size() * kv_dim);
    HostWriteKv(kv.cache, kv.Plan(all_items, all_pos), 0, k.data(), v.data());
    // This call's rows: b's last row, a's chunk, c's last row.
    std::vector<int32_t> items = {1}, pos = {250};
    for (int64_t p = cached; p < cached + chunk; ++p) items.push_back(0), pos.push_back(static_cast<int32_t>(p));
    items.push_back(2), pos.push_back(3);
    const int64_t T = items.size();
    const StepPlan plan = kv.Plan(items, pos);
    const auto q = Random(T * q_dim);
    AttentionArgs args;
    args.q = Host(q.data(), T, q_dim);
    args.n_heads = sh.heads;
    args.n_kv_heads = sh.kv_heads;
    args.head_dim = sh.head_dim;
    args.scale = 1.0f / std::sqrt(static_cast<float>(sh.head_dim)) * 3.0f;  // sharper than usual
    args.window = sh.window;
    std::vector<float> want(T * q_dim), got(T * q_dim, NAN);
    args.out = Host(want.data(), T, q_dim);
    rb.SetStep(plan);
    rb.Attention(kv.cache, args);
    args.out = Host(got.data(), T, q_dim);
    be.SetStep(plan);
    be.Attention(kv.cache, args);
    for (int64_t i = 0; i < T * q_dim; ++i) ASSERT_NEAR(got[i], want[i], 2e-5f) << "row " << i / q_dim;
  }
  }
}

// ---- The integer kernels (matmul_int8.cpp): their own x86 dispatch, so plain tests, not per Highway target.

// x of one row quantized as the kernel documents it: blocks of 32, d = max|x| / 127, q = round(x / d); fine:
// also q2 = round((x / d - q) * 128), and the value is d (q + q2 / 128).
struct Int8Row {
  std::vector<double> q;  // q, or q + q2 / 128
  std::vector<double> d;
};
Int8Row QuantizeInt8(const float* x, int64_t K, bool fine) {
  Int8Row r{std::vector<double>(K), std::vector<double>(K / 32)};
  for (int64_t b = 0; b < K / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    r.d[b] = d;
    for (int j = 0; j < 32; ++j) {
      const float v = x[b * 32 + j] * id, q = std::nearbyint(v);
      r.q[b * 32 + j] = q + (fine ? std::nearbyint((v - q) * 128.0f) / 128.0 : 0.0);
    }
  }
  return r;
}

class Int8Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu::Int8Available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU (or PENSIEVE_CPU_INT8=0)";
  }
  std::mt19937 rng_{4321};
  std::vector<float> Random(size_t n) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }
};

// Each output against two truths: (1) the same sum in double from the documented int8 rounding of x and the
// dequantized weights - equal up to float rounding; (2) the float product x W^T - within the bound that
// rounding x allows, sum_j |w_j| d_b(j) / 2 (fine: / 256).
TEST_F(Int8Test, TiledMatMulEqualsInt8ArithmeticAndStaysWithinRoundingOfFloat) {
  int cases = 0;
  for (bool fine : {false, true})
  for (int bits : {4, 8}) {
    cpu::CpuBackend be(2, fine ? cpu::AffineMath::kInt8Fine : cpu::AffineMath::kInt8);
    for (int gs : {32, 64, 128}) {
      for (int64_t K : {int64_t{gs}, int64_t{gs} * 3, int64_t{384}}) {
        if (K % gs) continue;
        for (int64_t N : {13, 16, 33, 64}) {
          for (FloatType type : {FloatType::kBF16, FloatType::kF16, FloatType::kF32}) {
            const bool with_bias = (N + gs) % 3 != 0;
            Packed p;
            const MatRef src = MakeAffine(rng_, N, K, bits, gs, type, with_bias, static_cast<int>(N % 2), p);
            MatRef w = src;
            auto tiles = be.Relayout(w);
            ASSERT_TRUE(tiles && w.tiled) << "bits " << bits << " gs " << gs;
            std::vector<float> want_row(K), got_row(K);
            for (int64_t n = 0; n < N; ++n) {  // the tiles hold the same values (also what Embed reads)
              ref::DequantizeRow(src, n, want_row.data());
              cpu::DequantizeTiledRow(w, n, got_row.data());
              ASSERT_EQ(want_row, got_row) << "row " << n;
            }
            for (int64_t T : {1, 2, 3, 4, 5, 9, 19}) {
              auto x = Random(T * K);
              auto bias = Random(N);
              std::vector<float> got(T * N, NAN);
              MatMul(be, x.data(), T, w, (T % 2) ? bias.data() : nullptr, got.data());
              for (int64_t t = 0; t < T; ++t) {
                const Int8Row xq = QuantizeInt8(x.data() + t * K, K, fine);
                for (int64_t n = 0; n < N; ++n) {
                  ref::DequantizeRow(src, n, want_row.data());
                  double exact = (T % 2) ? bias[n] : 0.0, flt = exact, mag = std::fabs(exact), bound = 0;
                  for (int64_t j = 0; j < K; ++j) {
                    const double xj = xq.d[j / 32] * xq.q[j];
                    // value s q + b times the rounded x; the bias part meets the float x (gsum), as documented
                    const double wv = want_row[j];
                    const double s = ref::LoadFloat(type, src.scales, n * (K / gs) + j / gs);
                    const double b = with_bias ? ref::LoadFloat(type, src.biases, n * (K / gs) + j / gs) : 0.0;
                    const uint32_t word = static_cast<const uint32_t*>(src.data)[(n * K + j) * bits / 32];
                    const double q = (word >> ((j * bits) % 32)) & ((1u << bits) - 1);
                    exact += s * q * xj + b * x[t * K + j];
                    flt += wv * x[t * K + j];
                    mag += std::fabs(wv * x[t * K + j]) + std::fabs(s * q * xj);
                    bound += std::fabs(s * q) * xq.d[j / 32] / (fine ? 256 : 2);
                  }
                  const float y = got[t * N + n];
                  ASSERT_NEAR(y, exact, 2e-6 * mag + 1e-6)
                      << "bits " << bits << " gs " << gs << " K " << K << " N " << N << " T " << T << " n " << n;
                  ASSERT_NEAR(y, flt, bound + 2e-6 * mag + 1e-6) << "float path, bits " << bits << " n " << n;
                  if (fine) {
                    EXPECT_NEAR(y, flt, 2e-3 * mag + 1e-6) << "fine, bits " << bits << " n " << n;
                  }
                }
              }
              ++cases;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 200);
}

// A row's result does not depend on the rows it is computed with (T, the position in the step): each token's
// sums run in the same order whatever the token group.
TEST_F(Int8Test, RowResultsIndependentOfTheOtherRows) {
  cpu::CpuBackend be(2);
  Packed p;
  MatRef w = MakeAffine(rng_, 40, 512, 4, 64, FloatType::kBF16, true, 0, p);
  auto tiles = be.Relayout(w);
  const int64_t T = 11;
  auto x = Random(T * 512);
  std::vector<float> all(T * 40), one(40);
  MatMul(be, x.data(), T, w, nullptr, all.data());
  for (int64_t t = 0; t < T; ++t) {
    MatMul(be, x.data() + t * 512, 1, w, nullptr, one.data());
    EXPECT_EQ(std::vector<float>(all.begin() + t * 40, all.begin() + (t + 1) * 40), one) << "row " << t;
  }
}

// llama.cpp's Q4_0 / Q8_0 arrive as affine groups whose bias is -2^(bits-1) * scale: the tiles drop the biases
// (zero = 8 or 128) and the results stay those of the stored values.
TEST_F(Int8Test, SymmetricGroupsDropTheirBiases) {
  cpu::CpuBackend be(2, cpu::AffineMath::kInt8Fine);
  for (int bits : {4, 8}) {
    Packed p;
    const int64_t N = 37, K = 256, gs = 32;
    MatRef src = MakeAffine(rng_, N, K, bits, gs, FloatType::kF16, true, 0, p);
    auto* b = reinterpret_cast<uint16_t*>(p.biases.data());
    for (int64_t i = 0; i < N * K / gs; ++i)
      b[i] = ref::F32ToF16(-static_cast<float>(1 << (bits - 1)) * ref::LoadFloat(FloatType::kF16, src.scales, i));
    MatRef w = src;
    auto tiles = be.Relayout(w);
    ASSERT_TRUE(w.tiled);
    EXPECT_EQ(w.biases, nullptr);
    EXPECT_EQ(w.zero, 1 << (bits - 1));
    std::vector<float> want_row(K), got_row(K);
    for (int64_t n = 0; n < N; ++n) {
      ref::DequantizeRow(src, n, want_row.data());
      cpu::DequantizeTiledRow(w, n, got_row.data());
      ASSERT_EQ(want_row, got_row) << "row " << n;
    }
    auto x = Random(3 * K);
    std::vector<float> got(3 * N), want(3 * N);
    MatMul(be, x.data(), 3, w, nullptr, got.data());
    ref::MatMul(x.data(), 3, src, nullptr, want.data());
    for (int64_t i = 0; i < 3 * N; ++i) {
      double mag = 0;
      for (int64_t k = 0; k < K; ++k) mag += std::fabs(x[(i / N) * K + k]);
      EXPECT_NEAR(got[i], want[i], 2e-3 * mag * 0.05 * (1 << bits)) << "bits " << bits << " i " << i;
    }
  }
}

TEST_F(Int8Test, MixedTiledAndOtherFormatsInOneCall) {
  cpu::CpuBackend be(2);
  const int64_t K = 256, T = 6;
  Packed p1, p2, p3;
  std::vector<MatRef> src = {MakeAffine(rng_, 40, K, 4, 64, FloatType::kBF16, true, 0, p1),
                             MakeAffine(rng_, 24, K, 4, 64, FloatType::kBF16, true, 0, p2),
                             MakeAffine(rng_, 17, K, 3, 64, FloatType::kBF16, true, 0, p3)};  // 3-bit: not tiled
  std::vector<MatRef> w = src;
  std::vector<std::unique_ptr<Buffer>> kept;
  for (MatRef& m : w)
    if (auto b = be.Relayout(m)) kept.push_back(std::move(b));
  ASSERT_TRUE(w[0].tiled && w[1].tiled && !w[2].tiled);
  auto x = Random(T * K);
  std::vector<std::vector<float>> got(3), want(3);
  std::vector<MatMulOut> outs;
  for (int i = 0; i < 3; ++i) {
    got[i].assign(T * w[i].rows, NAN);
    outs.push_back({w[i], Tensor{}, Host(got[i].data(), T, w[i].rows)});
  }
  be.MatMulMulti(Host(x.data(), T, K), outs);
  for (int i = 0; i < 3; ++i) {
    // Each as a call of its own on one matrix (the first test checks that against the arithmetic).
    want[i].assign(T * w[i].rows, NAN);
    MatMul(be, x.data(), T, w[i], nullptr, want[i].data());
    EXPECT_EQ(got[i], want[i]) << "matrix " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, OpsTest, ::testing::ValuesIn(Targets()),
                         [](const auto& info) { return std::string(hwy::TargetName(info.param)); });

}  // namespace
}  // namespace pensieve::backend
