#include "cli/stop_tokens.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "util/file.h"

namespace pensieve::cli {

std::vector<int32_t> StopTokens(const std::string& model_dir, const Tokenizer& tok) {
  std::vector<int32_t> ids;
  auto add = [&](int64_t id) {
    if (id >= 0 && id < tok.vocab_size() && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(static_cast<int32_t>(id));
  };
  if (auto eos = tok.eos_id()) add(*eos);
  if (const std::string path = model_dir + "/generation_config.json"; PathPresent(path)) {
    auto j = nlohmann::json::parse(ReadRegularFile(path), nullptr, false);
    if (j.is_object() && j.contains("eos_token_id")) {
      if (j["eos_token_id"].is_number_integer()) add(j["eos_token_id"].get<int64_t>());
      if (j["eos_token_id"].is_array()) {
        for (auto& v : j["eos_token_id"]) {
          if (v.is_number_integer()) add(v.get<int64_t>());
        }
      }
    }
  }
  for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"}) {
    if (auto id = tok.TokenId(t); id && tok.IsSpecial(*id)) add(*id);
  }
  return ids;
}

}  // namespace pensieve::cli
