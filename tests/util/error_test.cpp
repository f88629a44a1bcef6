#include "util/error.h"

#include <gtest/gtest.h>

TEST(Error, RequireThrowsWithMessage) {
  EXPECT_NO_THROW(pensieve::Require(true, "never"));
  try {
    pensieve::Require(false, "model.safetensors: tensor 'x' is truncated");
    FAIL() << "Require(false) did not throw";
  } catch (const pensieve::Error& e) {
    EXPECT_STREQ(e.what(), "model.safetensors: tensor 'x' is truncated");
  }
}
