#include "server/metrics.h"

#include <sstream>

namespace pensieve::server {

void Metrics::CountRequest(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::CountTokens(int prompt, int cached, int generated) {
  prompt_tokens_.fetch_add(static_cast<uint64_t>(prompt));
  cached_tokens_.fetch_add(static_cast<uint64_t>(cached));
  generated_tokens_.fetch_add(static_cast<uint64_t>(generated));
}

std::string Metrics::Render(const engine::EngineStats& s, int active_connections, int in_flight) const {
  std::ostringstream o;
  auto gauge = [&](const char* name, const char* help, double v, const char* type = "gauge") {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << v << "\n";
  };
  o << "# HELP pensieve_requests_total HTTP requests answered, by endpoint and status.\n"
    << "# TYPE pensieve_requests_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : requests_) {
      o << "pensieve_requests_total{endpoint=\"" << key.first << "\",code=\"" << key.second << "\"} " << n << "\n";
    }
  }
  gauge("pensieve_prompt_tokens_total", "Prompt tokens of answered generations.", static_cast<double>(prompt_tokens_.load()), "counter");
  gauge("pensieve_cached_prompt_tokens_total", "Prompt tokens served from the prefix cache.", static_cast<double>(cached_tokens_.load()), "counter");
  gauge("pensieve_generated_tokens_total", "Tokens generated for answered requests.", static_cast<double>(generated_tokens_.load()), "counter");
  gauge("pensieve_client_disconnects_total", "Generations cancelled because the client went away.", static_cast<double>(disconnects_.load()), "counter");
  gauge("pensieve_requests_in_flight", "Generation requests being served.", in_flight);
  gauge("pensieve_http_connections", "Open HTTP connections.", active_connections);
  gauge("pensieve_queue_depth", "Sequences waiting for the engine.", s.queued);
  gauge("pensieve_running_sequences", "Sequences the engine is running.", s.running);
  gauge("pensieve_engine_prompt_tokens_total", "Prompt tokens the engine processed.", static_cast<double>(s.prompt_tokens_total), "counter");
  gauge("pensieve_engine_generated_tokens_total", "Tokens the engine generated.", static_cast<double>(s.generated_tokens_total), "counter");
  gauge("pensieve_prefill_tokens_per_second", "Recent prefill throughput.", s.prefill_tokens_per_s);
  gauge("pensieve_decode_tokens_per_second", "Recent decode throughput.", s.decode_tokens_per_s);
  gauge("pensieve_kv_blocks_used", "KV cache blocks in use.", static_cast<double>(s.kv_blocks_used));
  gauge("pensieve_kv_blocks_total", "KV cache blocks in the pool.", static_cast<double>(s.kv_blocks_total));
  return o.str();
}

}  // namespace pensieve::server
