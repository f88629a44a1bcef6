// The CUDA backend's ops against the scalar reference backend (backend/reference.h), on random data: every
// weight format the kernels read (fast and generic paths, aligned and not), row counts on both sides of each
// kernel switch (decode kernel, chunked decode kernel, cuBLAS), residual accumulation and biases, several
// outputs in one launch, the gated MLP; RMSNorm, also fused with the tiled kernel's input layout; embeddings; q/k norm + rope + KV store + paged attention for
// odd shapes (one KV head, 32 query heads per KV head, GQA 7, head sizes 8 to 256, windows, longrope, cached
// prefixes, decode rows, padding rows), through the SIMT kernel (f32 KV, head sizes and groups flash attention
// does not take) and flash attention (bf16 KV: the prefill steps and, with key-range splits, the decode rows). Skips cleanly without a usable GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/host_kv.h"
#include "backend/reference.h"
#include "formats/dtype.h"

namespace pensieve::backend {
namespace {

// Device memory holding copies of host arrays, alive as long as the fixture.
class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const cuda::GpuStatus s = cuda::Probe();
    if (!s.usable) GTEST_SKIP() << "no usable GPU: " << s.reason;
    MakeBackend();
  }
  // A fresh backend (it reads its PENSIEVE_CUDA_* switches when made); before any Dev() of the test.
  void MakeBackend() {
    be_ = cuda::MakeCudaBackend({});
    ScratchSpec spec;
    spec.max_rows = 1024;
    spec.max_cols = 4096;
    spec.max_context = 4096;
    spec.max_items = 8;
    spec.max_samples = 8;
    spec.vocab = 256;
    spec.max_table_width = 1024;
    spec.head_dim = 256;
    // The largest group the tiles are cut for (flash attention's decode blocks take 16 (row, head) pairs);
    // shapes with more heads per KV head run the SIMT kernel.
    spec.gqa_group = 16;
    spec.n_heads = 40;
    be_->Reserve(spec);
  }

  template <typename T>
  T* Dev(const std::vector<T>& v) {
    buffers_.push_back(be_->Allocate(static_cast<int64_t>(v.size() * sizeof(T)) + 16, "test"));
    be_->Upload(buffers_.back()->data(), v.data(), static_cast<int64_t>(v.size() * sizeof(T)));
    return static_cast<T*>(buffers_.back()->data());
  }
  void* DevBytes(const void* p, int64_t n, int64_t offset = 0) {
    buffers_.push_back(be_->Allocate(n + offset + 16, "test"));
    char* d = static_cast<char*>(buffers_.back()->data()) + offset;
    be_->Upload(d, p, n);
    return d;
  }
  Tensor DevTensor(const std::vector<float>& v, int64_t rows, int64_t cols) { return {Dev(v), rows, cols}; }
  std::vector<float> Host(const Tensor& t) {
    std::vector<float> v(t.size());
    be_->Download(v.data(), t.data, t.size() * int64_t{sizeof(float)});
    return v;
  }
  // The same matrix with its arrays in device memory (`offset` bytes past an aligned start: misalignment).
  MatRef DevMat(const MatRef& h, int64_t offset = 0) {
    MatRef d = h;
    d.data = DevBytes(h.data, h.rows * h.RowBytes(), offset);
    if (h.kind == MatRef::Kind::kAffine) {
      const int64_t g = h.rows * (h.cols / h.group_size) * static_cast<int64_t>(FloatTypeSize(h.type));
      d.scales = DevBytes(h.scales, g);
      if (h.biases) d.biases = DevBytes(h.biases, g);
    }
    return d;
  }
  std::vector<float> Random(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }
  void Step(const StepPlan& plan) { be_->SetStep(plan); }
  // y = x W^T + b for T random rows against the reference, then accumulated into a residual: y = y0 + x W^T + b.
  void CheckMatMul(const MatRef& host, const MatRef& dev, int64_t T);
  // q/k/v (host and device pairs) through one MatMulMulti and the gated MLP gate/up through MatMulGlu with each
  // activation, for T random rows of width K, against the reference.
  void CheckMultiAndGlu(const std::vector<std::pair<MatRef, MatRef>>& qkv, const MatRef (&gate)[2],
                        const MatRef (&up)[2], int64_t T, std::initializer_list<GluActivation> acts);

  std::unique_ptr<Backend> be_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::mt19937 rng_{4321};
};

// Host storage of a weight matrix.
struct HostMat {
  std::vector<uint8_t> data, scales, biases;
  MatRef m;
};

HostMat FloatMat(std::mt19937& rng, int64_t N, int64_t K, FloatType type) {
  HostMat h;
  std::normal_distribution<float> dist(0.0f, 0.5f);
  const size_t es = FloatTypeSize(type);
  h.data.resize(N * K * es);
  const DType dt = type == FloatType::kF32 ? DType::kF32 : type == FloatType::kBF16 ? DType::kBF16 : DType::kF16;
  for (int64_t i = 0; i < N * K; ++i) StoreFromF32(h.data.data(), dt, i, dist(rng));
  h.m.type = type;
  h.m.rows = N;
  h.m.cols = K;
  h.m.data = h.data.data();
  return h;
}

