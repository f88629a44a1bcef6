#pragma once
// Where tests find data. SharedDir(): ../shared beside the checkout; FixturesDir(): committed fixtures;
// PensieveBinary(): the built CLI, for end-to-end tests. Environment variables of the same names
// (PENSIEVE_SHARED_DIR, PENSIEVE_FIXTURES_DIR, PENSIEVE_BINARY) override each.
#include <string>

namespace pensieve::test {

std::string SharedDir();
std::string FixturesDir();
std::string PensieveBinary();
// True when SharedDir()/data exists; tests that need it skip with a message otherwise.
bool HaveShared();
// True when a missing SharedDir()/data is a failure, not a skip: CI=true (CI must not report a pass for tests
// that never ran) or PENSIEVE_REQUIRE_TEST_DATA=1.
bool RequireShared();

}  // namespace pensieve::test

#define PENSIEVE_REQUIRE_SHARED()                                                                            \
  do {                                                                                                       \
    if (!::pensieve::test::HaveShared()) {                                                                   \
      if (::pensieve::test::RequireShared())                                                                 \
        FAIL() << ::pensieve::test::SharedDir() << "/data not found and CI=true: the test data is required " \
               << "(set PENSIEVE_SHARED_DIR)";                                                               \
      GTEST_SKIP() << ::pensieve::test::SharedDir() << "/data not found (set PENSIEVE_SHARED_DIR); skipping"; \
    }                                                                                                        \
  } while (0)
