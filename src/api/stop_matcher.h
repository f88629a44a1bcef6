#pragma once
// Text-level stop sequences across token boundaries. Text is pushed in arbitrary pieces; what is returned is
// final. A suffix that could still become a stop sequence is held back; a matched stop sequence and
// everything after it is never returned.
#include <string>
#include <string_view>
#include <vector>

namespace pensieve::api {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Returns the text that is now safe to emit. After a match, matched() is true and further input is ignored.
  std::string Push(std::string_view text);
  // End of generation: releases the held-back text (it did not become a stop sequence).
  std::string Flush();
  bool matched() const { return matched_; }
  const std::string& matched_sequence() const { return matched_sequence_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
  std::string matched_sequence_;
};

}  // namespace pensieve::api
