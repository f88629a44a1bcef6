// Pipeline stages on hand-worked examples (expected values derived by hand from the HF tokenizers rules).
#include <gtest/gtest.h>

#include "tokenizer/pipeline.h"
#include "tokenizer/unicode.h"

namespace pensieve::tok {
namespace {

std::vector<std::string> Texts(const std::vector<Piece>& pieces) {
  std::vector<std::string> out;
  for (const Piece& p : pieces) out.push_back(p.text);
  return out;
}

TEST(Unicode, Utf8LossyReplacesMaximalSubparts) {
  // "\xF0\x9F" is a truncated 4-byte sequence: one U+FFFD; "\xC0" is never valid: one U+FFFD.
  EXPECT_EQ(Utf8Lossy("a\xF0\x9F" "b\xC0" "c"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c");
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3 subparts
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xF0\x9F\xA6\x99"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\xA6"));
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\xA6"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\xA6\x99"), 6u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC0"), 3u);  // invalid, not incomplete
}

TEST(Unicode, ByteLevelAlphabet) {
  // GPT-2: space -> U+0120 'Ġ', newline -> U+010A 'Ċ', 'a' stays, 0xAD -> U+0143.
  EXPECT_EQ(ByteLevelChars()[' '], "\xC4\xA0");
  EXPECT_EQ(ByteLevelChars()['\n'], "\xC4\x8A");
  EXPECT_EQ(ByteLevelChars()['a'], "a");
  EXPECT_EQ(ByteLevelChars()[0xAD], "\xC5\x83");
  EXPECT_EQ(ByteLevelByte(0x120), ' ');
  EXPECT_EQ(ByteLevelByte(0x2581), -1);
}

TEST(Unicode, NormalForms) {
  // U+0065 U+0301 composes to U+00E9 under NFC; U+FB01 (ﬁ ligature) becomes "fi" under NFKC only.
  EXPECT_EQ(NormalizeUnicode("e\xCC\x81", NormalForm::kNFC), "\xC3\xA9");
  EXPECT_EQ(NormalizeUnicode("\xEF\xAC\x81", NormalForm::kNFC), "\xEF\xAC\x81");
  EXPECT_EQ(NormalizeUnicode("\xEF\xAC\x81", NormalForm::kNFKC), "fi");
  EXPECT_EQ(NormalizeUnicode("\xC3\xA9", NormalForm::kNFD), "e\xCC\x81");
}

TEST(PreTokenizers, SplitBehaviors) {
  auto run = [](SplitBehavior b, bool invert) {
    SplitPreTokenizer p("-", false, b, invert);
    std::vector<Piece> v{{"a-b--c", true}};
    p.Apply(v);
    return Texts(v);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(run(SplitBehavior::kIsolated, false), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(run(SplitBehavior::kRemoved, false), (V{"a", "b", "c"}));
  EXPECT_EQ(run(SplitBehavior::kMergedWithPrevious, false), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(run(SplitBehavior::kMergedWithNext, false), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(run(SplitBehavior::kContiguous, false), (V{"a", "-", "b", "--", "c"}));
}

TEST(PreTokenizers, Llama3RegexSplitsAsDocumented) {
  SplitPreTokenizer p(
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      true, SplitBehavior::kIsolated, false);
  std::vector<Piece> v{{"I'LL pay 12345 now!!\n\n  ok", true}};
  p.Apply(v);
  // 'LL matches case-insensitively; digits go in threes; in "  ok", \s+(?!\S) takes the first space only
  // (the last one must not be followed by \S), then "[^\r\n\p{L}\p{N}]?\p{L}+" takes " ok".
  EXPECT_EQ(Texts(v), (std::vector<std::string>{"I", "'LL", " pay", " ", "123", "45", " now", "!!\n\n", " ",
                                                 " ok"}));
}

TEST(PreTokenizers, MetaspaceFirstOnlyAtStart) {
  MetaspacePreTokenizer p("\xE2\x96\x81", PrependScheme::kFirst, true);
  std::vector<Piece> v{{"Hey you", true}, {"there", false}};
  p.Apply(v);
  EXPECT_EQ(Texts(v), (std::vector<std::string>{"\xE2\x96\x81Hey", "\xE2\x96\x81you", "there"}));
}

TEST(PreTokenizers, DigitsIndividual) {
  DigitsPreTokenizer p(true);
  std::vector<Piece> v{{"ab12c", true}};
  p.Apply(v);
  EXPECT_EQ(Texts(v), (std::vector<std::string>{"ab", "1", "2", "c"}));
}

TEST(Decoders, SentencePieceChain) {
  // Llama-2/Mistral: Replace(▁ -> ' '), ByteFallback, Fuse, Strip(' ', 1, 0).
  std::vector<std::unique_ptr<Decoder>> parts;
  parts.push_back(std::make_unique<ReplaceDecoder>("\xE2\x96\x81", false, " "));
  parts.push_back(std::make_unique<ByteFallbackDecoder>());
  parts.push_back(std::make_unique<FuseDecoder>());
  parts.push_back(std::make_unique<StripDecoder>(" ", 1, 0));
  SequenceDecoder d(std::move(parts));
  std::vector<std::string> toks{"\xE2\x96\x81Hi", "<0xE4>", "<0xBD>", "<0xA0>", "\xE2\x96\x81" "x", "<0xFF>"};
  d.Apply(toks);
  ASSERT_EQ(toks.size(), 1u);
  // 0xE4 0xBD 0xA0 = U+4F60; the lone 0xFF is invalid -> one U+FFFD per byte token.
  EXPECT_EQ(toks[0], "Hi\xE4\xBD\xA0 x\xEF\xBF\xBD");
}

TEST(Decoders, MetaspaceDropsReplacementInFirstToken) {
  MetaspaceDecoder d("\xE2\x96\x81", true);
  std::vector<std::string> toks{"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend!"};
  d.Apply(toks);
  EXPECT_EQ(toks, (std::vector<std::string>{"Hey", " friend!"}));
}

TEST(Decoders, CleanUpTokenizationSpaces) {
  EXPECT_EQ(CleanUpTokenizationSpaces("Hello , world . I do n't know ! It 's"), "Hello, world. I don't know! It's");
}

}  // namespace
}  // namespace pensieve::tok

namespace pensieve::tok {
namespace {
TEST(Unicode, NormalizationAcrossAsciiBoundaries) {
  // Combining acute after an ASCII base, Hangul jamo composing into a syllable, and a run at the very start.
  EXPECT_EQ(NormalizeUnicode("cafe\xCC\x81 ok", NormalForm::kNFC), "caf\xC3\xA9 ok");
  EXPECT_EQ(NormalizeUnicode("\xE1\x84\x80\xE1\x85\xA1!", NormalForm::kNFC), "\xEA\xB0\x80!");  // U+1100 U+1161 -> U+AC00
  EXPECT_EQ(NormalizeUnicode("\xCC\x81" "a", NormalForm::kNFC), "\xCC\x81" "a");  // lone mark stays
  EXPECT_EQ(NormalizeUnicode("x\xEF\xAC\x81y\xE2\x84\xA2", NormalForm::kNFKC), "xfiyTM");
}
}  // namespace
}  // namespace pensieve::tok
