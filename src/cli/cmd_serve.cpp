// `pensieve serve`: load a model once and serve it over the Anthropic Messages and OpenAI APIs.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <thread>

#include "api/pipeline.h"
#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/model_source.h"
#include "cli/sampling_defaults.h"
#include "cli/stop_tokens.h"
#include "engine/local_engine.h"
#include "model/model.h"
#include "server/api_service.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 7777;
  std::string api_key;
  int ctx = 0;
  std::vector<std::string> aliases;
  std::string name;
  int max_queue = 64;
  int max_running = 16;
  int max_prompt_tokens = 0;
  int prefill_chunk = 0;  // 0: by device (see RegisterServe)
  DeviceFlags device;
  int kv_mib = 0;  // 0: by device (see RegisterServe)
  bool quiet = false;
  std::string log_prompts;
};

// Used when a model ships no chat template (transformers' old default): ChatML.
constexpr const char* kChatMlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

void Serve(const ServeArgs& a) {
  // Signals are taken by one thread with sigwait: block them before any other thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::map<std::string, std::string> aliases;
  for (const auto& spec : a.aliases) {
    size_t eq = spec.find('=');
    Require(eq != std::string::npos && eq > 0, "--alias: expected NAME=MODEL, got '" + spec + "'");
    aliases[spec.substr(0, eq)] = spec.substr(eq + 1);
  }

  auto t0 = std::chrono::steady_clock::now();
  const ModelSource src = ResolveModelSource(a.model);  // no --model: the built-in demo model
  std::unique_ptr<backend::Backend> backend = MakeBackend(a.device);
  const std::string backend_name = backend->Name();
  const bool gpu = !backend->HostMemory();
  // A GPU prefills fastest in large chunks (its matmuls are compute-bound from a few hundred rows on and each
  // chunk expands the quantized weights once); a CPU keeps decode steps short with small ones.
  const int chunk = a.prefill_chunk > 0 ? a.prefill_chunk : gpu ? 2048 : 256;
  model::LoadOptions lo;
  lo.max_batch_tokens = std::max(lo.max_batch_tokens, chunk + a.max_running);
  lo.max_context = a.ctx;
  lo.kv_budget_bytes = a.kv_mib > 0 ? static_cast<int64_t>(a.kv_mib) << 20 : gpu ? 0 : int64_t{1} << 30;
  lo.threads = a.device.threads;
  auto model = LoadModel(src, *backend, lo);
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(src.dir);

  std::optional<std::string> source = chat::FindChatTemplate(src.dir);
  if (!source) std::fprintf(stderr, "pensieve: warning: %s has no chat template; using ChatML\n", src.dir.c_str());
  std::shared_ptr<chat::ChatTemplate> tmpl;
  try {
    tmpl = std::make_shared<chat::ChatTemplate>(source.value_or(kChatMlTemplate));
  } catch (const chat::TemplateError& e) {
    throw Error(chat::ChatTemplateOrigin(src.dir) + ": the chat template does not parse: " + e.what());
  }
  std::vector<std::string> specials;
  for (int32_t id = 0; id < tokenizer->vocab_size(); ++id) {
    if (tokenizer->IsSpecial(id)) specials.push_back(tokenizer->TokenText(id));
  }
  api::PipelineConfig pc;
  pc.parser = chat::DetectParserConfig(tmpl->source(), specials);
  pc.stop_token_ids = StopTokens(src.dir, *tokenizer);
  pc.sampling_defaults = ReadSamplingDefaults(src.dir);
  pc.max_prompt_tokens = a.max_prompt_tokens;

  engine::EngineOptions eo;
  eo.max_queue = a.max_queue;
  eo.max_running = a.max_running;
  eo.prefill_chunk = chunk;
  eo.warm_up = gpu;
  std::unique_ptr<engine::Engine> engine = engine::StartLocalEngine(std::move(model), eo, std::move(backend));

  api::ChatPipeline pipeline(
      *engine, *tokenizer, [tmpl](const chat::RenderInput& in) { return tmpl->Render(in); },
      [](const chat::ParserConfig& c) { return chat::MakeOutputParser(c); }, pc);
  server::ServiceOptions so;
  so.model_id = a.name.empty() ? src.name : a.name;
  so.aliases = aliases;
  so.api_key = a.api_key;
  so.log = a.quiet ? nullptr : stderr;
  std::unique_ptr<FILE, int (*)(FILE*)> prompt_log(nullptr, &std::fclose);
  if (!a.log_prompts.empty()) {
    prompt_log.reset(std::fopen(a.log_prompts.c_str(), "ab"));
    if (!prompt_log) throw Error("--log-prompts: cannot open " + a.log_prompts + " for appending");
    so.prompt_log = prompt_log.get();
  }
  server::ApiService service(pipeline, so);
  server::HttpServer http([&](const server::HttpRequest& q, server::HttpResponder& r) { service.Handle(q, r); },
                          [&](const server::HttpRequest& q, server::HttpResponder& r, int s, const std::string& m) {
                            service.HandleTransportError(q, r, s, m);
                          });
  service.set_server(&http);
  int port = http.Listen(a.host, a.port);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "pensieve: sampling for fields a request leaves out (generation_config.json): %s\n",
               Describe(pc.sampling_defaults).c_str());
  std::fprintf(stderr, "pensieve: serving %s as '%s' on http://%s:%d (%s, context %d tokens, tools %d, reasoning %d, loaded in %.1f s)\n",
               src.embedded ? "the built-in demo model" : src.dir.c_str(), so.model_id.c_str(), a.host.c_str(), port,
               backend_name.c_str(), engine->context_length(), static_cast<int>(pc.parser.tools),
               pc.parser.reasoning ? 1 : 0, load_s);
  std::fflush(stderr);

  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (signalled.exchange(true)) return;
    std::fprintf(stderr, "pensieve: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    service.BeginShutdown();
    http.Stop();
  });
  http.Run();
  http.WaitIdle(10000);
  engine->Shutdown();
  if (!signalled.exchange(true)) pthread_kill(waiter.native_handle(), SIGTERM);  // Run() ended on its own
  waiter.join();
  std::fprintf(stderr, "pensieve: stopped\n");
}

}  // namespace

