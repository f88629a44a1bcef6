#include "api/detokenizer.h"

#include <span>

namespace pensieve::api {

bool EndsIncomplete(const std::string& s) {
  if (s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0) return true;
  // Walk back over continuation bytes to the last lead byte and check its sequence is complete.
  size_t n = s.size();
  size_t i = n;
  int cont = 0;
  while (i > 0 && cont < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++cont;
  }
  if (i == 0) return cont > 0;
  unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  int need = lead < 0x80 ? 0 : (lead >> 5) == 0x6 ? 1 : (lead >> 4) == 0xE ? 2 : (lead >> 3) == 0x1E ? 3 : 0;
  return cont < need;
}

std::string Detokenizer::DecodeRange(size_t begin, size_t end) const {
  if (begin >= end) return "";
  return tokenizer_.Decode(std::span<const int32_t>(ids_.data() + begin, end - begin), false);
}

std::string Detokenizer::Push(int32_t id) {
  ids_.push_back(id);
  std::string context = DecodeRange(prefix_, read_);
  std::string full = DecodeRange(prefix_, ids_.size());
  if (full.size() <= context.size() || EndsIncomplete(full)) return "";
  std::string out = full.substr(context.size());
  prefix_ = read_;
  read_ = ids_.size();
  return out;
}

std::string Detokenizer::Flush() {
  std::string context = DecodeRange(prefix_, read_);
  std::string full = DecodeRange(prefix_, ids_.size());
  read_ = prefix_ = ids_.size();
  return full.size() > context.size() ? full.substr(context.size()) : "";
}

}  // namespace pensieve::api
