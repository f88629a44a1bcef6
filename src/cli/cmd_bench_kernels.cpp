// `pensieve bench-kernels`: each op of a decode step alone, at a real model's shapes, on random weights made in
// memory (no files): time per call and achieved bandwidth (bytes of weights, activations and KV the op reads and
// writes, per second), against the device copy bandwidth. Then a whole decode step's ops for every layer, run
// as the model runs them (recorded once and replayed where the backend does), to show what the gaps between
// ops cost. What `bench/RESULTS_cuda.md` quotes per kernel.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "cli/commands.h"
#include "cli/device_flags.h"
#include "formats/dtype.h"
#include "formats/model_config.h"
#include "formats/random_model.h"
#include "util/error.h"
#include "util/parallel.h"

namespace pensieve::cli {
namespace {

struct KernelArgs {
  std::string shape = "llama-3-8b";
  std::string dtype = "mlx4";
  int iters = 200;
  DeviceFlags device;
};

// Random device weights of one matrix: N(0, 0.02) floats, or MLX codes with small scales and biases.
class Weights {
 public:
  Weights(backend::Backend& be, const std::string& dtype) : be_(be), dtype_(dtype) {}

  backend::MatRef Matrix(int64_t rows, int64_t cols) {
    backend::MatRef m;
    m.rows = rows, m.cols = cols;
    if (dtype_ == "mlx4" || dtype_ == "mlx8") {
      m.kind = backend::MatRef::Kind::kAffine;
      m.type = backend::FloatType::kBF16;
      m.bits = dtype_ == "mlx4" ? 4 : 8;
      m.group_size = 64;
      m.data = Bytes(rows * cols * m.bits / 8);
      const int64_t groups = rows * cols / 64;
      m.scales = Halves(groups, 0.002f);
      m.biases = Halves(groups, 0.01f);
      if (auto moved = be_.Relayout(m)) kept_.push_back(std::move(moved));  // as a model's weights are at load
    } else {
      m.type = dtype_ == "f32" ? backend::FloatType::kF32 : backend::FloatType::kBF16;
      m.data = m.type == backend::FloatType::kF32 ? static_cast<const void*>(Floats(rows * cols, 0.02f).data)
                                                   : Halves(rows * cols, 0.02f);
    }
    return m;
  }
  backend::Tensor Floats(int64_t n, float scale) {
    std::vector<float> h(n);
    Fill(h.data(), n, scale);
    auto& b = Keep(n * 4);
    be_.Upload(b.data(), h.data(), n * 4);
    return {static_cast<float*>(b.data()), 1, n};
  }

