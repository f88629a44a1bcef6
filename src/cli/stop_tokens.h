#pragma once
// Which token ids end a generation for a model directory: shared by `pensieve serve` (its stop list) and
// `pensieve random-model --stop-after` (the tokens it makes likely), so both name the same tokens.
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pensieve::cli {

// EOS and end-of-turn tokens, deduplicated, in this order: the tokenizer's EOS, generation_config.json's
// eos_token_id (int or list) from `model_dir` when present, then the end-of-turn markers of the common chat
// formats (<|im_end|>, <|eot_id|>, <|eom_id|>, <|end|>, <end_of_turn>, <|endoftext|>) that the vocabulary has
// as special tokens. Ids outside the vocabulary are skipped; a malformed generation_config.json is ignored.
std::vector<int32_t> StopTokens(const std::string& model_dir, const Tokenizer& tok);

}  // namespace pensieve::cli
