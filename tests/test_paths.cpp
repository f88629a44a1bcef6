#include "test_paths.h"

#include <cstdlib>
#include <filesystem>
#include <string>

namespace pensieve::test {

std::string SharedDir() {
  if (const char* env = std::getenv("PENSIEVE_SHARED_DIR")) return env;
  return PENSIEVE_SHARED_DIR;
}
// Environment overrides let a build run from another directory (the GPU machine gets a copy of the tree).
std::string FixturesDir() {
  if (const char* env = std::getenv("PENSIEVE_FIXTURES_DIR")) return env;
  return PENSIEVE_FIXTURES_DIR;
}
std::string PensieveBinary() {
  if (const char* env = std::getenv("PENSIEVE_BINARY")) return env;
  return PENSIEVE_BINARY;
}
bool HaveShared() { return std::filesystem::is_directory(SharedDir() + "/data"); }
bool RequireShared() {
  const char* ci = std::getenv("CI");
  const char* require = std::getenv("PENSIEVE_REQUIRE_TEST_DATA");
  return (ci && std::string(ci) == "true") || (require && std::string(require) == "1");
}

}  // namespace pensieve::test
