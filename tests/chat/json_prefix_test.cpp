// chat::JsonPrefix: valid and invalid prefixes (structure, strings with escapes and UTF-8, numbers,
// literals), the nesting and whitespace limits, and Completion() (always completes to JSON that nlohmann
// accepts, grows by at most kMaxCompletionGrowth per byte), cross-checked against nlohmann::json::accept.
#include "chat/json_prefix.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace pensieve::chat {
namespace {

// Bytes pushed before the first rejection (== s.size() when all are accepted).
size_t Accepted(std::string_view s, JsonPrefix p = JsonPrefix()) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!p.Push(static_cast<unsigned char>(s[i]))) return i;
  }
  return s.size();
}

bool Whole(std::string_view s, JsonPrefix p = JsonPrefix()) {
  for (char c : s) {
    if (!p.Push(static_cast<unsigned char>(c))) return false;
  }
  return p.Complete();
}

JsonPrefix Fed(std::string_view s, JsonPrefix p = JsonPrefix()) {
  for (char c : s) EXPECT_TRUE(p.Push(static_cast<unsigned char>(c))) << "in " << s;
  return p;
}

TEST(JsonPrefixTest, ValidObjectsAreAcceptedAndCompleteOnlyAtTheEnd) {
  const std::vector<std::string> docs = {
      "{}",
      "{ }",
      "{\"a\":1}",
      "{\"a\": [1, -2.5e+3, 0, 0.0, 1E9, true, false, null, \"x\"], \"b\": {\"c\": {}}}",
      "{\"esc\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"}",
      "{\"utf8\": \"h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x91\x8B\"}",
      "{\n  \"pretty\": [\n    1,\n    2\n  ]\n}",
      "{\"\": \"\", \"e\": [], \"n\": -0}",
  };
  for (const auto& d : docs) {
    ASSERT_TRUE(nlohmann::json::accept(d)) << d;
    JsonPrefix p;
    for (size_t i = 0; i < d.size(); ++i) {
      EXPECT_FALSE(p.Complete()) << d << " complete after " << i << " bytes";
      ASSERT_TRUE(p.Push(static_cast<unsigned char>(d[i]))) << d << " rejected at " << i;
    }
    EXPECT_TRUE(p.Complete()) << d;
    EXPECT_FALSE(p.Push(' ')) << "nothing may follow the object: " << d;
    EXPECT_FALSE(Fed(d).Push('{'));
  }
}

TEST(JsonPrefixTest, InvalidPrefixesAreRejectedAtTheFirstBadByte) {
  struct Case {
    std::string text;
    size_t accepted;  // bytes accepted before the rejection
  };
  const std::vector<Case> cases = {
      {"{,}", 1},
      {"{\"a\" 1}", 5},
      {"{\"a\":1,}", 7},
      {"{\"a\":01}", 6},                  // leading zero
      {"{\"a\":1.}", 7},
      {"{\"a\":1e}", 7},
      {"{\"a\":-}", 6},
      {"{\"a\":tru}", 8},
      {"{\"a\":nul }", 8},
      {"{\"a\":[1}", 7},                  // mismatched close
      {"{\"a\":1]", 6},
      {"{a:1}", 1},
      {"{\"a\":\"x\ny\"}", 7},           // raw control character
      {"{\"a\":\"\\x\"}", 7},            // unknown escape
      {"{\"a\":\"\\u12g4\"}", 10},
      {"{\"a\":\"\\udc00\"}", 9},         // lone low surrogate
      {"{\"a\":\"\\ud800\"}", 12},        // high surrogate not followed by \u
      {"{\"a\":\"\\ud800\\u0041\"}", 14},  // ... nor by a low one
      {"{\"a\":\"\xC0\x80\"}", 6},        // overlong
      {"{\"a\":\"\xED\xA0\x80\"}", 7},    // UTF-8 encoded surrogate
      {"{\"a\":\"\xF4\x90\x80\x80\"}", 7},  // beyond U+10FFFF
      {"{\"a\":\"\xC3\"}", 7},            // truncated sequence
      {"{\"a\":\"\x80\"}", 6},            // stray continuation byte
      {"{\"a\":1e999}", 9},               // numbers must fit a double (nlohmann rejects 1e999)
      {"{\"a\":" + std::string(400, '1') + "}", 69},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Accepted(c.text), c.accepted) << c.text;
    EXPECT_FALSE(nlohmann::json::accept(c.text)) << c.text;
  }
  // Valid JSON texts, refused by the (default) options: not an object; leading space; and the object is where
  // the output ends, so nothing may follow, not even whitespace.
  EXPECT_EQ(Accepted("[1]"), 0u);
  EXPECT_EQ(Accepted(" {}"), 0u);
  EXPECT_EQ(Accepted("{\"a\":1} "), 7u);
}

