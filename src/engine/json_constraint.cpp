#include "engine/json_constraint.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "util/error.h"

namespace pensieve::engine {
namespace {

class JsonConstraint final : public TokenConstraint {
 public:
  JsonConstraint(JsonShape shape, std::shared_ptr<const TokenBytes> tokens, std::vector<int32_t> stops)
      : openers_(std::move(shape.openers)), closer_(std::move(shape.closer)), tokens_(std::move(tokens)),
        stops_(std::move(stops)) {
    Require(tokens_ != nullptr, "json constraint: no token table");
    Require(!openers_.empty(), "json constraint: no opener");
    std::sort(openers_.begin(), openers_.end());
    for (size_t i = 0; i + 1 < openers_.size(); ++i) {
      Require(openers_[i + 1].compare(0, openers_[i].size(), openers_[i]) != 0,
              "json constraint: opener '" + openers_[i] + "' is a prefix of '" + openers_[i + 1] + "'");
    }
    state_.json = chat::JsonPrefix(shape.json);
    state_.hi = static_cast<uint32_t>(openers_.size());
    if (openers_.size() == 1 && openers_[0].empty()) state_.seg = State::kJson;
  }

  std::optional<int32_t> Plan(int tokens_left) override {
    forced_ = -1;
    const long need = static_cast<long>(Need(state_));
    const long spare = static_cast<long>(tokens_left) - 1 - need;
    const size_t len = spare > 0 ? static_cast<size_t>(spare / chat::JsonPrefix::kMaxCompletionGrowth) : 0;
    const bool closing = len == 0;
    max_len_ = closing ? 1 : len;
    std::string fixed = FixedText(state_, closing);
    if (!fixed.empty()) {
      int32_t t = tokens_->LongestPrefixToken(fixed);
      State probe = state_;
      if (t >= 0 && !IsStop(t) && FeedToken(probe, t)) {
        forced_ = t;
        return t;
      }
    }
    return std::nullopt;
  }

  bool Allows(int32_t t) const override {
    if (forced_ >= 0) return t == forced_;
    if (t < 0 || t >= tokens_->size() || !(tokens_->flags(t) & TokenBytes::kUsable) || IsStop(t)) return false;
    if (tokens_->bytes(t).size() > max_len_) return false;
    State probe = state_;
    return FeedToken(probe, t);
  }

  void Mask(std::span<uint8_t> allowed) const override {
    std::fill(allowed.begin(), allowed.end(), 0);
    const int n = std::min<int>(static_cast<int>(allowed.size()), tokens_->size());
    if (forced_ >= 0) {
      if (forced_ < n) allowed[forced_] = 1;
      return;
    }
    // Prefilters: which first bytes can continue, and, when those are few (structural positions, where most
    // candidates are " word" tokens), which first two bytes. Each costs at most 256 * 33 single-byte pushes.
    std::array<uint8_t, 256> first_ok{};
    int n_first = 0;
    for (int b = 0; b < 256; ++b) {
      State probe = state_;
      first_ok[b] = Feed(probe, static_cast<unsigned char>(b), false);
      n_first += first_ok[b];
    }
    const bool pairs = n_first <= 32;
    if (pairs) {
      pair_ok_.resize(65536);
      for (int b0 = 0; b0 < 256; ++b0) {
        if (!first_ok[b0]) continue;
        State after = state_;
        Feed(after, static_cast<unsigned char>(b0), false);
        for (int b1 = 0; b1 < 256; ++b1) {
          State probe = after;
          pair_ok_[b0 * 256 + b1] = Feed(probe, static_cast<unsigned char>(b1), false);
        }
      }
    }
    const bool plain = state_.seg == State::kJson && state_.json.InPlainString();
    for (int t = 0; t < n; ++t) {
      const uint8_t f = tokens_->flags(t);
      if (!(f & TokenBytes::kUsable)) continue;
      std::string_view b = tokens_->bytes(t);
      if (b.size() > max_len_) continue;
      if (plain && (f & TokenBytes::kPlainString)) {  // stays inside the string: no need to push it
        allowed[t] = 1;
        continue;
      }
      if (!(f & TokenBytes::kSpecial)) {
        const unsigned char b0 = static_cast<unsigned char>(b[0]);
        if (!first_ok[b0]) continue;
        if (pairs && b.size() >= 2 && !pair_ok_[b0 * 256 + static_cast<unsigned char>(b[1])]) continue;
      }
      State probe = state_;
      allowed[t] = FeedToken(probe, t);
    }
    for (int32_t s : stops_) {
      if (s >= 0 && s < n) allowed[s] = 0;
    }
  }