 private:
  const void* Bytes(int64_t n) {  // uniform random bytes (quantization codes)
    std::vector<uint8_t> h(n);
    ParallelRanges(n, 1 << 20, [&](int64_t b, int64_t e) {
      uint64_t s = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(b + 1);
      for (int64_t i = b; i < e; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = static_cast<uint8_t>(s >> 56);
      }
    });
    auto& buf = Keep(n);
    be_.Upload(buf.data(), h.data(), n);
    return buf.data();
  }
  const void* Halves(int64_t n, float scale) {
    std::vector<uint16_t> h(n);
    ParallelRanges(n, 1 << 20, [&](int64_t b, int64_t e) {
      std::mt19937 rng(static_cast<uint32_t>(b + 7));
      std::normal_distribution<float> d(0.0f, scale);
      for (int64_t i = b; i < e; ++i) h[i] = F32ToBF16(d(rng));
    });
    auto& buf = Keep(n * 2);
    be_.Upload(buf.data(), h.data(), n * 2);
    return buf.data();
  }
  void Fill(float* p, int64_t n, float scale) {
    ParallelRanges(n, 1 << 20, [&](int64_t b, int64_t e) {
      std::mt19937 rng(static_cast<uint32_t>(b + 11));
      std::normal_distribution<float> d(0.0f, scale);
      for (int64_t i = b; i < e; ++i) p[i] = d(rng);
    });
  }
  backend::Buffer& Keep(int64_t bytes) {
    kept_.push_back(be_.Allocate(bytes, "bench weights"));
    return *kept_.back();
  }
  backend::Backend& be_;
  std::string dtype_;
  std::vector<std::unique_ptr<backend::Buffer>> kept_;
};

void Run(const KernelArgs& a) {
  RandomModelOptions ro;
  ro.shape = a.shape;
  const ModelConfig c = ParseModelConfigJson(RandomModelConfigJson(ro), a.shape);
  Require(a.dtype == "mlx4" || a.dtype == "mlx8" || a.dtype == "bf16" || a.dtype == "f32",
          "bench-kernels: --dtype is mlx4, mlx8, bf16 or f32");
  auto be = MakeBackend(a.device);
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
  const int nh = static_cast<int>(c.num_attention_heads), nkv = static_cast<int>(c.num_key_value_heads);
  const int hd = static_cast<int>(c.head_dim);
  // A host backend keeps f32 KV in RAM: 32 rows x 16k positions would not fit it (32 GB for a 1B shape).
  const bool host = be->HostMemory();
  const int64_t max_ctx = host ? 2048 : 16384, bt = 16, max_t = host ? 8 : 32;
  backend::ScratchSpec spec;
  spec.max_rows = max_t, spec.max_cols = std::max({H, I, Q}), spec.max_context = max_ctx;
  spec.max_items = max_t, spec.max_samples = max_t, spec.vocab = V, spec.max_table_width = max_ctx / bt;
  spec.head_dim = hd, spec.gqa_group = nh / nkv, spec.n_heads = nh;
  be->Reserve(spec);

  Weights w(*be, a.dtype);
  const backend::MatRef wq = w.Matrix(Q, H), wk = w.Matrix(KV, H), wv = w.Matrix(KV, H), wo = w.Matrix(H, Q);
  const backend::MatRef wg = w.Matrix(I, H), wu = w.Matrix(I, H), wd = w.Matrix(H, I), head = w.Matrix(V, H);
  const backend::Tensor norm = w.Floats(H, 0.1f), inv_freq = w.Floats(hd / 2, 0.1f);
  const backend::Tensor x = w.Floats(max_t * H, 1.0f), xb = w.Floats(max_t * H, 1.0f);
  const backend::Tensor q = w.Floats(max_t * Q, 1.0f), k = w.Floats(max_t * KV, 1.0f), v = w.Floats(max_t * KV, 1.0f);
  const backend::Tensor att = w.Floats(max_t * Q, 1.0f), h = w.Floats(max_t * I, 1.0f);
  const backend::Tensor logits = w.Floats(max_t * V, 1.0f);
  backend::KvLayout kvl{static_cast<int>(c.num_hidden_layers), nkv, hd, static_cast<int>(bt), max_t * max_ctx / bt};
  auto kv = be->CreateKvStorage(kvl, a.dtype == "f32" ? backend::FloatType::kF32 : backend::FloatType::kBF16);
  const double kv_elem = kv->type() == backend::FloatType::kF32 ? 4 : 2;
  const double copy_bw = backend::MeasureBandwidth(*be, be->threads());

  // A step of T decode rows, each its own sequence at position ctx - 1, sampling greedily.
  std::vector<int32_t> tokens, pos, items, tables, logit_rows;
  std::vector<backend::SampleRow> samples;
  auto set_step = [&](int64_t T, int64_t ctx) {
    const int64_t width = (ctx + bt - 1) / bt;
    tokens.assign(T, 1), pos.assign(T, static_cast<int32_t>(ctx - 1)), items.resize(T), logit_rows.resize(T);
    tables.resize(T * width);
    samples.assign(T, {});
    for (int64_t t = 0; t < T; ++t) {
      items[t] = static_cast<int32_t>(t), logit_rows[t] = static_cast<int32_t>(t);
      for (int64_t b = 0; b < width; ++b) tables[t * width + b] = static_cast<int32_t>(t * (max_ctx / bt) + b);
      samples[t].logits_row = t;
      samples[t].params.temperature = 0.0f;
    }
    backend::StepPlan p;
    p.tokens = tokens, p.pos = pos, p.row_item = items, p.block_tables = tables, p.table_stride = width;
    p.logit_rows = logit_rows, p.samples = samples;
    be->SetStep(p);
  };
  float sink;
  auto time = [&](int iters, const std::function<void()>& f) {
    for (int i = 0; i < 3; ++i) f();
    be->Download(&sink, x.data, 4);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) f();
    be->Download(&sink, x.data, 4);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
  };
  std::printf("%s %s on %s; device copy bandwidth %.0f GB/s (read + write)\n", a.shape.c_str(), a.dtype.c_str(),
              be->Name().c_str(), copy_bw / 1e9);
  std::printf("%-28s %6s %10s %10s %8s\n", "op", "rows", "us/call", "GB/s", "of copy");
  auto row = [&](const std::string& name, int64_t T, double s, double bytes) {
    std::printf("%-28s %6lld %10.1f %10.0f %7.0f%%\n", name.c_str(), (long long)T, s * 1e6, bytes / s / 1e9,
                100 * bytes / s / copy_bw);
  };
  const auto sl = [](const backend::Tensor& t, int64_t rows, int64_t cols) { return backend::Tensor{t.data, rows, cols}; };
  for (int64_t T : host ? std::vector<int64_t>{1, 8} : std::vector<int64_t>{1, 8, max_t}) {
    set_step(T, 512);
    const backend::MatMulOut qkv[3] = {{wq, {}, sl(q, T, Q)}, {wk, {}, sl(k, T, KV)}, {wv, {}, sl(v, T, KV)}};
    const double act = 4.0 * T;  // bytes per activation element read or written
    row("qkv projection", T, time(a.iters, [&] { be->MatMulMulti(sl(xb, T, H), qkv); }),
        wq.TotalBytes() + wk.TotalBytes() + wv.TotalBytes() + act * (H + Q + 2 * KV));
    row("output projection +resid", T, time(a.iters, [&] { be->MatMul(sl(att, T, Q), wo, {}, sl(x, T, H), true); }),
        wo.TotalBytes() + act * (Q + 2 * H));
    row("gate/up + silu", T,
        time(a.iters, [&] { be->MatMulGlu(sl(xb, T, H), wg, {}, wu, {}, backend::GluActivation::kSilu, sl(h, T, I)); }),
        wg.TotalBytes() + wu.TotalBytes() + act * (H + I));
    row("down projection +resid", T, time(a.iters, [&] { be->MatMul(sl(h, T, I), wd, {}, sl(x, T, H), true); }),
        wd.TotalBytes() + act * (I + 2 * H));
    row("lm_head", T, time(a.iters / 4 + 1, [&] { be->MatMul(sl(xb, T, H), head, {}, sl(logits, T, V), false); }),
        head.TotalBytes() + act * (H + V));
    row("rmsnorm", T, time(a.iters, [&] { be->RmsNorm(sl(x, T, H), norm, 1e-5f, sl(xb, T, H)); }), act * 2 * H + 4 * H);
    row("sample (greedy)", T, time(a.iters, [&] { be->Sample(sl(logits, T, V)); }), act * V);
    for (int64_t ctx : host ? std::vector<int64_t>{512, max_ctx} : std::vector<int64_t>{512, 4096, max_ctx}) {
      set_step(T, ctx);
      backend::QkvArgs p;
      p.q = sl(q, T, Q), p.k = sl(k, T, KV), p.v = sl(v, T, KV), p.layer = 0, p.n_heads = nh, p.n_kv_heads = nkv;
      p.head_dim = hd, p.rope.rotary_dim = hd, p.rope.inv_freq = inv_freq;
      backend::AttentionArgs at;
      at.q = sl(q, T, Q), at.out = sl(att, T, Q), at.layer = 0, at.n_heads = nh, at.n_kv_heads = nkv, at.head_dim = hd;
      at.scale = 0.1f;
      row("qk rope + kv store", T, time(a.iters, [&] { be->PrepareAttention(*kv, p); }), act * (2 * Q + 2 * KV));
      row("attention ctx " + std::to_string(ctx), T, time(a.iters, [&] { be->Attention(*kv, at); }),
          T * (ctx * 2.0 * KV * kv_elem + act / T * 2 * Q));
    }
  }
  // The decode step's ops for every layer, as the model issues them (one recording, replayed).
  for (int64_t T : {int64_t{1}, int64_t{8}}) {
    set_step(T, 512);
    const int layers = static_cast<int>(c.num_hidden_layers);
    backend::QkvArgs p;
    p.q = sl(q, T, Q), p.k = sl(k, T, KV), p.v = sl(v, T, KV), p.n_heads = nh, p.n_kv_heads = nkv, p.head_dim = hd;
    p.rope.rotary_dim = hd, p.rope.inv_freq = inv_freq;
    backend::AttentionArgs at;
    at.q = sl(q, T, Q), at.out = sl(att, T, Q), at.n_heads = nh, at.n_kv_heads = nkv, at.head_dim = hd, at.scale = 0.1f;
    const backend::MatMulOut qkv[3] = {{wq, {}, sl(q, T, Q)}, {wk, {}, sl(k, T, KV)}, {wv, {}, sl(v, T, KV)}};
    auto step = [&] {
      for (int l = 0; l < layers; ++l) {
        p.layer = at.layer = l;
        be->RmsNormFor(sl(x, T, H), norm, 1e-5f, sl(xb, T, H), wq);
        be->MatMulMulti(sl(xb, T, H), qkv);
        be->PrepareAttention(*kv, p);
        be->Attention(*kv, at);
        be->MatMul(sl(att, T, Q), wo, {}, sl(x, T, H), true);
        be->RmsNormFor(sl(x, T, H), norm, 1e-5f, sl(xb, T, H), wg);
        be->MatMulGlu(sl(xb, T, H), wg, {}, wu, {}, backend::GluActivation::kSilu, sl(h, T, I));
        be->MatMul(sl(h, T, I), wd, {}, sl(x, T, H), true);
      }
      be->RmsNormFor(sl(x, T, H), norm, 1e-5f, sl(xb, T, H), head);
      be->MatMul(sl(xb, T, H), head, {}, sl(logits, T, V), false);
      be->Sample(sl(logits, T, V));
    };
    const double bytes = layers * (wq.TotalBytes() + wk.TotalBytes() + wv.TotalBytes() + wo.TotalBytes() +
                                   wg.TotalBytes() + wu.TotalBytes() + wd.TotalBytes()) +
                         head.TotalBytes() + layers * T * 512.0 * 2 * KV * kv_elem;
    const double s = time(20, [&] { be->RunStep(static_cast<uint64_t>(1000 + T), step); });
    row("whole decode step (" + std::to_string(layers) + " layers)", T, s, bytes);
    std::printf("%-28s %6lld %10.1f tok/s\n", "", (long long)T, T / s);
  }
}

}  // namespace

void RegisterBenchKernels(CLI::App& app) {
  auto args = std::make_shared<KernelArgs>();
  auto* cmd = app.add_subcommand("bench-kernels", "Time each decode op alone at a model's shapes (random weights)");
  cmd->add_option("--shape", args->shape, "llama-3-8b, phi-4, llama-3.2-1b, ...")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "mlx4, mlx8, bf16 or f32")->capture_default_str();
  cmd->add_option("--iters", args->iters, "Calls timed per op")->capture_default_str();
  AddDeviceFlags(cmd, &args->device);
  cmd->callback([args] { Run(*args); });
}

}  // namespace pensieve::cli
