#pragma once
// Incremental recognizer of JSON text prefixes (RFC 8259), one byte at a time, for constrained decoding.
//
// Contract:
//  - Push(byte) returns true while the bytes pushed so far are a prefix of some valid JSON text (with the
//    options' limits); false as soon as they cannot be. After a false return the state is unspecified: the
//    type is a small trivially copyable value, so callers test a byte (or a token's bytes) on a copy.
//  - Complete(): the bytes form a whole value. With object_only (the default) the value is an object, so
//    completion is decided by its closing '}' and nothing may follow it (trailing whitespace included).
//  - Strings: control characters must be escaped, escapes are the RFC's, \u escapes pair surrogates (a high
//    one must be followed by \uDC00-\uDFFF, a lone low one is rejected: nlohmann::json rejects both) and raw
//    bytes must be well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
//  - Limits, so a constrained generation cannot wander forever in one place: nesting depth <= max_depth
//    (<= 64) and at most max_space_run consecutive whitespace bytes. Leading whitespace only with
//    leading_space. Numbers must fit a double (nlohmann::json rejects overflow): <= 64 integer digits, <= 2
//    exponent digits. (String lengths are bounded by the caller's token budget, see Completion.)
//  - Completion(): the shortest bytes that complete the value from here (e.g. "\"}]}" inside a string two
//    levels deep). One byte pushed can make it at most kMaxCompletionGrowth bytes longer.
#include <cstdint>
#include <string>

namespace pensieve::chat {

class JsonPrefix {
 public:
  struct Options {
    int max_depth = 32;
    int max_space_run = 32;
    bool object_only = true;      // the top-level value must be an object
    bool leading_space = false;   // whitespace allowed before the top-level value
  };
  static constexpr int kMaxCompletionGrowth = 5;  // e.g. the 4th hex digit of a high surrogate: 0" -> \uDC00"

  JsonPrefix() : JsonPrefix(Options{}) {}
  explicit JsonPrefix(const Options& options);

  bool Push(unsigned char c);
  bool Complete() const;
  // Inside a string, between characters: any byte >= 0x20 other than '"' and '\\' that continues well-formed
  // UTF-8 keeps the state as it is (lets a token mask accept plain text tokens without pushing them).
  bool InPlainString() const { return state_ == kString && utf8_left_ == 0; }
  std::string Completion() const;
  int depth() const { return depth_; }

 private:
  enum State : uint8_t {
    kStart, kValue, kArrayFirst, kObjFirst, kObjKey, kColon, kAfter, kString, kEscape, kHex, kLowBackslash, kLowU,
    kNumMinus, kNumZero, kNumInt, kNumDot, kNumFrac, kNumExp, kNumExpSign, kNumExpInt, kLiteral, kDone,
  };
  bool StartValue(unsigned char c);
  bool Open(bool object);
  bool Close(bool object);
  void EndValue();
  bool Space();
  bool EndNumber(unsigned char c);
  bool NumberComplete() const;
  unsigned char CompletionByte() const;

  uint64_t stack_ = 0;       // bit i: level i is an object (else an array)
  State state_ = kStart;
  uint8_t depth_ = 0;
  uint8_t space_run_ = 0;
  uint8_t aux_ = 0;          // kLiteral: literal index * 8 + position; kHex, numbers: digits read
  uint8_t utf8_left_ = 0;    // continuation bytes still expected in a string
  uint8_t utf8_lo_ = 0x80, utf8_hi_ = 0xBF;  // range of the next continuation byte
  uint16_t hex_ = 0;         // \u escape value so far
  bool key_ = false;         // the current string is an object key
  bool low_ = false;         // the \u escape being read must be a low surrogate
  // Options, kept in the value so copies are self-contained.
  uint8_t max_depth_ = 32;
  uint8_t max_space_run_ = 32;
  bool object_only_ = true;
  bool leading_space_ = false;
};

}  // namespace pensieve::chat
