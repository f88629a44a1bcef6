// `pensieve bench`: prefill and decode speed of a model, as ratios to the machine's limits
// (docs/performance.md): decode tok/s x bytes read per token vs the measured bandwidth (host read bandwidth on
// the cpu, device-to-device copy bandwidth on a GPU).
//
// Steps run as the engine runs them: each one samples its token (greedy) in the same step, so on a GPU only
// the token comes back and decode steps replay their recorded graph. One untimed prefill of a chunk and one
// untimed decode step come first (library start-up, first use of each kernel and matrix shape, graph recording).
//
// --parallel B1,B2,...: throughput with B sequences at once instead (llama-batched-bench's table): B prompts of
// -p tokens prefilled in one call (chunks of up to 4096 rows), then -n decode steps of B rows.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "cli/commands.h"
#include "cli/device_flags.h"
#include "engine/sequences.h"
#include "formats/checkpoint.h"
#include "model/model.h"
#include "util/error.h"

namespace pensieve::cli {
namespace {

struct BenchArgs {
  std::string model;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  DeviceFlags device;
  bool json = false;
  double bandwidth = 0;
  std::vector<int> parallel;  // batch sizes of the throughput mode (empty: the single-sequence run)
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

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// KV pool bytes for `sequences` sequences of o.max_context tokens at f32 (a backend storing bf16 uses half).
int64_t KvBudget(const ModelConfig& c, int64_t sequences, const model::LoadOptions& o) {
  return sequences * (o.max_context + 2 * o.kv_block_tokens) * c.num_hidden_layers * 2 * c.kv_dim() *
         int64_t{sizeof(float)};
}

// The throughput mode: a row per batch size, as llama-batched-bench prints them.
void RunParallel(const BenchArgs& a) {
  int most = 1;
  for (int b : a.parallel) {
    Require(b >= 1 && b <= 4096, "bench: --parallel sizes must be in [1, 4096]");
    most = std::max(most, b);
  }
  std::unique_ptr<backend::Backend> backend = MakeBackend(a.device);
  const ModelConfig config = ReadCheckpointConfig(a.model);
  model::LoadOptions opts;
  opts.max_sequences = most;
  opts.max_batch_tokens = std::max(most, std::min(most * a.prompt_tokens, 4096));
  opts.max_context = a.prompt_tokens + a.gen_tokens + 2;
  opts.kv_budget_bytes = KvBudget(config, most, opts);
  auto model = model::Model::Load(a.model, *backend, opts);
  engine::Sequences seqs(*model);
  std::mt19937 rng(42);
  nlohmann::json rows = nlohmann::json::array();
  if (!a.json)
    std::printf("|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |\n"
                "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|\n");
  bool warm = false;
  for (int B : a.parallel) {
    std::vector<std::vector<int32_t>> prompts(B, std::vector<int32_t>(a.prompt_tokens));
    for (auto& p : prompts)
      for (auto& id : p) id = static_cast<int32_t>(rng() % config.vocab_size);
    std::vector<int> ids(B);
    std::vector<int32_t> next(B);
    std::vector<std::span<const int32_t>> spans(B);
    const auto run = [&](int gen) {
      for (int i = 0; i < B; ++i) ids[i] = seqs.New(), spans[i] = prompts[i];
      const auto t0 = std::chrono::steady_clock::now();
      seqs.GreedyStep(ids, spans, next);
      const double pp = Since(t0);
      for (int i = 0; i < B; ++i) spans[i] = std::span<const int32_t>(&next[i], 1);
      const auto t1 = std::chrono::steady_clock::now();
      for (int g = 0; g < gen; ++g) seqs.GreedyStep(ids, spans, next);
      const double tg = Since(t1);
      for (int id : ids) seqs.Free(id);
      return std::pair(pp, tg);
    };
    if (!warm) run(2), warm = true;  // libraries and kernels
    run(1);                          // this batch size's recorded decode step
    const auto [pp, tg] = run(a.gen_tokens);
    const double pp_tok = static_cast<double>(B) * a.prompt_tokens, tg_tok = static_cast<double>(B) * a.gen_tokens;
    const int64_t n_kv = int64_t{B} * (a.prompt_tokens + a.gen_tokens);
    rows.push_back({{"pp", a.prompt_tokens}, {"tg", a.gen_tokens}, {"b", B}, {"n_kv", n_kv}, {"t_pp_s", pp},
                    {"s_pp_tok_s", pp_tok / pp}, {"t_tg_s", tg}, {"s_tg_tok_s", tg_tok / tg}, {"t_s", pp + tg},
                    {"s_tok_s", (pp_tok + tg_tok) / (pp + tg)}});
    if (!a.json)
      std::printf("| %5d | %6d | %4d | %6lld | %8.3f | %8.2f | %8.3f | %8.2f | %8.3f | %8.2f |\n", a.prompt_tokens,
                  a.gen_tokens, B, static_cast<long long>(n_kv), pp, pp_tok / pp, tg, tg_tok / tg, pp + tg,
                  (pp_tok + tg_tok) / (pp + tg));
  }
  if (a.json)
    std::printf("%s\n", nlohmann::json{{"model", a.model}, {"backend", backend->Name()}, {"parallel", rows}}.dump(2).c_str());
}

void Run(const BenchArgs& a) {
  Require(a.prompt_tokens >= 1 && a.gen_tokens >= 1, "bench: -p and -n must be >= 1");
  if (!a.parallel.empty()) return RunParallel(a);
  std::unique_ptr<backend::Backend> backend = MakeBackend(a.device);
  const ModelConfig config = ReadCheckpointConfig(a.model);
  model::LoadOptions opts;
  opts.max_sequences = 2;
  opts.max_batch_tokens = std::min(a.prompt_tokens, 4096);
  opts.max_context = a.prompt_tokens + a.gen_tokens + 2;
  // Room for the warm-up and the measured sequence at f32 (a backend storing bf16 uses half of it).
  opts.kv_budget_bytes = KvBudget(config, 2, opts);
  auto t_load = std::chrono::steady_clock::now();
  auto model = model::Model::Load(a.model, *backend, opts);
  const double load_s = Since(t_load);
  const ModelConfig& c = model->config();
  const int64_t vocab = c.vocab_size;
  engine::Sequences seqs(*model);

  // Random prompt (seeded): speed does not depend on which ids.
  std::mt19937 rng(42);
  std::vector<int32_t> prompt(a.prompt_tokens);
  for (auto& id : prompt) id = static_cast<int32_t>(rng() % vocab);

  {  // warm-up: libraries, kernels (a prefill chunk of the measured size: its matrix shapes), the first recording
    const int warm = seqs.New();
    int32_t t = seqs.GreedyStep(warm, std::span<const int32_t>(prompt).first(std::min(a.prompt_tokens, opts.max_batch_tokens)));
    seqs.GreedyStep(warm, std::span<const int32_t>(&t, 1));
    seqs.Free(warm);
  }

  const int seq = seqs.New();
  const double c0 = CpuSeconds();
  auto t0 = std::chrono::steady_clock::now();
  int32_t next = seqs.GreedyStep(seq, prompt);
  const double prefill_s = Since(t0);
  const double prefill_cpu = CpuSeconds() - c0;

  next = seqs.GreedyStep(seq, std::span<const int32_t>(&next, 1));  // records the decode step where a backend does
  const double c1 = CpuSeconds();
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.gen_tokens; ++i) next = seqs.GreedyStep(seq, std::span<const int32_t>(&next, 1));
  const double decode_s = Since(t1);
  const double decode_cpu = CpuSeconds() - c1;
  const int64_t peak_rss = PeakRssBytes();