HostMat AffineMat(std::mt19937& rng, int64_t N, int64_t K, int bits, int gs, FloatType type, bool with_bias) {
  HostMat h;
  std::uniform_int_distribution<uint32_t> u32;
  std::normal_distribution<float> dist(0.0f, 0.05f);
  h.data.resize(N * K * bits / 8);
  for (auto& b : h.data) b = static_cast<uint8_t>(u32(rng));
  const size_t es = FloatTypeSize(type);
  const DType dt = type == FloatType::kF32 ? DType::kF32 : type == FloatType::kBF16 ? DType::kBF16 : DType::kF16;
  h.scales.resize(N * K / gs * es);
  h.biases.resize(N * K / gs * es);
  for (int64_t i = 0; i < N * K / gs; ++i) {
    StoreFromF32(h.scales.data(), dt, i, dist(rng));
    StoreFromF32(h.biases.data(), dt, i, dist(rng));
  }
  h.m.kind = MatRef::Kind::kAffine;
  h.m.type = type;
  h.m.rows = N;
  h.m.cols = K;
  h.m.bits = bits;
  h.m.group_size = gs;
  h.m.data = h.data.data();
  h.m.scales = h.scales.data();
  h.m.biases = with_bias ? h.biases.data() : nullptr;
  return h;
}

// The error bound of one product of T rows of x and the device weight w, as a share of its sum of |terms|: the
// decode kernels (up to 16 rows; up to 8 for tiled 4-bit weights) add exact products in f32; beyond, the
// many-row tiled kernel and cuBLAS multiply on tensor cores with the input and every weight format but f32
// rounded to bf16 (each within 2^-8 relative: 8 significant bits).
double MatMulTolerance(const MatRef& w, int64_t T) {
  const bool f32 = w.kind == MatRef::Kind::kFloat && w.type == FloatType::kF32;
  return T > (w.tiled ? 1 : 2) * cuda::kMaxGemvRows && !f32 ? 8e-3 : 2e-6;
}

// Sums of |x_k w_k| of every product of x[T, K] W^T, [T][N].
std::vector<double> SumsOfTerms(const std::vector<float>& x, const MatRef& w, int64_t T) {
  std::vector<double> s(T * w.rows);
  std::vector<float> row(w.cols);
  for (int64_t n = 0; n < w.rows; ++n) {
    ref::DequantizeRow(w, n, row.data());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < w.cols; ++k) s[t * w.rows + n] += std::fabs(double{x[t * w.cols + k]} * row[k]);
  }
  return s;
}

// |got - want| within MatMulTolerance of the sum of |terms| of each dot product.
void ExpectMatMul(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& x,
                  const MatRef& w, const MatRef& dev, int64_t T, const std::string& what) {
  const std::vector<double> s = SumsOfTerms(x, w, T);
  const double tol = MatMulTolerance(dev, T);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < w.rows; ++n)
      ASSERT_NEAR(got[t * w.rows + n], want[t * w.rows + n], tol * s[t * w.rows + n] + 1e-5) << what << " n " << n << " t " << t;
}

void CudaOpsTest::CheckMatMul(const MatRef& host, const MatRef& dev, int64_t T) {
  const int64_t N = host.rows, K = host.cols;
  auto x = Random(T * K), bias = Random(N), y0 = Random(T * N);
  std::vector<float> want(T * N);
  ref::MatMul(x.data(), T, host, bias.data(), want.data());
  const Tensor dx = DevTensor(x, T, K), db = DevTensor(bias, 1, N), dy = DevTensor(y0, T, N);
  be_->MatMul(dx, dev, db, dy, false);
  ExpectMatMul(Host(dy), want, x, host, dev, T, "set");
  const Tensor da = DevTensor(y0, T, N);
  be_->MatMul(dx, dev, db, da, true);
  std::vector<float> want_acc(T * N);
  for (int64_t i = 0; i < T * N; ++i) want_acc[i] = want[i] + y0[i];
  ExpectMatMul(Host(da), want_acc, x, host, dev, T, "accumulate");
}

