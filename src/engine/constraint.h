#pragma once
// Constrained decoding: a per-request object that restricts which tokens the sampler may pick, so the output
// is guaranteed to have a shape (a JSON object, a tool call in the model's syntax). The engine consults it on
// its thread, once per generated token:
//   1. Plan(tokens_left): tokens_left >= 1 counts the token about to be produced. Returns the token the
//      output must continue with when the constraint leaves exactly one sensible choice (forced markup,
//      closing brackets when the budget runs out); the engine then emits it without sampling (logprob 0).
//   2. Otherwise the engine samples as usual and asks Allows(token); only when that is false does it build
//      the full mask with Mask() and sample again from the masked logits. (Sampling unconstrained first and
//      resampling on rejection draws from exactly the masked distribution, and keeps the common case cheap.)
//   3. Accept(token) advances the state. Once Complete(), the engine ends the sequence as if it had sampled a
//      stop token (finish reason kStopToken); stop tokens themselves are never allowed before that.
// Allows/Mask answer under the latest Plan(). Implementations are used by one thread at a time.
#include <cstdint>
#include <optional>
#include <span>

namespace pensieve::engine {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  virtual std::optional<int32_t> Plan(int tokens_left) = 0;
  virtual bool Allows(int32_t token) const = 0;
  // allowed.size() == vocabulary size; sets 1 for allowed tokens, 0 for the others.
  virtual void Mask(std::span<uint8_t> allowed) const = 0;
  virtual void Accept(int32_t token) = 0;
  virtual bool Complete() const = 0;
};

}  // namespace pensieve::engine
