#include "engine/sequences.h"

#include <string>

#include "util/error.h"

namespace pensieve::engine {
namespace {

KvBlocksConfig BlocksFor(const model::Model& m) {
  KvBlocksConfig c;
  c.block_tokens = m.kv_block_tokens();
  c.blocks = m.kv_blocks();
  c.max_sequences = m.max_items();
  c.max_context = m.max_context();
  return c;
}

}  // namespace

Sequences::Sequences(model::Model& model) : model_(model), blocks_(BlocksFor(model)) {
  items_.reserve(model.max_items());
  before_.reserve(model.max_items());
}

void Sequences::Append(std::span<const Item> items) {
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    const int64_t n = static_cast<int64_t>(it.tokens.size());
    for (size_t j = 0; j < i; ++j)
      if (!(items[j].seq != it.seq)) throw Error("forward: sequence appears twice in one call");
    if (!(blocks_.CanAppend(it.seq, n)))
      throw Error("forward: sequence " + std::to_string(it.seq) + " cannot take " + std::to_string(n) +
                  " more tokens (KV cache full or context limit " + std::to_string(model_.max_context()) + ")");
  }
  before_.clear();
  items_.clear();
  for (const Item& it : items) before_.emplace_back(it.seq, blocks_.Length(it.seq));
  try {
    for (const Item& it : items) {
      const int64_t start = blocks_.Length(it.seq);
      blocks_.Append(it.seq, static_cast<int64_t>(it.tokens.size()),
                     [this](int32_t from, int32_t to) { model_.CopyKvBlock(from, to); });
      items_.push_back({blocks_.BlockTable(it.seq), start, it.tokens, it.logits});
    }
  } catch (...) {  // the items fit one by one but not together
    Rollback();
    throw;
  }
}

void Sequences::Rollback() {
  for (const auto& [seq, length] : before_) blocks_.Truncate(seq, length);
}

void Sequences::Forward(std::span<const Item> items, std::span<float> logits) {
  Append(items);
  try {
    model_.Forward(items_, logits);
  } catch (...) {
    Rollback();
    throw;
  }
}

void Sequences::Forward(std::span<const Item> items, std::span<const backend::SampleRow> samples,
                        std::span<backend::SampleResult> out) {
  Append(items);
  try {
    model_.Forward(items_, samples, out);
  } catch (...) {
    Rollback();
    throw;
  }
}

void Sequences::GreedyStep(std::span<const int> ids, std::span<const std::span<const int32_t>> tokens,
                           std::span<int32_t> next) {
  std::vector<Item> items(ids.size());
  std::vector<backend::SampleRow> rows(ids.size());
  std::vector<backend::SampleResult> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    items[i] = {ids[i], tokens[i], model::Logits::kLast};
    rows[i].logits_row = static_cast<int64_t>(i);
    rows[i].params.temperature = 0.0f;
  }
  Forward(items, rows, out);
  for (size_t i = 0; i < ids.size(); ++i) next[i] = out[i].id;
}

}  // namespace pensieve::engine