void CudaOpsTest::CheckMultiAndGlu(const std::vector<std::pair<MatRef, MatRef>>& qkv, const MatRef (&gate)[2],
                                   const MatRef (&up)[2], int64_t T, std::initializer_list<GluActivation> acts) {
  const int64_t K = gate[0].cols, N = gate[0].rows;
  auto x = Random(T * K), b0 = Random(qkv[0].first.rows);
  const Tensor dx = DevTensor(x, T, K);
  std::vector<std::vector<float>> want;
  std::vector<MatMulOut> outs;
  for (size_t i = 0; i < qkv.size(); ++i) {
    const MatRef& h = qkv[i].first;
    want.emplace_back(T * h.rows);
    ref::MatMul(x.data(), T, h, i == 0 ? b0.data() : nullptr, want.back().data());
    outs.push_back({qkv[i].second, i == 0 ? DevTensor(b0, 1, h.rows) : Tensor{}, DevTensor(std::vector<float>(T * h.rows), T, h.rows)});
  }
  be_->MatMulMulti(dx, outs);
  for (size_t i = 0; i < qkv.size(); ++i) ExpectMatMul(Host(outs[i].y), want[i], x, qkv[i].first, qkv[i].second, T, "output " + std::to_string(i));

  // The gate and up sums carry MatMulTolerance of their sums of |terms|; the activations' slopes stay below 1.2.
  auto bg = Random(N), bu = Random(N);
  std::vector<float> a(T * N), b(T * N), expect(T * N);
  ref::MatMul(x.data(), T, gate[0], bg.data(), a.data());
  ref::MatMul(x.data(), T, up[0], bu.data(), b.data());
  const std::vector<double> sg = SumsOfTerms(x, gate[0], T), su = SumsOfTerms(x, up[0], T);
  const double rel = MatMulTolerance(gate[1], T);
  for (GluActivation act : acts) {
    act == GluActivation::kSilu ? ref::SiluMul(a.data(), b.data(), T * N, expect.data())
                                : ref::GeluMul(a.data(), b.data(), T * N, expect.data());
    const Tensor out = DevTensor(std::vector<float>(T * N), T, N);
    be_->MatMulGlu(dx, gate[1], DevTensor(bg, 1, N), up[1], DevTensor(bu, 1, N), act, out);
    const auto got = Host(out);
    for (int64_t i = 0; i < T * N; ++i) {
      const double tol = rel * (1.2 * (sg[i] + std::fabs(bg[i % N])) * std::fabs(b[i]) + (su[i] + std::fabs(bu[i % N])) * std::fabs(a[i])) + 1e-5;
      ASSERT_NEAR(got[i], expect[i], tol) << "glu act " << int(act) << " n " << i % N << " t " << i / N;
    }
  }
}

TEST_F(CudaOpsTest, MatMulMatchesReferenceForEveryFormatAndRowCount) {
  struct Case {
    HostMat h;
    int64_t offset;
    std::string name;
  };
  std::vector<Case> cases;
  for (FloatType t : {FloatType::kF32, FloatType::kBF16, FloatType::kF16})
    for (int64_t K : {8, 20, 256, 4096}) {
      const int64_t N = K == 4096 ? 300 : 37;
      cases.push_back({FloatMat(rng_, N, K, t), 0, "float " + std::to_string(int(t)) + " K " + std::to_string(K)});
    }
  for (int bits : {4, 8})
    for (int gs : {32, 64, 128})
      for (FloatType t : {FloatType::kBF16, FloatType::kF16, FloatType::kF32})
        cases.push_back({AffineMat(rng_, 45, gs * 3, bits, gs, t, t != FloatType::kF32), 0,
                         "affine " + std::to_string(bits) + " g" + std::to_string(gs) + " type " + std::to_string(int(t))});
  for (int bits : {2, 3, 5, 6})  // the generic kernel
    cases.push_back({AffineMat(rng_, 19, 256, bits, 64, FloatType::kBF16, true), 0, "affine " + std::to_string(bits)});
  cases.push_back({AffineMat(rng_, 19, 4096, 4, 64, FloatType::kBF16, true), 0, "affine 4 K 4096"});
  cases.push_back({AffineMat(rng_, 19, 512, 4, 64, FloatType::kBF16, true), 4, "affine 4 misaligned"});
  cases.push_back({FloatMat(rng_, 19, 512, FloatType::kBF16), 2, "bf16 misaligned"});
  for (const Case& c : cases) {
    const MatRef dw = DevMat(c.h.m, c.offset);
    for (int64_t T : {1, 2, 3, 5, 8, 9, 16, 17, 40}) {
      SCOPED_TRACE(c.name + " T " + std::to_string(T));
      CheckMatMul(c.h.m, dw, T);
    }
  }
}