  // Bytes one decode step reads: every matrix once, one embedding row, and the KV cache so far (K and V of
  // every layer at the run's average context, in the storage's element type).
  const int64_t avg_ctx = a.prompt_tokens + 1 + a.gen_tokens / 2;
  const int64_t kv_elem = model->kv_pool_bytes() / std::max<int64_t>(1, model->kv_blocks()) /
                          (int64_t{c.num_hidden_layers} * 2 * model->kv_block_tokens() * c.kv_dim());
  const int64_t kv_bytes = avg_ctx * c.num_hidden_layers * 2 * c.kv_dim() * kv_elem;
  const int64_t bytes_per_token = model->weights().matrix_bytes + model->weights().embed.RowBytes() + kv_bytes;
  const double decode_tps = a.gen_tokens / decode_s;
  const double achieved = decode_tps * bytes_per_token / 1e9;
  const double bandwidth = a.bandwidth > 0 ? a.bandwidth : backend::MeasureBandwidth(*backend, backend->threads()) / 1e9;
  const bool gpu = !backend->HostMemory();
  const model::MemoryUse& mem = model->memory();

  nlohmann::json j = {{"model", a.model},
                      {"backend", backend->Name()},
                      {"threads", backend->threads()},
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
                      {"device_weight_bytes", mem.weights},
                      {"device_kv_bytes", mem.kv_pool},
                      {"device_activation_bytes", mem.activations},
                      {"device_workspace_bytes", mem.workspace},
                      {"bytes_per_token", bytes_per_token},
                      {"achieved_gb_s", achieved},
                      {"bandwidth_gb_s", bandwidth},
                      {"bandwidth_kind", gpu ? "device copy (read + write)" : "host read"},
                      {"bandwidth_measured", a.bandwidth <= 0},
                      {"bandwidth_share", achieved / bandwidth}};
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model       %s\nbackend     %s\n", a.model.c_str(), backend->Name().c_str());
  std::printf("prefill     %d tokens: %.1f tok/s\n", a.prompt_tokens, a.prompt_tokens / prefill_s);
  std::printf("decode      %d tokens: %.2f tok/s\n", a.gen_tokens, decode_tps);
  std::printf("read/token  %.1f MB -> %.2f GB/s, %.0f%% of %.1f GB/s %s bandwidth (%s)\n", bytes_per_token / 1e6,
              achieved, 100 * achieved / bandwidth, bandwidth, gpu ? "device copy" : "host read",
              a.bandwidth > 0 ? "given" : "measured");
  if (gpu) {
    std::printf("gpu memory  %.2f GiB: weights %.2f, KV pool %.2f, activations %.2f, workspace %.2f\n",
                mem.total() / 1073741824.0, mem.weights / 1073741824.0, mem.kv_pool / 1073741824.0,
                mem.activations / 1073741824.0, mem.workspace / 1073741824.0);
  } else {
    std::printf("cpu share   prefill %.0f%%, decode %.0f%% of %d threads x wall time (below 100%%: the machine is shared)\n",
                100 * prefill_cpu / (prefill_s * backend->threads()), 100 * decode_cpu / (decode_s * backend->threads()),
                backend->threads());
  }
  std::printf("peak RSS    %.1f MB\n", peak_rss / 1e6);
}

}  // namespace

void RegisterBench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Measure prefill and decode speed against the memory-bandwidth limit");
  cmd->add_option("--model", args->model, "Model directory or GGUF file")->required();
  cmd->add_option("-p", args->prompt_tokens, "Prompt tokens")->capture_default_str();
  cmd->add_option("-n", args->gen_tokens, "Generated tokens")->capture_default_str();
  AddDeviceFlags(cmd, &args->device);
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->add_option("--bandwidth", args->bandwidth, "Bandwidth in GB/s to compare against (default: measure)");
  cmd->add_option("--parallel", args->parallel, "Throughput with this many sequences at once (a list: 1,8,64)")
      ->delimiter(',');
  cmd->callback([args] { Run(*args); });
}

}  // namespace pensieve::cli
