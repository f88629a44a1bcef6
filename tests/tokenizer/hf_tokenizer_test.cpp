// tokenizer.json behaviour against reference outputs: stories260K's encode cases (from its expected.json),
// special-token handling, added-token stripping rules, streaming, malformed files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"

namespace pensieve {
namespace {

using json = nlohmann::json;

TEST(Stories260K, EncodeCasesMatchExpectedJson) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf", "models/stories260K/stories260K.expected.json");
  auto tok = LoadTokenizer(test::TestData("models/stories260K/stories260K-hf"));
  json expected = json::parse(test::ReadFile(test::TestData("models/stories260K/stories260K.expected.json")));
  ASSERT_TRUE(expected.contains("encode"));
  size_t n = 0;
  for (const json& c : expected["encode"]) {
    std::string text = c["text"];
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    bool bos = c["bos"], eos = c["eos"];
    std::vector<int32_t> got = tok->Encode(text, /*add_special=*/true);
    ASSERT_TRUE(bos) << "cases are all with BOS";
    ASSERT_FALSE(eos);
    EXPECT_EQ(test::IdsToString(got), test::IdsToString(want)) << "'" << text << "'";
    // The same vocabulary from the GGUF conversion agrees.
    ++n;
  }
  EXPECT_EQ(n, 9u);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->bos_token(), "<s>");
  EXPECT_EQ(tok->vocab_size(), 512);
}

TEST(Stories260K, GgufVocabularyAgreesWithTokenizerJson) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf", "models/stories260K/stories260K-f32.gguf",
                             "models/stories260K/stories260K.expected.json");
  auto hf = LoadTokenizer(test::TestData("models/stories260K/stories260K-hf"));
  auto gg = LoadTokenizer(test::TestData("models/stories260K/stories260K-f32.gguf"));
  json expected = json::parse(test::ReadFile(test::TestData("models/stories260K/stories260K.expected.json")));
  for (const json& c : expected["encode"]) {
    std::string text = c["text"];
    EXPECT_EQ(test::IdsToString(gg->Encode(text)), test::IdsToString(c["ids"].get<std::vector<int32_t>>()))
        << "'" << text << "'";
  }
}

TEST(SpecialTokens, Llama31BosAndSpecialParsing) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/llama-3.1");
  const Tokenizer* tok = &test::CachedTokenizer(test::TestData("tokenizers/llama-3.1"));
  // HF: tokenizer.encode("Hello world") == [128000, 9906, 1917]
  EXPECT_EQ(test::IdsToString(tok->Encode("Hello world")), " 128000 9906 1917");
  EXPECT_EQ(test::IdsToString(tok->Encode("Hello world", false)), " 9906 1917");
  // Special-token text is one id when parsed, plain text otherwise.
  auto ids = tok->Encode("<|eot_id|>", false, true);
  EXPECT_EQ(test::IdsToString(ids), " 128009");
  auto plain = tok->Encode("<|eot_id|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok->Decode(plain), "<|eot_id|>");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{128000, 9906, 1917}), "<|begin_of_text|>Hello world");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{128000, 9906, 1917}, /*skip_special=*/true), "Hello world");
  EXPECT_TRUE(tok->IsSpecial(128009));
  EXPECT_FALSE(tok->IsSpecial(9906));
  EXPECT_EQ(tok->eos_token(), "<|eot_id|>");
  EXPECT_EQ(tok->eos_id(), 128009);
  EXPECT_EQ(tok->TokenId("<|eot_id|>"), 128009);
  EXPECT_EQ(tok->vocab_size(), 128256);
}

TEST(SpecialTokens, Qwen3NoBosAndChatMarkers) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/qwen3");
  const Tokenizer* tok = &test::CachedTokenizer(test::TestData("tokenizers/qwen3"));
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_EQ(tok->eos_token(), "<|im_end|>");
  auto ids = tok->Encode("<|im_start|>user\nhi<|im_end|>");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  EXPECT_EQ(tok->Decode(ids), "<|im_start|>user\nhi<|im_end|>");
}

