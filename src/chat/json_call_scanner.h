#pragma once
// Character-at-a-time scanners for tool calls written as JSON, used by the output parsers.
//
// JsonValueSkipper finds where one JSON value ends without building it (brackets matched, strings and
// escapes honoured); JsonCallScanner reads one call object {"name": ..., "arguments"|"parameters": ...}
// and turns it into kToolStart / kToolArgs / kToolEnd events, streaming an object-valued argument as its raw
// text while it arrives. Both are fed one char at a time so the result cannot depend on chunking.
#include <string>
#include <utility>
#include <vector>

#include "chat/output_parser.h"

namespace pensieve::chat {

class JsonValueSkipper {
 public:
  enum class Status {
    kMore,         // c belongs to the value, which goes on
    kDone,         // c was the last char of the value
    kEndedBefore,  // the value (a bare literal) ended before c; c is not part of it
    kError,        // c cannot start or continue a JSON value
  };
  void Reset();
  Status Push(char c);
  bool started() const { return kind_ != Kind::kNone; }
  char first() const { return first_; }

 private:
  enum class Kind { kNone, kContainer, kString, kLiteral };
  Kind kind_ = Kind::kNone;
  std::string stack_;  // open '{' / '['
  bool in_string_ = false;
  bool escape_ = false;
  char first_ = 0;
};

class JsonCallScanner {
 public:
  enum class Status { kMore, kDone, kError };
  // require_args: the object is a call only if it has an arguments/parameters key (Llama's bare JSON,
  // where a plain JSON answer must stay text).
  void Reset(bool require_args);
  Status Push(char c);
  // Events produced by the last Push()es (moved out).
  std::vector<OutputEvent> TakeEvents() { return std::exchange(events_, {}); }
  bool started() const { return started_; }

 private:
  enum class State { kStart, kKeyOrEnd, kKey, kColon, kValue, kAfterValue, kDone };
  enum class Target { kSkip, kName, kArgs };

  Status OnKeyDone();
  Status BeginValue(char c);
  Status EndValue();
  Status CloseObject();
  void Start();

  State state_ = State::kStart;
  bool require_args_ = false;
  int nest_ = 0;  // depth inside {"function": {...}} wrappers
  std::string key_raw_;
  bool key_escape_ = false;
  Target target_ = Target::kSkip;
  JsonValueSkipper value_;
  std::string value_raw_;  // captured value text (name, string arguments, deferred arguments)
  bool streaming_args_ = false;
  std::string name_;
  bool have_name_ = false;
  bool args_seen_ = false;
  std::string args_;  // arguments held until the name is known
  bool started_ = false;
  std::vector<OutputEvent> events_;
};

}  // namespace pensieve::chat
