// `pensieve generate`: run a model on a prompt and print the continuation (greedy at temperature 0).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/model_source.h"
#include "engine/sequences.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  int max_tokens = 64;
  float temperature = 0.0f;
  uint64_t seed = 0;
  bool print_ids = false;
  DeviceFlags device;
};

std::vector<int32_t> ParseIds(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    Require(used > 0 && item.find_first_not_of(" \t", used) == std::string::npos && v >= 0 && v <= INT32_MAX,
            "--prompt-ids: '" + item + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  Require(!ids.empty(), "--prompt-ids: no ids given");
  return ids;
}

// Greedy at temperature 0, else a draw from softmax(logits / temperature). (The engine owns the full chain.)
int32_t Sample(const float* logits, int64_t vocab, float temperature, std::mt19937_64& rng) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  if (temperature <= 0.0f) return static_cast<int32_t>(best);
  std::vector<double> p(vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += (p[i] = std::exp((logits[i] - logits[best]) / temperature));
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng);
  for (int64_t i = 0; i < vocab; ++i)
    if ((r -= p[i]) <= 0) return static_cast<int32_t>(i);
  return static_cast<int32_t>(best);
}

void Run(const GenerateArgs& a) {
  Require(a.prompt.empty() != a.prompt_ids.empty(), "generate: give exactly one of --prompt or --prompt-ids");
  Require(a.max_tokens >= 0, "--max-tokens must be >= 0");
  // The tokenizer is needed for --prompt; with --prompt-ids it is optional (used to print text).
  const ModelSource src = ResolveModelSource(a.model);
  std::unique_ptr<Tokenizer> tokenizer;
  if (!a.prompt.empty()) {
    tokenizer = LoadTokenizer(src.dir);
  } else {
    try {
      tokenizer = LoadTokenizer(src.dir);
    } catch (const Error&) {
    }
  }
  // --prompt: BOS as the tokenizer's configuration says (HF encode); --prompt-ids: exactly as given.
  std::vector<int32_t> prompt = a.prompt.empty() ? ParseIds(a.prompt_ids) : tokenizer->Encode(a.prompt);
  Require(!prompt.empty(), "generate: the prompt encodes to no tokens");

  std::unique_ptr<backend::Backend> backend = MakeBackend(a.device);
  model::LoadOptions opts;
  opts.max_sequences = 1;
  opts.max_context = static_cast<int64_t>(prompt.size()) + a.max_tokens + 1;
  auto model = LoadModel(src, *backend, opts);
  const ModelConfig& c = model->config();
  const int64_t vocab = c.vocab_size;

  engine::Sequences seqs(*model);
  const int seq = seqs.New();
  std::vector<float> logits(vocab);
  std::mt19937_64 rng(a.seed);
  auto t0 = std::chrono::steady_clock::now();
  const engine::Sequences::Item item{seq, prompt};
  seqs.Forward(std::span(&item, 1), logits);
  auto t1 = std::chrono::steady_clock::now();
  std::vector<int32_t> out;
  // Text streams to stdout as it is generated (unless ids were asked for, or there is no tokenizer).
  const bool stream_text = tokenizer && !a.print_ids;
  std::unique_ptr<StreamDecoder> stream;
  if (stream_text) {
    stream = std::make_unique<StreamDecoder>(*tokenizer, /*skip_special=*/true);
    for (int32_t id : prompt) std::fputs(stream->Push(id).c_str(), stdout);
    std::fflush(stdout);
  }
  for (int i = 0; i < a.max_tokens; ++i) {
    int32_t next = Sample(logits.data(), vocab, a.temperature, rng);
    out.push_back(next);
    if (stream_text) {
      std::fputs(stream->Push(next).c_str(), stdout);
      std::fflush(stdout);
    }
    bool eos = false;
    for (int64_t e : c.eos_token_ids) eos |= e == next;
    if (eos || i + 1 == a.max_tokens) break;
    const engine::Sequences::Item step{seq, std::span<const int32_t>(&out.back(), 1)};
    seqs.Forward(std::span(&step, 1), logits);
  }
  auto t2 = std::chrono::steady_clock::now();

  std::string line;
  for (size_t i = 0; i < out.size(); ++i) line += (i ? " " : "") + std::to_string(out[i]);
  if (a.print_ids) {
    std::printf("%s\n", line.c_str());
  } else if (stream_text) {
    std::printf("%s\n", stream->Flush().c_str());
  } else {
    std::printf("generated ids (no tokenizer in this build): %s\n", line.c_str());
  }
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "%s | prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s\n",
               backend->Name().c_str(), prompt.size(), prompt.size() / prefill_s, out.size(),
               out.size() > 1 ? (out.size() - 1) / decode_s : 0.0);
}

}  // namespace

void RegisterGenerate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt");
  cmd->add_option("--model", args->model, "Model directory (config.json + safetensors), a GGUF file, or 'demo' for the built-in demo model")->required();
  cmd->add_option("--prompt", args->prompt, "Prompt text (encoded with the model's tokenizer; BOS as it configures)");
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt token ids, comma-separated, used as given (no BOS added)");
  cmd->add_option("--max-tokens", args->max_tokens, "Most tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", args->temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed for sampling")->capture_default_str();
  cmd->add_flag("--print-ids", args->print_ids, "Print the generated ids on one line, space-separated");
  AddDeviceFlags(cmd, &args->device);
  cmd->callback([args] { Run(*args); });
}

}  // namespace pensieve::cli