// A tiny hand-written tokenizer.json: character-level BPE over a small alphabet, with added tokens that
// exercise lstrip/rstrip/single_word. The expected ids are worked out by hand from the rules HF documents.
std::string TinyTokenizerJson(const std::string& added, const std::string& normalizer = "null") {
  return R"({
    "version": "1.0",
    "added_tokens": [)" + added + R"(],
    "normalizer": )" + normalizer + R"(,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "Ġ": 2, "Ġa": 3, "ab": 4, "<m>": 5, "Ċ": 6},
              "merges": [["Ġ", "a"], "a b"]}
  })";
}

std::unique_ptr<Tokenizer> TinyTokenizer(const std::string& added, const std::string& normalizer = "null") {
  auto dir = std::filesystem::temp_directory_path() / ("pensieve_tok_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << TinyTokenizerJson(added, normalizer);
  auto tok = LoadTokenizer(dir.string());
  std::filesystem::remove_all(dir);
  return tok;
}

TEST(AddedTokens, PlainMatchKeepsSurroundingSpaces) {
  auto tok = TinyTokenizer(R"({"id": 5, "content": "<m>", "special": true, "normalized": false})");
  // "a <m> b": "a", " " before <m> stays ("Ġ"), then " b" -> "Ġ","b" (no merge Ġ b).
  EXPECT_EQ(test::IdsToString(tok->Encode("a <m> b")), " 0 2 5 2 1");
}

TEST(AddedTokens, LstripAndRstripSwallowWhitespace) {
  auto tok = TinyTokenizer(
      R"({"id": 5, "content": "<m>", "special": true, "normalized": false, "lstrip": true, "rstrip": true})");
  EXPECT_EQ(test::IdsToString(tok->Encode("a  <m>\n b")), " 0 5 1");
  auto only_l = TinyTokenizer(
      R"({"id": 5, "content": "<m>", "special": true, "normalized": false, "lstrip": true, "rstrip": false})");
  // " ab" -> Ġ a b; merge (Ġ, a) has rank 0 and wins over (a, b): Ġa b.
  EXPECT_EQ(test::IdsToString(only_l->Encode("a <m> ab")), " 0 5 3 1");
}

TEST(AddedTokens, SingleWordNeedsBoundaries) {
  auto tok = TinyTokenizer(
      R"({"id": 5, "content": "<m>", "special": false, "normalized": false, "single_word": true})");
  EXPECT_EQ(test::IdsToString(tok->Encode("a <m> b")), " 0 2 5 2 1");
  // Glued to a letter: not a match, so it is tokenized as bytes ('<', 'm', '>' are not in the vocab: dropped).
  std::vector<int32_t> ids = tok->Encode("a<m>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 5), 0);
}

TEST(AddedTokens, ParseSpecialFalseTreatsSpecialAsText) {
  auto tok = TinyTokenizer(R"({"id": 5, "content": "<m>", "special": true, "normalized": false})");
  std::vector<int32_t> ids = tok->Encode("<m>", true, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 5), 0);
}

TEST(AddedTokens, NormalizedTokenMatchesNormalizedText) {
  // normalized=true: the content "<M>" is itself lowercased to "<m>" and matched after the Lowercase
  // normalizer, so both "<M>" and "<m>" in the input hit it.
  auto tok = TinyTokenizer(R"({"id": 5, "content": "<M>", "special": false, "normalized": true})",
                           R"({"type": "Lowercase"})");
  EXPECT_EQ(test::IdsToString(tok->Encode("A<M>b")), " 0 5 1");
  EXPECT_EQ(test::IdsToString(tok->Encode("a<m>B")), " 0 5 1");
}

TEST(Bpe, MergesInBothForms) {
  auto tok = TinyTokenizer("");
  EXPECT_EQ(test::IdsToString(tok->Encode("ab a")), " 4 3");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{4, 3}), "ab a");
}