TEST_F(CudaOpsTest, SeveralOutputsAndTheGatedMlpInOneLaunch) {
  const int64_t K = 1536;  // the gated MLP's warps: three batches of two tiles each
  HostMat q = AffineMat(rng_, 64, K, 4, 64, FloatType::kBF16, true), k = AffineMat(rng_, 16, K, 4, 64, FloatType::kBF16, true),
          v = AffineMat(rng_, 20, K, 4, 64, FloatType::kBF16, true);
  HostMat g = FloatMat(rng_, 96, K, FloatType::kBF16), u = FloatMat(rng_, 96, K, FloatType::kBF16);
  const MatRef gate[2] = {g.m, DevMat(g.m)}, up[2] = {u.m, DevMat(u.m)};
  const std::vector<std::pair<MatRef, MatRef>> qkv = {{q.m, DevMat(q.m)}, {k.m, DevMat(k.m)}, {v.m, DevMat(v.m)}};
  for (int64_t T : {1, 4, 8, 12, 33}) {
    SCOPED_TRACE("T " + std::to_string(T));
    CheckMultiAndGlu(qkv, gate, up, T, {GluActivation::kSilu, GluActivation::kGeluTanh});
  }
}

// 4-bit weights relaid into the tensor-core kernel's tiles: every group size and scale type, with and without
// biases, one launch for several outputs and for the gated MLP, every row count (the decode kernel for up to 16
// rows (8 for these), the many-row tiled kernel up to 64 with key splits and warps whose second row tile lies past the end,
// cuBLAS on dequantized tiles beyond), and an embedding read from a tiled table.
TEST_F(CudaOpsTest, TiledFourBitWeightsMatchReference) {
  struct Case {
    HostMat h;
    std::string name;
  };
  std::vector<Case> cases;
  for (int gs : {32, 64, 128})
    for (FloatType t : {FloatType::kBF16, FloatType::kF16})
      for (bool bias : {true, false})
        cases.push_back({AffineMat(rng_, 48, 384, 4, gs, t, bias),
                         "g" + std::to_string(gs) + " type " + std::to_string(int(t)) + " biases " + std::to_string(bias)});
  cases.push_back({AffineMat(rng_, 32, 4096, 4, 64, FloatType::kBF16, true), "K 4096"});
  cases.push_back({AffineMat(rng_, 16, 1536, 4, 128, FloatType::kBF16, true), "K 1536 (a batch and a tail per warp)"});
  cases.push_back({AffineMat(rng_, 16, 64, 4, 32, FloatType::kBF16, true), "one tile"});
  for (const Case& c : cases) {
    MatRef dw = DevMat(c.h.m);
    ASSERT_TRUE(cuda::CanTile(dw)) << c.name;
    be_->Relayout(dw);
    ASSERT_TRUE(dw.tiled) << c.name;
    for (int64_t T : {1, 2, 3, 4, 5, 8, 9, 16, 17, 33, 64, 65}) {
      SCOPED_TRACE(c.name + " T " + std::to_string(T));
      CheckMatMul(c.h.m, dw, T);
    }
  }

  const int64_t K = 1536;  // the gated MLP's warps: three batches of two tiles each
  HostMat q = AffineMat(rng_, 64, K, 4, 64, FloatType::kBF16, true), k = AffineMat(rng_, 16, K, 4, 64, FloatType::kBF16, true),
          v = AffineMat(rng_, 32, K, 4, 64, FloatType::kBF16, true), g = AffineMat(rng_, 96, K, 4, 64, FloatType::kBF16, true),
          u = AffineMat(rng_, 96, K, 4, 64, FloatType::kBF16, true);
  const auto tiled = [&](const HostMat& h) {
    MatRef d = DevMat(h.m);
    be_->Relayout(d);
    return d;
  };
  const MatRef gate[2] = {g.m, tiled(g)}, up[2] = {u.m, tiled(u)};
  const std::vector<std::pair<MatRef, MatRef>> qkv = {{q.m, tiled(q)}, {k.m, tiled(k)}, {v.m, tiled(v)}};
  for (int64_t T : {1, 4, 7, 12, 40, 64}) {
    SCOPED_TRACE("several outputs, T " + std::to_string(T));
    CheckMultiAndGlu(qkv, gate, up, T, {GluActivation::kSilu});
  }

  const std::vector<int32_t> tokens = {3, 0, 99, 3, 255};
  std::vector<int32_t> pos = {0, 1, 2, 3, 4}, items = {0, 0, 0, 0, 0};
  StepPlan plan;
  plan.tokens = tokens, plan.pos = pos, plan.row_item = items;
  HostMat table = AffineMat(rng_, 256, 128, 4, 32, FloatType::kF16, true);
  MatRef dt = DevMat(table.m);
  be_->Relayout(dt);
  Step(plan);
  const Tensor out = DevTensor(std::vector<float>(5 * 128), 5, 128);
  be_->Embed(dt, out);
  std::vector<float> want(5 * 128);
  ref::Embed(table.m, tokens, want.data());
  const auto got = Host(out);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << "embedding " << i;
}

