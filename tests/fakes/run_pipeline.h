#pragma once
// Runs one request through a ChatPipeline to its end and returns every event (test helper).
#include <chrono>
#include <vector>

#include "api/pipeline.h"

namespace pensieve::test {

inline std::vector<api::ChatEvent> RunAll(api::ChatPipeline& p, const api::ChatRequest& r, int max_waits = 2000) {
  auto gen = p.Start(r, p.Prepare(r));
  std::vector<api::ChatEvent> events;
  api::ChatEvent e;
  for (int i = 0; i < max_waits && !gen->done(); ++i) {
    while (gen->Next(&e, std::chrono::milliseconds(50))) events.push_back(e);
  }
  return events;
}

}  // namespace pensieve::test
