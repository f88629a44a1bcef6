#include "test_backend.h"

#include <cstdlib>

#include "backend/device.h"

namespace pensieve::test {

std::string TestDevice() {
  const char* env = std::getenv("PENSIEVE_TEST_DEVICE");
  return env && *env ? env : "cpu";
}

std::unique_ptr<backend::Backend> MakeTestBackend(int cpu_threads) {
  backend::DeviceOptions o;
  o.device = TestDevice();
  o.threads = cpu_threads;
  return backend::MakeBackend(o);
}

}  // namespace pensieve::test