// The streaming decode kernel (gemv_stream.cu; an experiment, switched on here) on one block: its rings of 8
// stages then wrap around (10-20 units of 1-2 chunks each on one multiprocessor), for every group size (two tiles
// per warp and chunk for one matrix), the gated MLP and several outputs in one launch, up to 4 rows.
TEST_F(CudaOpsTest, StreamingKernelOnOneBlockCyclesItsRing) {
  setenv("PENSIEVE_CUDA_STREAM", "1", 1);
  setenv("PENSIEVE_CUDA_STREAM_BLOCKS", "1", 1);
  MakeBackend();
  unsetenv("PENSIEVE_CUDA_STREAM");
  unsetenv("PENSIEVE_CUDA_STREAM_BLOCKS");
  const struct {
    int64_t N, K;
    int gs;
    FloatType type;
    bool bias;
  } shapes[] = {{160, 4096, 64, FloatType::kBF16, true},
                {320, 2048, 32, FloatType::kF16, false},
                {160, 4096, 128, FloatType::kBF16, true},
                {48, 1088, 64, FloatType::kBF16, true}};  // 17 tiles: the chunk's last warp has one of its two
  for (const auto& sh : shapes) {
    HostMat h = AffineMat(rng_, sh.N, sh.K, 4, sh.gs, sh.type, sh.bias);
    MatRef dw = DevMat(h.m);
    be_->Relayout(dw);
    ASSERT_TRUE(dw.tiled);
    for (int64_t T : {1, 2, 4}) {
      SCOPED_TRACE("N " + std::to_string(sh.N) + " K " + std::to_string(sh.K) + " group " + std::to_string(sh.gs) +
                   " T " + std::to_string(T));
      CheckMatMul(h.m, dw, T);
    }
  }
  const int64_t K = 1536;
  HostMat q = AffineMat(rng_, 64, K, 4, 64, FloatType::kBF16, true), k = AffineMat(rng_, 16, K, 4, 64, FloatType::kBF16, true),
          v = AffineMat(rng_, 32, K, 4, 64, FloatType::kBF16, true), g = AffineMat(rng_, 256, K, 4, 64, FloatType::kBF16, true),
          u = AffineMat(rng_, 256, K, 4, 64, FloatType::kBF16, true);
  const auto tiled = [&](const HostMat& hm) {
    MatRef d = DevMat(hm.m);
    be_->Relayout(d);
    return d;
  };
  const MatRef gate[2] = {g.m, tiled(g)}, up[2] = {u.m, tiled(u)};
  const std::vector<std::pair<MatRef, MatRef>> qkv = {{q.m, tiled(q)}, {k.m, tiled(k)}, {v.m, tiled(v)}};
  for (int64_t T : {1, 3, 4}) {
    SCOPED_TRACE("several outputs, T " + std::to_string(T));
    CheckMultiAndGlu(qkv, gate, up, T, {GluActivation::kSilu, GluActivation::kGeluTanh});
  }
}

TEST_F(CudaOpsTest, RmsNormAndEmbedMatchReference) {
  for (int64_t dim : {1, 5, 64, 130, 4096}) {
    const int64_t rows = 7;
    auto x = Random(rows * dim), w = Random(dim);
    std::vector<float> want(rows * dim);
    ref::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
    const Tensor dx = DevTensor(x, rows, dim);
    be_->RmsNorm(dx, DevTensor(w, 1, dim), 1e-5f, dx);
    const auto got = Host(dx);
    for (int64_t i = 0; i < rows * dim; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i]))) << dim;
  }
  const std::vector<int32_t> tokens = {3, 0, 99, 3, 255};
  std::vector<int32_t> pos = {0, 1, 2, 3, 4}, items = {0, 0, 0, 0, 0};
  StepPlan plan;
  plan.tokens = tokens, plan.pos = pos, plan.row_item = items;
  for (HostMat h : {FloatMat(rng_, 256, 40, FloatType::kBF16), AffineMat(rng_, 256, 128, 4, 32, FloatType::kF16, true)}) {
    const MatRef d = DevMat(h.m);
    Step(plan);
    const Tensor out = DevTensor(std::vector<float>(5 * h.m.cols), 5, h.m.cols);
    be_->Embed(d, out);
    std::vector<float> want(5 * h.m.cols);
    ref::Embed(h.m, tokens, want.data());
    const auto got = Host(out);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
  }
}

