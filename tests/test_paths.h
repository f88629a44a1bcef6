#pragma once
// Where tests find data.
// - TestDataDir(): the real files nobody here wrote (README of ../shared/data): env PENSIEVE_TEST_DATA, else the
//   configure-time default (CMake cache PENSIEVE_TEST_DATA, ../shared/data beside the checkout).
//   scripts/fetch_test_data.sh fills such a folder on a machine with internet access.
// - FixturesDir(): committed fixtures (env PENSIEVE_FIXTURES_DIR overrides).
// - PensieveBinary(): the built CLI, for end-to-end tests (env PENSIEVE_BINARY overrides).
//
// A test that needs test data starts with PENSIEVE_REQUIRE_TEST_DATA("models/stories260K", ...) naming what it
// reads, relative to TestDataDir(). That is the one way a test skips for want of data, so the count is reliable:
// each such skip is appended to $PENSIEVE_TEST_SKIP_LOG (ctest sets it) and the test_data_summary test prints
// them at the end of the run. Where data is required (CI=true, or PENSIEVE_REQUIRE_TEST_DATA=1) the test fails
// instead: CI must not report a pass for tests that never ran.
#include <initializer_list>
#include <string>

namespace pensieve::test {

std::string TestDataDir();
// TestDataDir() + "/" + relative.
std::string TestData(const std::string& relative);
std::string FixturesDir();
std::string PensieveBinary();

// The entries of `relatives` (relative to TestDataDir()) that do not exist, joined with ", "; empty when all do.
std::string MissingTestData(std::initializer_list<const char*> relatives);
// True when missing test data is a failure, not a skip: CI=true or PENSIEVE_REQUIRE_TEST_DATA=1.
bool RequireTestData();
// Appends "<Suite.Test>\t<missing>" for the running test to $PENSIEVE_TEST_SKIP_LOG (nothing when unset).
void RecordMissingTestData(const std::string& missing);

}  // namespace pensieve::test

// Skips the calling test (fails it where data is required) unless every named path exists under TestDataDir().
// Use in a TEST body (or a void helper), before reading any of the data.
#define PENSIEVE_REQUIRE_TEST_DATA(...)                                                                      \
  do {                                                                                                       \
    const std::string pensieve_missing_ = ::pensieve::test::MissingTestData({__VA_ARGS__});                  \
    if (!pensieve_missing_.empty()) {                                                                        \
      ::pensieve::test::RecordMissingTestData(pensieve_missing_);                                            \
      if (::pensieve::test::RequireTestData())                                                               \
        FAIL() << "[test data missing] " << pensieve_missing_ << " under " << ::pensieve::test::TestDataDir() \
               << ", and test data is required here (CI=true or PENSIEVE_REQUIRE_TEST_DATA=1): set "         \
               << "PENSIEVE_TEST_DATA or run scripts/fetch_test_data.sh";                                    \
      GTEST_SKIP() << "[test data missing] " << pensieve_missing_ << " under "                               \
                   << ::pensieve::test::TestDataDir() << " (set PENSIEVE_TEST_DATA or run "                  \
                   << "scripts/fetch_test_data.sh); skipping";                                               \
    }                                                                                                        \
  } while (0)
