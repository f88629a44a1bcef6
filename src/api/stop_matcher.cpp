#include "api/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace pensieve::api {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string StopMatcher::Push(std::string_view text) {
  if (matched_) return "";
  held_.append(text);
  if (stops_.empty()) return std::exchange(held_, std::string());
  // Earliest full match wins (ties: the longer sequence, like the reference servers).
  size_t best = std::string::npos;
  for (const auto& s : stops_) {
    size_t pos = held_.find(s);
    if (pos != std::string::npos && (pos < best || (pos == best && s.size() > matched_sequence_.size()))) {
      best = pos;
      matched_sequence_ = s;
    }
  }
  if (best != std::string::npos) {
    matched_ = true;
    std::string out = held_.substr(0, best);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix of held_ that is a proper prefix of some stop sequence.
  size_t keep = 0;
  for (const auto& s : stops_) {
    size_t max_len = std::min(s.size() - 1, held_.size());
    for (size_t len = max_len; len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::Flush() {
  if (matched_) return "";
  return std::exchange(held_, std::string());
}

}  // namespace pensieve::api
