#include "chat/json_call_scanner.h"

#include <cctype>
#include <nlohmann/json.hpp>

namespace pensieve::chat {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

bool IsLiteralChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.';
}

// Decodes a complete JSON string token; false when it is not one.
bool DecodeString(const std::string& raw, std::string* out) {
  try {
    nlohmann::json j = nlohmann::json::parse(raw);
    if (!j.is_string()) return false;
    *out = j.get<std::string>();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

void JsonValueSkipper::Reset() { *this = JsonValueSkipper(); }

JsonValueSkipper::Status JsonValueSkipper::Push(char c) {
  switch (kind_) {
    case Kind::kNone:
      first_ = c;
      if (c == '{' || c == '[') {
        kind_ = Kind::kContainer;
        stack_.push_back(c);
        return Status::kMore;
      }
      if (c == '"') {
        kind_ = Kind::kString;
        return Status::kMore;
      }
      if (IsLiteralChar(c)) {
        kind_ = Kind::kLiteral;
        return Status::kMore;
      }
      return Status::kError;
    case Kind::kString:
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        return Status::kDone;
      }
      return Status::kMore;
    case Kind::kLiteral:
      return IsLiteralChar(c) ? Status::kMore : Status::kEndedBefore;
    case Kind::kContainer:
      if (in_string_) {
        if (escape_) {
          escape_ = false;
        } else if (c == '\\') {
          escape_ = true;
        } else if (c == '"') {
          in_string_ = false;
        }
        return Status::kMore;
      }
      if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        stack_.push_back(c);
      } else if (c == '}' || c == ']') {
        char open = c == '}' ? '{' : '[';
        if (stack_.back() != open) return Status::kError;
        stack_.pop_back();
        if (stack_.empty()) return Status::kDone;
      }
      return Status::kMore;
  }
  return Status::kError;
}

void JsonCallScanner::Reset(bool require_args) {
  *this = JsonCallScanner();
  require_args_ = require_args;
}

void JsonCallScanner::Start() {
  started_ = true;
  events_.push_back({OutputEvent::Kind::kToolStart, name_});
}

JsonCallScanner::Status JsonCallScanner::Push(char c) {
  switch (state_) {
    case State::kStart:
      if (IsSpace(c)) return Status::kMore;
      if (c != '{') return Status::kError;
      state_ = State::kKeyOrEnd;
      return Status::kMore;
    case State::kKeyOrEnd:
      if (IsSpace(c)) return Status::kMore;
      if (c == '}') return CloseObject();
      if (c != '"') return Status::kError;
      key_raw_.assign(1, '"');
      key_escape_ = false;
      state_ = State::kKey;
      return Status::kMore;
    case State::kKey:
      key_raw_.push_back(c);
      if (key_escape_) {
        key_escape_ = false;
      } else if (c == '\\') {
        key_escape_ = true;
      } else if (c == '"') {
        state_ = State::kColon;
      } else if (key_raw_.size() > 1024) {
        return Status::kError;
      }
      return Status::kMore;
    case State::kColon:
      if (IsSpace(c)) return Status::kMore;
      if (c != ':') return Status::kError;
      return OnKeyDone();
    case State::kValue: {
      if (!value_.started()) {
        if (IsSpace(c)) return Status::kMore;
        return BeginValue(c);
      }
      JsonValueSkipper::Status st = value_.Push(c);
      if (st == JsonValueSkipper::Status::kError) return Status::kError;
      if (st == JsonValueSkipper::Status::kEndedBefore) {
        Status s = EndValue();
        if (s != Status::kMore) return s;
        return Push(c);  // c belongs to what follows the value
      }
      if (streaming_args_) {
        events_.push_back({OutputEvent::Kind::kToolArgs, std::string(1, c)});
      } else if (target_ != Target::kSkip) {
        value_raw_.push_back(c);
      }
      if (st == JsonValueSkipper::Status::kDone) return EndValue();
      return Status::kMore;
    }
    case State::kAfterValue:
      if (IsSpace(c)) return Status::kMore;
      if (c == ',') {
        state_ = State::kKeyOrEnd;
        return Status::kMore;
      }
      if (c == '}') return CloseObject();
      return Status::kError;
    case State::kDone:
      return Status::kError;
  }
  return Status::kError;
}

JsonCallScanner::Status JsonCallScanner::OnKeyDone() {
  std::string key;
  if (!DecodeString(key_raw_, &key)) return Status::kError;
  if (key == "name" && !have_name_) {
    target_ = Target::kName;
  } else if ((key == "arguments" || key == "parameters") && !args_seen_) {
    target_ = Target::kArgs;
  } else if (key == "function" && nest_ == 0 && !have_name_) {
    // OpenAI-style wrapper {"type": "function", "function": {"name": ..., "arguments": ...}}: descend.
    target_ = Target::kSkip;
    state_ = State::kStart;
    ++nest_;
    return Status::kMore;
  } else {
    target_ = Target::kSkip;
  }
  state_ = State::kValue;
  value_.Reset();
  value_raw_.clear();
  streaming_args_ = false;
  return Status::kMore;
}

JsonCallScanner::Status JsonCallScanner::BeginValue(char c) {
  if (value_.Push(c) == JsonValueSkipper::Status::kError) return Status::kError;
  if (target_ == Target::kName && c != '"') return Status::kError;
  if (target_ == Target::kArgs) {
    args_seen_ = true;
    if (c == '{' && have_name_) {
      if (!started_) Start();
      streaming_args_ = true;
      events_.push_back({OutputEvent::Kind::kToolArgs, std::string(1, c)});
      return Status::kMore;
    }
  }
  if (target_ != Target::kSkip) value_raw_.push_back(c);
  return Status::kMore;
}

JsonCallScanner::Status JsonCallScanner::EndValue() {
  state_ = State::kAfterValue;
  if (target_ == Target::kName) {
    if (!DecodeString(value_raw_, &name_) || name_.empty()) return Status::kError;
    have_name_ = true;
  } else if (target_ == Target::kArgs && !streaming_args_) {
    if (value_.first() == '"') {
      // Arguments given as a string holding JSON (some templates and models do this): report its content.
      if (!DecodeString(value_raw_, &args_)) return Status::kError;
    } else {
      args_ = value_raw_;
    }
  }
  streaming_args_ = false;
  value_raw_.clear();
  return Status::kMore;
}

JsonCallScanner::Status JsonCallScanner::CloseObject() {
  if (nest_ > 0) {
    --nest_;
    state_ = State::kAfterValue;
    return Status::kMore;
  }
  if (!have_name_) return Status::kError;
  if (require_args_ && !args_seen_) return Status::kError;
  if (!started_) {
    Start();
    events_.push_back({OutputEvent::Kind::kToolArgs, args_seen_ && !args_.empty() ? args_ : "{}"});
  }
  events_.push_back({OutputEvent::Kind::kToolEnd, ""});
  state_ = State::kDone;
  return Status::kDone;
}

}  // namespace pensieve::chat
