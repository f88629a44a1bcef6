#pragma once
// Test helper (header-only: test folders glob *_test.cpp): the demo model run as transformers' generate runs it
// (render with its chat template, tokenize, greedy-decode), on any backend; and the JSON-lines fixtures.
#include <zlib.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "engine/sequences.h"
#include "model/model.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace pensieve::test {

using chat::Json;

inline std::string ModelsDir() { return test::FixturesDir() + "/../../models"; }

inline std::vector<Json> ReadJsonLines(const std::string& path) {
  std::string text;
  if (path.ends_with(".gz")) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot open " + path);
    char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) text.append(buf, n);
    gzclose(f);
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<Json> rows;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    if (nl > pos) rows.push_back(Json::parse(text.begin() + pos, text.begin() + nl));
    pos = nl + 1;
  }
  return rows;
}

// One loaded model with its tokenizer and chat template; greedy generation as transformers' generate does it
// (argmax, first index on ties; stop at an eos id from generation_config: <|im_end|> or <|endoftext|>).
class DemoRunner {
 public:
  DemoRunner(const std::string& dir, std::unique_ptr<backend::Backend> backend, int64_t max_context = 16384)
      : backend_(std::move(backend)) {
    model::LoadOptions opts;
    opts.max_sequences = 2;
    opts.max_context = max_context;
    opts.max_batch_tokens = 256;
    // KV: layers * 2 * kv_dim floats per token.
    opts.kv_budget_bytes = std::max<int64_t>(int64_t{256} << 20, max_context * 6 * 2 * 128 * 4);
    model_ = model::Model::Load(dir, *backend_, opts);
    seqs_ = std::make_unique<engine::Sequences>(*model_);
    tokenizer_ = LoadTokenizer(dir);
    auto source = chat::FindChatTemplate(dir);
    if (!source) throw std::runtime_error(dir + " has no chat template");
    template_ = std::make_unique<chat::ChatTemplate>(*source);
  }

  std::vector<int32_t> RenderIds(const Json& messages, const Json& tools) const {
    chat::RenderInput in;
    in.messages = messages;
    in.tools = tools;
    in.add_generation_prompt = true;
    in.bos_token = tokenizer_->bos_token();
    in.eos_token = tokenizer_->eos_token();
    return tokenizer_->Encode(template_->Render(in), /*add_special=*/false);
  }

  // Greedy ids (the stopping eos id included, as transformers returns it).
  std::vector<int32_t> Generate(const std::vector<int32_t>& prompt, int max_new) {
    const int64_t vocab = model_->config().vocab_size;
    std::vector<float> logits(vocab);
    int seq = seqs_->New();
    engine::Sequences::Item item{seq, prompt};
    seqs_->Forward(std::span(&item, 1), logits);
    prompt_tokens_ += static_cast<int64_t>(prompt.size());
    std::vector<int32_t> out;
    for (int i = 0; i < max_new; ++i) {
      int32_t best = 0;
      for (int64_t v = 1; v < vocab; ++v)
        if (logits[v] > logits[best]) best = static_cast<int32_t>(v);
      out.push_back(best);
      bool eos = false;
      for (int64_t e : model_->config().eos_token_ids) eos |= e == best;
      if (eos || i + 1 == max_new) break;
      engine::Sequences::Item step{seq, std::span<const int32_t>(&out.back(), 1)};
      seqs_->Forward(std::span(&step, 1), logits);
    }
    seqs_->Free(seq);
    return out;
  }

  // The answer text: output up to (not including) the first eos id.
  std::string Answer(std::vector<int32_t> ids) const {
    for (size_t i = 0; i < ids.size(); ++i) {
      for (int64_t e : model_->config().eos_token_ids) {
        if (ids[i] == e) {
          ids.resize(i);
          return tokenizer_->Decode(ids, /*skip_special=*/false);
        }
      }
    }
    return tokenizer_->Decode(ids, false);
  }

  int64_t prompt_tokens() const { return prompt_tokens_; }
  const model::Model& model() const { return *model_; }

 private:
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<engine::Sequences> seqs_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<chat::ChatTemplate> template_;
  int64_t prompt_tokens_ = 0;
};

}  // namespace pensieve::test