// RmsNormFor may also lay its output out for the tiled decode kernel (the next matmul then skips that launch):
// the normed rows and the products must equal RmsNorm then MatMul bit for bit, in place or not, for one output
// or several; and once another op has written those rows, the next matmul must read them anew.
TEST_F(CudaOpsTest, NormForTiledMatMulEqualsNormThenMatMul) {
  struct Shape {
    int64_t K;
    int gs;
  };
  for (const Shape s : {Shape{64, 32}, Shape{384, 64}, Shape{1536, 128}, Shape{4096, 64}}) {
    HostMat a = AffineMat(rng_, 48, s.K, 4, s.gs, FloatType::kBF16, true), b = AffineMat(rng_, 16, s.K, 4, s.gs, FloatType::kBF16, false);
    MatRef wa = DevMat(a.m), wb = DevMat(b.m);
    be_->Relayout(wa);
    be_->Relayout(wb);
    ASSERT_TRUE(wa.tiled && wb.tiled);
    for (int64_t T = 1; T <= 8; ++T) {
      SCOPED_TRACE("K " + std::to_string(s.K) + " group " + std::to_string(s.gs) + " T " + std::to_string(T));
      const auto x = Random(T * s.K), w = Random(s.K), other = Random(T * s.K);
      const Tensor dw = DevTensor(w, 1, s.K);
      const auto run = [&](bool fused, bool in_place, bool overwrite) {
        const Tensor dx = DevTensor(x, T, s.K);
        const Tensor y = in_place ? dx : DevTensor(std::vector<float>(T * s.K), T, s.K);
        const Tensor ya = DevTensor(std::vector<float>(T * 48), T, 48), yb = DevTensor(std::vector<float>(T * 16), T, 16);
        if (fused) be_->RmsNormFor(dx, dw, 1e-5f, y, wa);
        else be_->RmsNorm(dx, dw, 1e-5f, y);
        if (overwrite) be_->RmsNorm(DevTensor(other, T, s.K), dw, 1e-5f, y);
        const MatMulOut outs[2] = {{wa, {}, ya}, {wb, {}, yb}};
        be_->MatMulMulti(y, outs);
        std::vector<float> all = Host(y), pa = Host(ya), pb = Host(yb);
        all.insert(all.end(), pa.begin(), pa.end());
        all.insert(all.end(), pb.begin(), pb.end());
        return all;
      };
      for (bool in_place : {false, true}) {
        const auto want = run(false, in_place, false), got = run(true, in_place, false);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << "in place " << in_place << " at " << i;
      }
      const auto want = run(false, false, true), got = run(true, false, true);
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << "overwritten rows, at " << i;
      // A plain MatMul after the fused norm takes the same prepared input.
      const Tensor dx = DevTensor(x, T, s.K), y1 = DevTensor(std::vector<float>(T * s.K), T, s.K);
      const Tensor o1 = DevTensor(std::vector<float>(T * 48), T, 48), o2 = DevTensor(std::vector<float>(T * 48), T, 48);
      be_->RmsNorm(dx, dw, 1e-5f, y1);
      be_->MatMul(y1, wa, {}, o1, false);
      be_->RmsNormFor(dx, dw, 1e-5f, y1, wa);
      be_->MatMul(y1, wa, {}, o2, false);
      const auto h1 = Host(o1), h2 = Host(o2);
      for (size_t i = 0; i < h1.size(); ++i) ASSERT_EQ(h2[i], h1[i]) << "MatMul at " << i;
    }
  }
}

// Attention end to end (PrepareAttention then Attention) against the reference backend over the same block
// tables: a first step stores every item's prompt (item 0 runs as a chunk after its cached prefix was stored in
// step 0), the last step has decode rows of the others.
struct AttnShape {
  int heads, kv_heads, head_dim, block_tokens, window, rotary_dim;
  bool qk_norm, longrope;
};