void RegisterServe(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Serve a model over the Anthropic Messages and OpenAI APIs");
  cmd->add_option("--model", args->model, "Model directory (config.json, *.safetensors, tokenizer.json) or GGUF file; default: the built-in demo model ('demo')");
  cmd->add_option("--host", args->host, "Address to bind (loopback by default)")->capture_default_str();
  cmd->add_option("--port", args->port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", args->api_key, "Require this key (x-api-key or Authorization: Bearer)");
  cmd->add_option("--ctx", args->ctx, "Context length in tokens (0: the model's)")->capture_default_str();
  cmd->add_option("--alias", args->aliases, "NAME=MODEL: also list/serve the model under NAME (repeatable)");
  cmd->add_option("--name", args->name, "Model id in /v1/models (default: the directory name)");
  cmd->add_option("--max-queue", args->max_queue, "Waiting requests before 529 overloaded")->capture_default_str();
  cmd->add_option("--max-running", args->max_running, "Sequences generated at once")->capture_default_str();
  cmd->add_option("--max-prompt-tokens", args->max_prompt_tokens,
                  "Longest prompt accepted, in tokens; longer ones get a 400 (0: the context length)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", args->prefill_chunk,
                  "Prompt tokens per engine step, over all prefilling requests (0: 2048 on a GPU, 256 on the CPU)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  AddDeviceFlags(cmd, &args->device);
  cmd->add_option("--kv-mib", args->kv_mib,
                  "KV cache pool size in MiB (0: on a GPU nine tenths of what is free after the weights, up to 64 "
                  "full contexts; 1024 on the CPU)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No per-request log lines");
  cmd->add_option("--log-prompts", args->log_prompts,
                  "Append each generation request's rendered prompt and token ids to FILE (JSON lines)");
  cmd->callback([args] { Serve(*args); });
}

}  // namespace pensieve::cli
