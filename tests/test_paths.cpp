#include "test_paths.h"

#include <cstdlib>
#include <filesystem>

namespace pensieve::test {

std::string SharedDir() {
  if (const char* env = std::getenv("PENSIEVE_SHARED_DIR")) return env;
  return PENSIEVE_SHARED_DIR;
}
std::string FixturesDir() { return PENSIEVE_FIXTURES_DIR; }
std::string PensieveBinary() { return PENSIEVE_BINARY; }
bool HaveShared() { return std::filesystem::is_directory(SharedDir() + "/data"); }

}  // namespace pensieve::test