TEST_F(CudaOpsTest, AttentionMatchesReferenceAcrossShapes) {
  for (bool bf16 : {false, true}) {
    for (const AttnShape& sh : {AttnShape{4, 2, 64, 16, 0, 64, false, false}, AttnShape{8, 8, 12, 4, 0, 12, false, false},
                                AttnShape{28, 4, 20, 16, 0, 20, false, false}, AttnShape{4, 1, 96, 7, 0, 48, false, false},
                                AttnShape{32, 1, 64, 16, 0, 64, true, false}, AttnShape{4, 2, 32, 16, 37, 32, false, true},
                                AttnShape{2, 2, 8, 32, 300, 8, true, false}, AttnShape{8, 2, 256, 16, 0, 256, false, false},
                                AttnShape{40, 10, 128, 16, 0, 128, false, false},
                                // flash attention (bf16 steps of more than 64 rows): a window, GQA 7 with head size 80
                                AttnShape{8, 2, 128, 16, 100, 128, false, false}, AttnShape{28, 4, 80, 16, 0, 80, true, false}}) {
      SCOPED_TRACE(testing::Message() << "bf16 " << bf16 << " heads " << sh.heads << " kv " << sh.kv_heads << " hd "
                                      << sh.head_dim << " block " << sh.block_tokens << " window " << sh.window);
      const int hd = sh.head_dim, q_dim = sh.heads * hd, kv_dim = sh.kv_heads * hd;
      // Items: 0 = a 180-token prefix then a 333-row chunk; 1 = 250 tokens then 1 decode row; 2 = 3 then 1.
      const std::vector<int64_t> lengths = {513, 251, 4};
      int64_t stride = 0, blocks = 0;
      for (int64_t n : lengths) stride = std::max(stride, (n + sh.block_tokens - 1) / sh.block_tokens);
      std::vector<int32_t> tables(lengths.size() * stride, -1);
      for (size_t i = 0; i < lengths.size(); ++i)
        for (int64_t b = 0; b < (lengths[i] + sh.block_tokens - 1) / sh.block_tokens; ++b)
          tables[i * stride + b] = static_cast<int32_t>(blocks++);
      const KvLayout layout{2, sh.kv_heads, hd, sh.block_tokens, blocks + 3};
      HostKvStorage ref_kv(layout);
      auto dev_kv = be_->CreateKvStorage(layout, bf16 ? FloatType::kBF16 : FloatType::kF32);
      ref::ReferenceBackend rb;
      // Rope tables (partial rotary when rotary_dim < head_dim) and longrope's long factors.
      std::vector<float> inv(sh.rotary_dim / 2), inv_long(sh.rotary_dim / 2);
      for (int i = 0; i < sh.rotary_dim / 2; ++i) {
        inv[i] = std::pow(10000.0f, -2.0f * i / sh.rotary_dim);
        inv_long[i] = inv[i] / (1.0f + i);
      }
      RopeParams rope_h{sh.rotary_dim, {inv.data(), 1, sh.rotary_dim / 2}, {}, 1.25f};
      RopeParams rope_d{sh.rotary_dim, DevTensor(inv, 1, sh.rotary_dim / 2), {}, 1.25f};
      if (sh.longrope) {
        rope_h.inv_freq_long = {inv_long.data(), 1, sh.rotary_dim / 2};
        rope_d.inv_freq_long = DevTensor(inv_long, 1, sh.rotary_dim / 2);
      }
      auto qn = Random(hd, 0.3f), kn = Random(hd, 0.3f);
      for (auto& v : qn) v += 1.0f;
      for (auto& v : kn) v += 1.0f;
      const std::vector<std::vector<std::pair<int32_t, int32_t>>> steps = {
          {{0, 0}},                                         // step 0: item 0 positions [0, 180)
          {{0, 180}, {1, 0}, {2, 0}},                       // step 1: item 0 [180, 513), items 1, 2 prompts
          {{1, 250}, {2, 3}}};                              // step 2: decode rows
      const std::vector<std::vector<int64_t>> counts = {{180}, {333, 250, 3}, {1, 1}};
      for (size_t s = 0; s < steps.size(); ++s) {
        std::vector<int32_t> items, pos, tokens;
        std::vector<uint8_t> long_rope;
        for (size_t j = 0; j < steps[s].size(); ++j)
          for (int64_t r = 0; r < counts[s][j]; ++r) {
            items.push_back(steps[s][j].first);
            pos.push_back(static_cast<int32_t>(steps[s][j].second + r));
            tokens.push_back(0);
            long_rope.push_back(static_cast<uint8_t>(sh.longrope && steps[s][j].first == 1));
          }
        const int64_t T = items.size();
        StepPlan plan;
        plan.tokens = tokens, plan.pos = pos, plan.row_item = items;
        if (sh.longrope) plan.long_rope = long_rope;
        plan.block_tables = tables;
        plan.table_stride = stride;
        auto q = Random(T * q_dim), k = Random(T * kv_dim), v = Random(T * kv_dim);
        for (int layer = 0; layer < 2; ++layer) {
          QkvArgs a;
          a.eps = 1e-6f, a.layer = layer, a.n_heads = sh.heads, a.n_kv_heads = sh.kv_heads, a.head_dim = hd;
          AttentionArgs at;
          at.layer = layer, at.n_heads = sh.heads, at.n_kv_heads = sh.kv_heads, at.head_dim = hd;
          at.scale = 2.0f / std::sqrt(static_cast<float>(hd));
          at.window = sh.window;
          // Reference.
          std::vector<float> hq = q, hk = k, hv = v, want(T * q_dim);
          a.q = {hq.data(), T, q_dim}, a.k = {hk.data(), T, kv_dim}, a.v = {hv.data(), T, kv_dim};
          a.q_norm = sh.qk_norm ? Tensor{qn.data(), 1, hd} : Tensor{};
          a.k_norm = sh.qk_norm ? Tensor{kn.data(), 1, hd} : Tensor{};
          a.rope = rope_h;
          rb.SetStep(plan);
          rb.PrepareAttention(ref_kv, a);
          at.q = a.q, at.out = {want.data(), T, q_dim};
          rb.Attention(ref_kv, at);
          // GPU.
          const Tensor dq = DevTensor(q, T, q_dim), dout = DevTensor(std::vector<float>(T * q_dim), T, q_dim);
          a.q = dq, a.k = DevTensor(k, T, kv_dim), a.v = DevTensor(v, T, kv_dim);
          a.q_norm = sh.qk_norm ? DevTensor(qn, 1, hd) : Tensor{};
          a.k_norm = sh.qk_norm ? DevTensor(kn, 1, hd) : Tensor{};
          a.rope = rope_d;
          Step(plan);
          be_->PrepareAttention(*dev_kv, a);
          at.q = dq, at.out = dout;
          be_->Attention(*dev_kv, at);
          const auto got = Host(dout), got_q = Host(dq);
          const float tol = bf16 ? 5e-2f : 2e-5f;
          for (int64_t i = 0; i < T * q_dim; ++i) {
            ASSERT_NEAR(got_q[i], hq[i], 2e-5f * (1 + std::fabs(hq[i]))) << "rotated q, step " << s << " i " << i;
            ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << "step " << s << " row " << i / q_dim;
          }
        }
      }
      // Padding rows (item -1) beside real ones: the real rows are unchanged, and so is every stored block (a
      // probe of item 0 at position 0 sees only its own key, in block 0 where a stray write would land first).
      AttentionArgs at;
      at.layer = 0, at.n_heads = sh.heads, at.n_kv_heads = sh.kv_heads, at.head_dim = hd;
      at.scale = 2.0f / std::sqrt(static_cast<float>(hd));
      at.window = sh.window;
      const std::vector<int32_t> probe_item = {0}, probe_pos = {0};
      StepPlan probe;
      probe.tokens = probe_pos, probe.pos = probe_pos, probe.row_item = probe_item;
      probe.block_tables = tables;
      probe.table_stride = stride;
      const Tensor probe_q = DevTensor(Random(q_dim), 1, q_dim);
      auto run_probe = [&] {
        const Tensor out = DevTensor(std::vector<float>(q_dim), 1, q_dim);
        Step(probe);
        at.q = probe_q, at.out = out;
        be_->Attention(*dev_kv, at);
        return Host(out);
      };
      const auto probe_before = run_probe();
      std::vector<int32_t> items = {1, -1, 2, -1}, pos = {250, 0, 3, 0}, tokens = {0, 0, 0, 0};
      StepPlan plan;
      plan.tokens = tokens, plan.pos = pos, plan.row_item = items;
      plan.block_tables = tables;
      plan.table_stride = stride;
      auto q = Random(4 * q_dim), k = Random(4 * kv_dim), v = Random(4 * kv_dim);
      const Tensor dq = DevTensor(q, 4, q_dim), dout = DevTensor(std::vector<float>(4 * q_dim), 4, q_dim);
      QkvArgs a;
      a.q = dq, a.k = DevTensor(k, 4, kv_dim), a.v = DevTensor(v, 4, kv_dim), a.rope = rope_d;
      a.layer = 0, a.n_heads = sh.heads, a.n_kv_heads = sh.kv_heads, a.head_dim = hd;
      if (sh.qk_norm) a.q_norm = DevTensor(qn, 1, hd), a.k_norm = DevTensor(kn, 1, hd);
      Step(plan);
      be_->PrepareAttention(*dev_kv, a);
      at.q = dq, at.out = dout;
      be_->Attention(*dev_kv, at);
      const auto padded = Host(dout);
      EXPECT_EQ(run_probe(), probe_before) << "a padding row wrote into a sequence's block";
      // The same two real rows alone.
      std::vector<int32_t> items2 = {1, 2}, pos2 = {250, 3}, tokens2 = {0, 0};
      StepPlan plan2 = plan;
      plan2.tokens = tokens2, plan2.pos = pos2, plan2.row_item = items2;
      std::vector<float> q2(2 * q_dim), k2(2 * kv_dim), v2(2 * kv_dim);
      std::copy_n(q.begin(), q_dim, q2.begin()), std::copy_n(q.begin() + 2 * q_dim, q_dim, q2.begin() + q_dim);
      std::copy_n(k.begin(), kv_dim, k2.begin()), std::copy_n(k.begin() + 2 * kv_dim, kv_dim, k2.begin() + kv_dim);
      std::copy_n(v.begin(), kv_dim, v2.begin()), std::copy_n(v.begin() + 2 * kv_dim, kv_dim, v2.begin() + kv_dim);
      const Tensor dq2 = DevTensor(q2, 2, q_dim), dout2 = DevTensor(std::vector<float>(2 * q_dim), 2, q_dim);
      a.q = dq2, a.k = DevTensor(k2, 2, kv_dim), a.v = DevTensor(v2, 2, kv_dim);
      Step(plan2);
      be_->PrepareAttention(*dev_kv, a);
      at.q = dq2, at.out = dout2;
      be_->Attention(*dev_kv, at);
      const auto alone = Host(dout2);
      for (int64_t d = 0; d < q_dim; ++d) {
        ASSERT_NEAR(padded[d], alone[d], 1e-5f) << d;
        ASSERT_NEAR(padded[2 * q_dim + d], alone[q_dim + d], 1e-5f) << d;
      }
    }
  }
}

}  // namespace
}  // namespace pensieve::backend
