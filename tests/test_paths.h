#pragma once
// Where tests find data. SharedDir(): ../shared beside the checkout; FixturesDir(): committed fixtures;
// PensieveBinary(): the built CLI, for end-to-end tests. Environment variables of the same names
// (PENSIEVE_SHARED_DIR, PENSIEVE_FIXTURES_DIR, PENSIEVE_BINARY) override each.
#include <string>

namespace pensieve::test {

std::string SharedDir();
std::string FixturesDir();
std::string PensieveBinary();
// True when SharedDir() exists; tests that need it call GTEST_SKIP() with a message otherwise.
bool HaveShared();

}  // namespace pensieve::test

#define PENSIEVE_REQUIRE_SHARED()                                                        \
  do {                                                                                   \
    if (!::pensieve::test::HaveShared())                                                 \
      GTEST_SKIP() << "../shared not found (set PENSIEVE_SHARED_DIR); skipping";         \
  } while (0)
