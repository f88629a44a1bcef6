#include "chat/json_prefix.h"

#include <algorithm>
#include <string_view>

#include "util/utf8.h"

namespace pensieve::chat {
namespace {

constexpr std::string_view kLiterals[3] = {"true", "false", "null"};

// nlohmann::json (which reads tool arguments back) rejects numbers that overflow a double, so magnitudes are
// capped: <= kMaxIntDigits integer digits and <= kMaxExpDigits exponent digits (10^64 * 10^99 < 1.8e308).
constexpr uint8_t kMaxIntDigits = 64;
constexpr uint8_t kMaxExpDigits = 2;

bool IsWs(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
int HexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

JsonPrefix::JsonPrefix(const Options& o)
    : max_depth_(static_cast<uint8_t>(std::clamp(o.max_depth, 1, 64))),
      max_space_run_(static_cast<uint8_t>(std::clamp(o.max_space_run, 0, 255))),
      object_only_(o.object_only),
      leading_space_(o.leading_space) {}

bool JsonPrefix::Space() {
  if (space_run_ >= max_space_run_) return false;
  ++space_run_;
  return true;
}

bool JsonPrefix::Open(bool object) {
  if (depth_ >= max_depth_) return false;
  if (object) {
    stack_ |= uint64_t{1} << depth_;
  } else {
    stack_ &= ~(uint64_t{1} << depth_);
  }
  ++depth_;
  state_ = object ? kObjFirst : kArrayFirst;
  return true;
}

bool JsonPrefix::Close(bool object) {
  if (depth_ == 0 || ((stack_ >> (depth_ - 1)) & 1) != (object ? 1u : 0u)) return false;
  --depth_;
  EndValue();
  return true;
}

void JsonPrefix::EndValue() { state_ = depth_ == 0 ? kDone : kAfter; }

bool JsonPrefix::StartValue(unsigned char c) {
  switch (c) {
    case '{': return Open(true);
    case '[': return Open(false);
    case '"':
      state_ = kString;
      key_ = false;
      return true;
    case '-': state_ = kNumMinus; return true;
    case '0': state_ = kNumZero; aux_ = 1; return true;
    case 't': state_ = kLiteral; aux_ = 0 * 8 + 1; return true;
    case 'f': state_ = kLiteral; aux_ = 1 * 8 + 1; return true;
    case 'n': state_ = kLiteral; aux_ = 2 * 8 + 1; return true;
    default:
      if (c >= '1' && c <= '9') {
        state_ = kNumInt;
        aux_ = 1;
        return true;
      }
      return false;
  }
}

bool JsonPrefix::NumberComplete() const {
  return state_ == kNumZero || state_ == kNumInt || state_ == kNumFrac || state_ == kNumExpInt;
}

// A byte that cannot continue a complete number ends it and is then read after the value.
bool JsonPrefix::EndNumber(unsigned char c) {
  EndValue();
  if (state_ == kDone) return false;  // a top-level number: nothing may follow
  return Push(c);
}

bool JsonPrefix::Push(unsigned char c) {
  const bool ws = IsWs(c);
  if (!ws) space_run_ = 0;
  switch (state_) {
    case kStart:
      if (ws) return leading_space_ && Space();
      if (object_only_ && c != '{') return false;
      return StartValue(c);
    case kValue:
      if (ws) return Space();
      return StartValue(c);
    case kArrayFirst:
      if (ws) return Space();
      if (c == ']') return Close(false);
      return StartValue(c);
    case kObjFirst:
      if (ws) return Space();
      if (c == '}') return Close(true);
      if (c != '"') return false;
      state_ = kString;
      key_ = true;
      return true;
    case kObjKey:
      if (ws) return Space();
      if (c != '"') return false;
      state_ = kString;
      key_ = true;
      return true;
    case kColon:
      if (ws) return Space();
      if (c != ':') return false;
      state_ = kValue;
      return true;
    case kAfter: {
      if (ws) return Space();
      const bool in_object = (stack_ >> (depth_ - 1)) & 1;
      if (c == ',') {
        state_ = in_object ? kObjKey : kValue;
        return true;
      }
      if (c == '}' || c == ']') return Close(c == '}');
      return false;
    }
    case kString:
      if (utf8_left_ > 0) {
        if (c < utf8_lo_ || c > utf8_hi_) return false;
        --utf8_left_;
        utf8_lo_ = 0x80;
        utf8_hi_ = 0xBF;
        return true;
      }
      if (c == '"') {
        if (key_) {
          state_ = kColon;
        } else {
          EndValue();
        }
        return true;
      }
      if (c == '\\') {
        state_ = kEscape;
        return true;
      }
      if (c < 0x20) return false;
      if (c < 0x80) return true;
      {
        utf8::Lead lead;
        if (!utf8::ParseLead(c, &lead)) return false;
        utf8_left_ = static_cast<uint8_t>(lead.continuation);
        utf8_lo_ = lead.first_lo;
        utf8_hi_ = lead.first_hi;
      }
      return true;
    case kEscape:
      switch (c) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
          state_ = kString;
          return true;
        case 'u':
          state_ = kHex;
          aux_ = 0;
          hex_ = 0;
          return true;
        default: return false;
      }
    case kHex: {
      int v = HexValue(c);
      if (v < 0) return false;
      hex_ = static_cast<uint16_t>(hex_ * 16 + v);
      ++aux_;
      if (low_) {  // must be DC00-DFFF
        if (aux_ == 1 && v != 0xD) return false;
        if (aux_ == 2 && v < 0xC) return false;
      } else if (aux_ == 2 && hex_ >= 0xDC && hex_ <= 0xDF) {
        return false;  // a lone low surrogate
      }
      if (aux_ < 4) return true;
      if (!low_ && hex_ >= 0xD800 && hex_ <= 0xDBFF) {
        state_ = kLowBackslash;
      } else {
        low_ = false;
        state_ = kString;
      }
      return true;
    }
    case kLowBackslash:
      if (c != '\\') return false;
      state_ = kLowU;
      return true;
    case kLowU:
      if (c != 'u') return false;
      state_ = kHex;
      aux_ = 0;
      hex_ = 0;
      low_ = true;
      return true;
    case kNumMinus:
      if (c == '0') {
        state_ = kNumZero;
        aux_ = 1;
        return true;
      }
      if (c >= '1' && c <= '9') {
        state_ = kNumInt;
        aux_ = 1;
        return true;
      }
      return false;
    case kNumZero:
    case kNumInt:
      if (IsDigit(c) && state_ == kNumInt) return aux_++ < kMaxIntDigits;
      if (c == '.') {
        state_ = kNumDot;
        return true;
      }
      if (c == 'e' || c == 'E') {
        state_ = kNumExp;
        return true;
      }
      return EndNumber(c);
    case kNumDot:
      if (!IsDigit(c)) return false;
      state_ = kNumFrac;
      return true;
    case kNumFrac:
      if (IsDigit(c)) return true;
      if (c == 'e' || c == 'E') {
        state_ = kNumExp;
        return true;
      }
      return EndNumber(c);
    case kNumExp:
      if (c == '+' || c == '-') {
        state_ = kNumExpSign;
        return true;
      }
      [[fallthrough]];
    case kNumExpSign:
      if (!IsDigit(c)) return false;
      state_ = kNumExpInt;
      aux_ = 1;
      return true;
    case kNumExpInt:
      if (IsDigit(c)) return aux_++ < kMaxExpDigits;
      return EndNumber(c);
    case kLiteral: {
      std::string_view lit = kLiterals[aux_ / 8];
      size_t pos = aux_ % 8;
      if (c != static_cast<unsigned char>(lit[pos])) return false;
      ++aux_;
      if (pos + 1 == lit.size()) EndValue();
      return true;
    }
    case kDone: return false;
  }
  return false;
}

bool JsonPrefix::Complete() const { return state_ == kDone || (depth_ == 0 && NumberComplete()); }

// The byte the shortest completion continues with (never whitespace, so the space limit cannot block it).
unsigned char JsonPrefix::CompletionByte() const {
  switch (state_) {
    case kStart: return object_only_ ? '{' : '0';
    case kValue: return '0';
    case kArrayFirst: return ']';
    case kObjFirst: return '}';
    case kObjKey: return '"';
    case kColon: return ':';
    case kAfter: return ((stack_ >> (depth_ - 1)) & 1) ? '}' : ']';
    case kString: return utf8_left_ > 0 ? utf8_lo_ : '"';
    case kEscape: return 'n';
    case kHex: return low_ && aux_ == 0 ? 'D' : low_ && aux_ == 1 ? 'C' : '0';
    case kLowBackslash: return '\\';
    case kLowU: return 'u';
    case kNumMinus: case kNumDot: case kNumExp: case kNumExpSign: return '0';
    case kNumZero: case kNumInt: case kNumFrac: case kNumExpInt:
      return ((stack_ >> (depth_ - 1)) & 1) ? '}' : ']';  // depth > 0 here: at depth 0 it is complete
    case kLiteral: return static_cast<unsigned char>(kLiterals[aux_ / 8][aux_ % 8]);
    case kDone: return 0;
  }
  return 0;
}

std::string JsonPrefix::Completion() const {
  std::string out;
  JsonPrefix p = *this;
  // Each byte moves strictly toward the end; the bound only guards against a bug looping forever.
  for (int i = 0; i < 64 * 8 + 16 && !p.Complete(); ++i) {
    unsigned char c = p.CompletionByte();
    if (!p.Push(c)) break;
    out.push_back(static_cast<char>(c));
  }
  return out;
}

}  // namespace pensieve::chat