  void Accept(int32_t t) override {
    // The engine only accepts allowed tokens; anything else leaves the state as it was.
    State next = state_;
    if (t >= 0 && t < tokens_->size() && (tokens_->flags(t) & TokenBytes::kUsable) && FeedToken(next, t)) state_ = next;
    forced_ = -1;
  }

  bool Complete() const override { return state_.seg == State::kEnd; }

 private:
  struct State {
    enum Seg : uint8_t { kOpener, kJson, kCloser, kEnd };
    Seg seg = kOpener;
    uint32_t pos = 0;        // bytes of the opener / closer matched
    uint32_t lo = 0, hi = 0;  // openers_[lo, hi) still match (they share their first pos bytes)
    chat::JsonPrefix json;
  };

  bool IsStop(int32_t t) const { return std::find(stops_.begin(), stops_.end(), t) != stops_.end(); }

  bool Feed(State& s, unsigned char c, bool special) const {
    switch (s.seg) {
      case State::kOpener: {
        uint32_t lo = s.lo;
        while (lo < s.hi && !(openers_[lo].size() > s.pos && static_cast<unsigned char>(openers_[lo][s.pos]) == c)) ++lo;
        if (lo == s.hi) return false;
        uint32_t hi = lo + 1;
        while (hi < s.hi && openers_[hi].size() > s.pos && static_cast<unsigned char>(openers_[hi][s.pos]) == c) ++hi;
        s.lo = lo;
        s.hi = hi;
        ++s.pos;
        if (hi - lo == 1 && openers_[lo].size() == s.pos) {
          s.seg = State::kJson;
          s.pos = 0;
        }
        return true;
      }
      case State::kJson:
        if (special || !s.json.Push(c)) return false;
        if (s.json.Complete()) {
          s.seg = closer_.empty() ? State::kEnd : State::kCloser;
          s.pos = 0;
        }
        return true;
      case State::kCloser:
        if (static_cast<unsigned char>(closer_[s.pos]) != c) return false;
        if (++s.pos == closer_.size()) s.seg = State::kEnd;
        return true;
      case State::kEnd: return false;
    }
    return false;
  }

  bool FeedToken(State& s, int32_t t) const {
    const bool special = tokens_->flags(t) & TokenBytes::kSpecial;
    for (char c : tokens_->bytes(t)) {
      if (!Feed(s, static_cast<unsigned char>(c), special)) return false;
    }
    return true;
  }

  // Bytes still required to complete from s.
  size_t Need(const State& s) const {
    switch (s.seg) {
      case State::kOpener: {
        size_t shortest = SIZE_MAX;
        for (uint32_t i = s.lo; i < s.hi; ++i) shortest = std::min(shortest, openers_[i].size() - s.pos);
        return shortest + 2 + closer_.size();  // + "{}"
      }
      case State::kJson: return s.json.Completion().size() + closer_.size();
      case State::kCloser: return closer_.size() - s.pos;
      case State::kEnd: return 0;
    }
    return 0;
  }

  // The bytes that must come next whatever the model prefers (empty when it has a choice).
  std::string FixedText(const State& s, bool closing) const {
    switch (s.seg) {
      case State::kOpener: {
        const std::string& a = openers_[s.lo];
        const std::string& b = openers_[s.hi - 1];
        size_t n = s.pos;
        while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
        return a.substr(s.pos, n - s.pos);
      }
      case State::kJson: return closing ? s.json.Completion() + closer_ : std::string();
      case State::kCloser: return closer_.substr(s.pos);
      case State::kEnd: return {};
    }
    return {};
  }

  std::vector<std::string> openers_;
  std::string closer_;
  std::shared_ptr<const TokenBytes> tokens_;
  std::vector<int32_t> stops_;
  State state_;
  int32_t forced_ = -1;
  size_t max_len_ = SIZE_MAX;
  mutable std::vector<uint8_t> pair_ok_;  // Mask() scratch: [first byte * 256 + second byte] can continue
};

}  // namespace

std::unique_ptr<TokenConstraint> MakeJsonConstraint(JsonShape shape, std::shared_ptr<const TokenBytes> tokens,
                                                    std::vector<int32_t> stop_tokens) {
  return std::make_unique<JsonConstraint>(std::move(shape), std::move(tokens), std::move(stop_tokens));
}

}  // namespace pensieve::engine
