#pragma once
// The sampling a model directory recommends, from its generation_config.json, for `pensieve serve`.
#include <string>

#include "api/chat_request.h"

namespace pensieve::cli {

// do_sample false -> temperature 0 (greedy: what transformers' generate() does with that file); otherwise the
// file's temperature, top_p, top_k and min_p where present and in range. No file, or a malformed one: none.
api::SamplingDefaults ReadSamplingDefaults(const std::string& model_dir);

// "temperature 0.6, top_p 0.95" or "none", for the startup line.
std::string Describe(const api::SamplingDefaults& d);

}  // namespace pensieve::cli
