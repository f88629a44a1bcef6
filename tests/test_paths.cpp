#include "test_paths.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace pensieve::test {

std::string TestDataDir() {
  if (const char* env = std::getenv("PENSIEVE_TEST_DATA"); env && *env) return env;
  return PENSIEVE_TEST_DATA;
}
std::string TestData(const std::string& relative) { return TestDataDir() + "/" + relative; }
// Environment overrides let a build run from another directory (the GPU machine gets a copy of the tree).
std::string FixturesDir() {
  if (const char* env = std::getenv("PENSIEVE_FIXTURES_DIR")) return env;
  return PENSIEVE_FIXTURES_DIR;
}
std::string PensieveBinary() {
  if (const char* env = std::getenv("PENSIEVE_BINARY")) return env;
  return PENSIEVE_BINARY;
}

std::string MissingTestData(std::initializer_list<const char*> relatives) {
  std::string missing;
  for (const char* rel : relatives) {
    std::error_code ec;
    if (std::filesystem::exists(TestData(rel), ec)) continue;
    missing += (missing.empty() ? "" : ", ") + std::string(rel);
  }
  return missing;
}

bool RequireTestData() {
  const char* ci = std::getenv("CI");
  const char* require = std::getenv("PENSIEVE_REQUIRE_TEST_DATA");
  return (ci && std::string(ci) == "true") || (require && std::string(require) == "1");
}

void RecordMissingTestData(const std::string& missing) {
  const char* log = std::getenv("PENSIEVE_TEST_SKIP_LOG");
  if (!log || !*log) return;
  std::string name = "?";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
    name = std::string(info->test_suite_name()) + "." + info->name();
  const std::string line = name + "\t" + missing + "\n";
  // One write with O_APPEND: ctest runs test processes in parallel, and each line must stay whole.
  int fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

}  // namespace pensieve::test
