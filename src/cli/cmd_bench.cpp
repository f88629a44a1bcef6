// `pensieve bench`: prefill and decode speed of a model, as ratios to the machine's limits
// (docs/performance.md): decode tok/s x bytes read per token vs the measured read bandwidth.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/cpu/bandwidth.h"
#include "backend/cpu/cpu_backend.h"
#include "cli/commands.h"
#include "model/model.h"
#include "util/error.h"

namespace pensieve::cli {
namespace {

struct BenchArgs {
  std::string model;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  int threads = 0;
  bool json = false;
  double bandwidth = 0;
};

// Process CPU time (all threads). On a shared machine wall time includes waiting for a core; CPU time per
// thread shows what the run would take with its cores to itself.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int64_t PeakRssBytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

void Run(const BenchArgs& a) {
  Require(a.prompt_tokens >= 1 && a.gen_tokens >= 1, "bench: -p and -n must be >= 1");
  backend::cpu::CpuBackend backend(a.threads);
  model::LoadOptions opts;
  opts.max_sequences = 1;
  opts.max_batch_tokens = a.prompt_tokens;
  opts.max_context = a.prompt_tokens + a.gen_tokens + 1;
  auto t_load = std::chrono::steady_clock::now();
  auto model = model::Model::Load(a.model, backend, opts);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const ModelConfig& c = model->config();
  const int64_t vocab = c.vocab_size;

  // Random prompt (seeded): speed does not depend on which ids.
  std::mt19937 rng(42);
  std::vector<int32_t> prompt(a.prompt_tokens);
  for (auto& id : prompt) id = static_cast<int32_t>(rng() % vocab);
  std::vector<float> logits(vocab);

  int seq = model->NewSequence();
  model::ForwardItem item{seq, prompt, false};
  const double c0 = CpuSeconds();
  auto t0 = std::chrono::steady_clock::now();
  model->Forward(std::span(&item, 1), logits);
  const double prefill_cpu = CpuSeconds() - c0;
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int32_t next = 0;
  const double c1 = CpuSeconds();
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.gen_tokens; ++i) {
    next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    model::ForwardItem step{seq, std::span<const int32_t>(&next, 1), false};
    model->Forward(std::span(&step, 1), logits);
  }
  const double decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  const double decode_cpu = CpuSeconds() - c1;
  const int64_t peak_rss = PeakRssBytes();

  // Bytes one decode step reads: every matrix once, one embedding row, and the KV cache so far (f32 K and V
  // of every layer, at the average context of the run).
  const int64_t avg_ctx = a.prompt_tokens + a.gen_tokens / 2;
  const int64_t kv_bytes = avg_ctx * c.num_hidden_layers * 2 * c.kv_dim() * 4;
  const int64_t bytes_per_token = model->weights().matrix_bytes + model->weights().embed.RowBytes() + kv_bytes;
  const double decode_tps = a.gen_tokens / decode_s;
  const double achieved = decode_tps * bytes_per_token / 1e9;
  const double bandwidth = a.bandwidth > 0 ? a.bandwidth : backend::cpu::MeasureReadBandwidth(backend.threads());

  nlohmann::json j = {{"model", a.model},
                      {"backend", backend.Name()},
                      {"threads", backend.threads()},
                      {"load_s", load_s},
                      {"prefill_tokens", a.prompt_tokens},
                      {"prefill_tok_s", a.prompt_tokens / prefill_s},
                      {"decode_tokens", a.gen_tokens},
                      {"decode_tok_s", decode_tps},
                      {"prefill_cpu_s", prefill_cpu},
                      {"prefill_wall_s", prefill_s},
                      {"decode_cpu_s", decode_cpu},
                      {"decode_wall_s", decode_s},
                      {"peak_rss_bytes", peak_rss},
                      {"bytes_per_token", bytes_per_token},
                      {"achieved_gb_s", achieved},
                      {"bandwidth_gb_s", bandwidth},
                      {"bandwidth_measured", a.bandwidth <= 0},
                      {"bandwidth_share", achieved / bandwidth}};
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model       %s\nbackend     %s\n", a.model.c_str(), backend.Name().c_str());
  std::printf("prefill     %d tokens: %.1f tok/s\n", a.prompt_tokens, a.prompt_tokens / prefill_s);
  std::printf("decode      %d tokens: %.2f tok/s\n", a.gen_tokens, decode_tps);
  std::printf("read/token  %.1f MB -> %.2f GB/s, %.0f%% of %.1f GB/s read bandwidth (%s)\n", bytes_per_token / 1e6,
              achieved, 100 * achieved / bandwidth, bandwidth, a.bandwidth > 0 ? "given" : "measured");
  std::printf("cpu share   prefill %.0f%%, decode %.0f%% of %d threads x wall time (below 100%%: the machine is shared)\n",
              100 * prefill_cpu / (prefill_s * backend.threads()), 100 * decode_cpu / (decode_s * backend.threads()),
              backend.threads());
  std::printf("peak RSS    %.1f MB\n", peak_rss / 1e6);
}

}  // namespace

void RegisterBench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Measure prefill and decode speed against the memory-bandwidth limit");
  cmd->add_option("--model", args->model, "Model directory")->required();
  cmd->add_option("-p", args->prompt_tokens, "Prompt tokens")->capture_default_str();
  cmd->add_option("-n", args->gen_tokens, "Generated tokens")->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads (0: all)")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->add_option("--bandwidth", args->bandwidth, "Read bandwidth in GB/s (default: measure, 1 GiB stream)");
  cmd->callback([args] { Run(*args); });
}

}  // namespace pensieve::cli