TEST(JsonPrefixTest, OptionsLeadingSpaceAndAnyValue) {
  JsonPrefix::Options o;
  o.leading_space = true;
  EXPECT_TRUE(Whole("  {}", JsonPrefix(o)));
  o.object_only = false;
  EXPECT_TRUE(Whole("[1, 2]", JsonPrefix(o)));
  EXPECT_TRUE(Whole("\"s\"", JsonPrefix(o)));
  EXPECT_TRUE(Whole("12", JsonPrefix(o)));  // a top-level number is complete at any digit
  EXPECT_FALSE(Whole("12 ", JsonPrefix(o)));
}

TEST(JsonPrefixTest, NestingDepthIsCapped) {
  JsonPrefix::Options o;
  o.max_depth = 3;
  EXPECT_TRUE(Whole("{\"a\":{\"b\":[]}}", JsonPrefix(o)));
  EXPECT_EQ(Accepted("{\"a\":{\"b\":[[", JsonPrefix(o)), 11u);
  EXPECT_EQ(Accepted("{\"a\":[{\"b\":{", JsonPrefix(o)), 11u);
  // Closing brings the depth back down; siblings may nest again.
  EXPECT_TRUE(Whole("{\"a\":[[]],\"b\":[[]]}", JsonPrefix(o)));
}

TEST(JsonPrefixTest, WhitespaceRunsAreCapped) {
  JsonPrefix::Options o;
  o.max_space_run = 4;
  EXPECT_TRUE(Whole("{    \"a\"    :    1    }", JsonPrefix(o)));
  EXPECT_EQ(Accepted("{     ", JsonPrefix(o)), 5u);
  // Spaces inside strings are text, not layout.
  EXPECT_TRUE(Whole("{\"a\": \"          \"}", JsonPrefix(o)));
}

TEST(JsonPrefixTest, PlainStringStateIsReported) {
  EXPECT_FALSE(Fed("{\"a\":").InPlainString());
  EXPECT_TRUE(Fed("{\"a\":\"").InPlainString());
  EXPECT_TRUE(Fed("{\"").InPlainString());
  EXPECT_FALSE(Fed("{\"a\":\"\\").InPlainString());
  EXPECT_FALSE(Fed("{\"a\":\"\xE4\xB8").InPlainString());
}

TEST(JsonPrefixTest, CompletionClosesEveryPrefix) {
  const std::vector<std::string> docs = {
      "{\"a\": [1, -2.5e+3, 0, true, false, null, \"x\\ud83d\\ude00y\"], \"b\": {\"c\": {\"d\": [[\"\xF0\x9F\x91\x8B\"]]}}}",
      "{\"k\\u00e9y\": -0.5E-7, \"z\": \"\\n\"}",
  };
  for (const auto& d : docs) {
    JsonPrefix p;
    for (size_t i = 0; i < d.size(); ++i) {
      std::string done = d.substr(0, i) + p.Completion();
      EXPECT_TRUE(nlohmann::json::accept(done)) << done;
      EXPECT_TRUE(Whole(done)) << done;
      ASSERT_TRUE(p.Push(static_cast<unsigned char>(d[i])));
    }
    EXPECT_EQ(p.Completion(), "");
  }
  EXPECT_EQ(Fed("{\"a\":[{\"b\":\"x").Completion(), "\"}]}");
  EXPECT_EQ(Fed("{\"a\":\"\\ud83d").Completion(), "\\uDC00\"}");
  EXPECT_EQ(Fed("{\"a\":fa").Completion(), "lse}");
}

// Random walks over JSON-ish bytes: every accepted prefix completes to JSON nlohmann accepts, and one byte
// never grows the completion by more than kMaxCompletionGrowth.
TEST(JsonPrefixTest, RandomWalksCompleteAndGrowBoundedly) {
  const std::string alphabet = "{}[]:,\" \n\\u0123456789abcdefABCDEFtrulsn.-+eE\xC3\xA9\xED\xF0\x9F\x91\x8B\x80";
  std::mt19937 rng(7);
  int accepted_total = 0;
  for (int walk = 0; walk < 3000; ++walk) {
    JsonPrefix p;
    std::string text;
    for (int step = 0; step < 60 && !p.Complete(); ++step) {
      unsigned char c = static_cast<unsigned char>(alphabet[rng() % alphabet.size()]);
      JsonPrefix next = p;
      if (!next.Push(c)) continue;
      ASSERT_LE(next.Completion().size(), p.Completion().size() + JsonPrefix::kMaxCompletionGrowth) << text << c;
      p = next;
      text.push_back(static_cast<char>(c));
      ++accepted_total;
      std::string done = text + p.Completion();
      ASSERT_TRUE(nlohmann::json::accept(done)) << done;
    }
  }
  EXPECT_GT(accepted_total, 10000);
}

}  // namespace
}  // namespace pensieve::chat
