#pragma once
// A TokenConstraint (constraint.h) for outputs of the shape  opener JSON-object closer , then the end:
//   - opener: one of several texts (e.g. a tool call's markup and name, one per tool: the model chooses);
//     none may be a prefix of another. {""} for none.
//   - a JSON object, byte-exact per chat::JsonPrefix (depth cap, whitespace runs bounded);
//   - closer: fixed text (e.g. "}\n</tool_call>"); then Complete().
// Tokens are judged by their bytes (TokenBytes): a token is allowed when all its bytes continue the shape.
// Special tokens are allowed only inside the opener/closer (markup such as <tool_call>), never inside JSON.
// Stop tokens are never allowed: the engine ends the sequence itself once Complete().
//
// Forcing (Plan returns a token): whenever the next bytes are fixed (a common prefix of the remaining openers,
// the closer) the longest token spelling a prefix of them is emitted, so markup costs as few steps as it can.
//
// Budget: the output is guaranteed to complete within tokens_left when that is possible at all. need = bytes
// still required (shortest opener rest + "{}" + closer, or JsonPrefix::Completion() + closer); one byte of
// JSON grows need by at most JsonPrefix::kMaxCompletionGrowth, so tokens longer than
// (tokens_left - 1 - need) / kMaxCompletionGrowth bytes are masked; when no length is left the completion
// itself is forced, one token per step at worst (the vocabulary is assumed to hold single-byte ASCII tokens).
//
// Mask cost: one pass over the vocabulary; tokens are rejected by their first byte from a 256-entry table,
// and inside a JSON string plain-text tokens (TokenBytes::kPlainString) are accepted without being pushed.
#include <memory>
#include <string>
#include <vector>

#include "chat/json_prefix.h"
#include "engine/constraint.h"
#include "engine/token_bytes.h"

namespace pensieve::engine {

struct JsonShape {
  std::vector<std::string> openers = {""};
  chat::JsonPrefix::Options json;
  std::string closer;
};

// Throws Error when the openers are empty or one is a prefix of another.
std::unique_ptr<TokenConstraint> MakeJsonConstraint(JsonShape shape, std::shared_ptr<const TokenBytes> tokens,
                                                    std::vector<int32_t> stop_tokens);

}  // namespace pensieve::engine
