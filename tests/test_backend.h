#pragma once
// The backend tests run their models on: the cpu by default; PENSIEVE_TEST_DEVICE=cuda runs the same tests on
// the GPU (how the engine and model tests are run on the GPU machine).
#include <memory>
#include <string>

#include "backend/backend.h"

namespace pensieve::test {

// "cpu" or "cuda" (from PENSIEVE_TEST_DEVICE; default cpu).
std::string TestDevice();
std::unique_ptr<backend::Backend> MakeTestBackend(int cpu_threads);

}  // namespace pensieve::test