TEST(StreamDecoder, SplitCharactersAcrossTokens) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/llama-3.1");
  const Tokenizer* tok = &test::CachedTokenizer(test::TestData("tokenizers/llama-3.1"));
  // Emoji and CJK are split over several byte-level tokens; no piece may hold a broken character.
  const std::string text = "Hi 🦙 there 你好世界 🇫🇷 ok";
  auto ids = tok->Encode(text, false);
  StreamDecoder sd(*tok);
  std::string all;
  int pieces_with_bad_utf8 = 0;
  for (int32_t id : ids) {
    std::string piece = sd.Push(id);
    if (piece.find("\xEF\xBF\xBD") != std::string::npos) ++pieces_with_bad_utf8;
    all += piece;
  }
  all += sd.Flush();
  EXPECT_EQ(all, text);
  EXPECT_EQ(pieces_with_bad_utf8, 0);
}

TEST(StreamDecoder, SentencePieceLeadingSpaceAndByteFallback) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/mistral-7b-v0.1");
  const Tokenizer* tok = &test::CachedTokenizer(test::TestData("tokenizers/mistral-7b-v0.1"));
  const std::string text = "  Hello  world 🦙\n\tfin";
  auto ids = tok->Encode(text, false);
  StreamDecoder sd(*tok);
  std::string all;
  for (int32_t id : ids) all += sd.Push(id);
  all += sd.Flush();
  EXPECT_EQ(all, tok->Decode(ids));
}

TEST(StreamDecoder, IncompleteBytesAreHeldUntilComplete) {
  PENSIEVE_REQUIRE_TEST_DATA("tokenizers/mistral-7b-v0.1");
  const Tokenizer* tok = &test::CachedTokenizer(test::TestData("tokenizers/mistral-7b-v0.1"));
  // 🦙 = F0 9F A6 99: with byte fallback these are four <0xNN> tokens.
  std::vector<int32_t> bytes;
  for (const char* b : {"<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"}) bytes.push_back(*tok->TokenId(b));
  StreamDecoder sd(*tok);
  EXPECT_EQ(sd.Push(*tok->TokenId("▁A")), "A");
  EXPECT_EQ(sd.Push(bytes[0]), "");
  EXPECT_EQ(sd.Push(bytes[1]), "");
  EXPECT_EQ(sd.Push(bytes[2]), "");
  EXPECT_EQ(sd.Push(bytes[3]), "🦙");
  EXPECT_EQ(sd.Flush(), "");
  // A dangling partial character comes out as U+FFFD at Flush, as Decode gives it.
  StreamDecoder sd2(*tok);
  EXPECT_EQ(sd2.Push(bytes[0]), "");
  EXPECT_EQ(sd2.Flush(), "\xEF\xBF\xBD");
}

TEST(Malformed, TokenizerJsonErrorsNameTheField) {
  auto dir = std::filesystem::temp_directory_path() / ("pensieve_bad_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write_and_load = [&](const std::string& text) {
    std::ofstream(dir / "tokenizer.json", std::ios::trunc) << text;
    return LoadTokenizer(dir.string());
  };
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    try {
      write_and_load(text);
      ADD_FAILURE() << "no error for: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("{not json", "invalid JSON");
  expect_error("[]", "expected an object");
  expect_error(R"({"model": {"type": "Unigram", "vocab": []}})", "unsupported model");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", "merge #0");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})", "model.vocab.a");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})", "model.merges[0]");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                  "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})",
               "pre_tokenizer.pattern");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Nope"}})",
               "unsupported normalizer");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1}]})",
               "added_tokens[0].content");
  std::filesystem::remove_all(dir);
  EXPECT_THROW(LoadTokenizer("/nonexistent/tokenizer.json"), Error);
}

}  // namespace
}  // namespace pensieve
