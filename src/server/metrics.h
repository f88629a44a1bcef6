#pragma once
// Server counters, rendered in the Prometheus text exposition format (version 0.0.4) together with the
// engine's gauges. Thread-safe.
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "engine/engine.h"

namespace pensieve::server {

class Metrics {
 public:
  void CountRequest(const std::string& endpoint, int status);
  void CountTokens(int prompt, int cached, int generated);
  void CountDisconnect() { disconnects_.fetch_add(1); }
  std::string Render(const engine::EngineStats& stats, int active_connections, int in_flight) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<uint64_t> prompt_tokens_{0}, cached_tokens_{0}, generated_tokens_{0}, disconnects_{0};
};

}  // namespace pensieve::server
