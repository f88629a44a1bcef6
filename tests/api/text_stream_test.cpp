// Stop sequences across token boundaries and incremental detokenization (UTF-8 split over tokens).
#include <gtest/gtest.h>

#include "api/detokenizer.h"
#include "api/stop_matcher.h"
#include "fakes/fake_tokenizer.h"

namespace pensieve::api {
namespace {

TEST(StopMatcher, MatchAcrossPiecesIsNeverEmitted) {
  StopMatcher m({"STOP"});
  std::string out;
  out += m.Push("abc S");
  EXPECT_EQ(out, "abc ");  // "S" held: it may start "STOP"
  out += m.Push("T");
  out += m.Push("OP and more");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.matched_sequence(), "STOP");
  EXPECT_EQ(out, "abc ");
  EXPECT_EQ(m.Push("x"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, FalseStartIsReleased) {
  StopMatcher m({"STOP", "7"});
  std::string out = m.Push("ST");
  out += m.Push("ART");
  EXPECT_EQ(out, "START");
  out += m.Push("ST");
  out += m.Flush();
  EXPECT_EQ(out, "STARTST");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcher, EarliestMatchWins) {
  StopMatcher m({"6", "4, 5"});
  std::string out = m.Push("1, 2, 3, 4, 5, 6");
  EXPECT_EQ(out, "1, 2, 3, ");
  EXPECT_EQ(m.matched_sequence(), "4, 5");
}

TEST(StopMatcher, NoStopsPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("a"), "a");
  EXPECT_EQ(m.Flush(), "");
}

TEST(Detokenizer, HoldsPartialUtf8UntilComplete) {
  test::FakeTokenizer tok;
  std::string text = "a👋b世";
  auto ids = tok.Encode(text);
  ASSERT_EQ(ids.size(), 1u + 4 + 1 + 3);
  Detokenizer d(tok);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(d.Push(id));
  pieces.push_back(d.Flush());
  std::string all;
  for (const auto& p : pieces) {
    EXPECT_FALSE(EndsIncomplete(p)) << "piece ends inside a UTF-8 sequence";
    all += p;
  }
  EXPECT_EQ(all, text);
  EXPECT_EQ(pieces[1], "");  // first byte of the emoji alone is not emitted
  EXPECT_EQ(pieces[4], "👋");
}

TEST(Detokenizer, IncompleteDetection) {
  EXPECT_TRUE(EndsIncomplete("a\xE4\xB8"));
  EXPECT_FALSE(EndsIncomplete("a\xE4\xB8\x96"));
  EXPECT_TRUE(EndsIncomplete("x\xEF\xBF\xBD"));
  EXPECT_FALSE(EndsIncomplete(""));
}

}  // namespace
}  // namespace pensieve::api
