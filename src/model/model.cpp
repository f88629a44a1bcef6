#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace pensieve::model {

std::unique_ptr<Model> Model::Load(const std::string& path, backend::Backend& backend, const LoadOptions& opts) {
  ModelConfig config = LoadModelConfig(path);
  TensorStore store = TensorStore::Open(path);
  return std::unique_ptr<Model>(new Model(backend, std::move(config), std::move(store), opts));
}

std::unique_ptr<Model> Model::Load(const std::string& config_dir, TensorStore store, backend::Backend& backend,
                                   const LoadOptions& opts) {
  ModelConfig config = LoadModelConfig(config_dir);
  return std::unique_ptr<Model>(new Model(backend, std::move(config), std::move(store), opts));
}

Model::Model(backend::Backend& backend, ModelConfig config, TensorStore store, const LoadOptions& opts)
    : backend_(backend), config_(std::move(config)), store_(std::move(store)) {
  const ModelConfig& c = config_;
  if (!(c.hidden_act == Activation::kSilu || c.hidden_act == Activation::kGeluTanh))
    throw Error(store_.path() + ": config.json: hidden_act not supported (silu, gelu_pytorch_tanh)");
  if (!(c.head_dim <= 1024 && c.rotary_dim <= c.head_dim && c.rotary_dim % 2 == 0))
    throw Error(store_.path() + ": config.json: head_dim/rotary_dim out of range");
  if (!(c.num_attention_heads % c.num_key_value_heads == 0))
    throw Error(store_.path() + ": config.json: num_attention_heads not a multiple of num_key_value_heads");
  weights_ = BindWeights(c, store_);

  max_context_ = opts.max_context > 0 ? opts.max_context : c.max_position_embeddings;
  if (max_context_ <= 0) max_context_ = 4096;
  max_rows_ = std::max(1, opts.max_batch_tokens);

  backend::KvCacheConfig kv;
  kv.layers = static_cast<int>(c.num_hidden_layers);
  kv.kv_heads = static_cast<int>(c.num_key_value_heads);
  kv.head_dim = static_cast<int>(c.head_dim);
  kv.block_tokens = opts.kv_block_tokens;
  kv.budget_bytes = opts.kv_budget_bytes;
  kv.max_sequences = opts.max_sequences;
  kv.max_context = max_context_;
  kv_ = backend_.CreateKvCache(kv);

  for (double f : c.RopeInvFreq(0)) inv_freq_short_.push_back(static_cast<float>(f));
  if (c.rope_scaling.type == RopeType::kLongRope) {
    for (double f : c.RopeInvFreq(c.rope_scaling.original_max_position_embeddings + 1))
      inv_freq_long_.push_back(static_cast<float>(f));
  }

  const int64_t widest = std::max({c.hidden_size, c.intermediate_size, c.q_dim()});
  backend_.Reserve({max_rows_, widest, max_context_});
  const int64_t R = max_rows_;
  x_.resize(R * c.hidden_size);
  xb_.resize(R * c.hidden_size);
  q_.resize(R * c.q_dim());
  k_.resize(R * c.kv_dim());
  v_.resize(R * c.kv_dim());
  att_.resize(R * c.q_dim());
  gate_.resize(R * c.intermediate_size);
  up_.resize(R * c.intermediate_size);
  out_.resize(R * c.hidden_size);
  for (auto* v : {&tokens_, &seqs_, &pos_}) v->reserve(R);
  long_rope_.reserve(R);
  logit_rows_.reserve(R);
}

int Model::NewSequence() { return kv_->NewSequence(); }
void Model::FreeSequence(int seq) { kv_->Free(seq); }
int Model::ForkSequence(int seq, int64_t n) { return kv_->Fork(seq, n); }
int Model::SequenceLength(int seq) const { return static_cast<int>(kv_->Length(seq)); }
bool Model::CanAppend(int seq, int n) const { return kv_->CanAppend(seq, n); }

int64_t Model::LogitRows(std::span<const ForwardItem> items) {
  int64_t rows = 0;
  for (const ForwardItem& it : items) rows += it.all_logits ? static_cast<int64_t>(it.tokens.size()) : 1;
  return rows;
}

void Model::Forward(std::span<const ForwardItem> items, std::span<float> logits) {
  const int64_t vocab = config_.vocab_size;
  // Validate everything before touching the cache.
  if (!(static_cast<int64_t>(logits.size()) >= LogitRows(items) * vocab))
    throw Error("forward: logits buffer too small");
  for (size_t i = 0; i < items.size(); ++i) {
    const ForwardItem& it = items[i];
    if (!(!it.tokens.empty())) throw Error("forward: item " + std::to_string(i) + " has no tokens");
    for (size_t j = 0; j < i; ++j)
      if (!(items[j].seq != it.seq)) throw Error("forward: sequence appears twice in one call");
    if (!(kv_->CanAppend(it.seq, static_cast<int64_t>(it.tokens.size()))))
      throw Error("forward: sequence " + std::to_string(it.seq) + " cannot take " + std::to_string(it.tokens.size()) +
                  " more tokens (KV cache full or context limit " + std::to_string(max_context_) + ")");
    for (int32_t id : it.tokens)
      if (!(id >= 0 && id < vocab))
        throw Error("forward: token id " + std::to_string(id) + " outside vocabulary of " + std::to_string(vocab));
  }
  // Flatten the batch: one row per token, with its sequence and position.
  tokens_.clear(), seqs_.clear(), pos_.clear(), long_rope_.clear(), logit_rows_.clear();
  const int64_t orig = config_.rope_scaling.original_max_position_embeddings;
  for (const ForwardItem& it : items) {
    const int64_t start = kv_->Length(it.seq), n = static_cast<int64_t>(it.tokens.size());
    kv_->Append(it.seq, n);
    // transformers' longrope picks long factors when this call's max position + 1 exceeds the original context.
    const bool use_long = !inv_freq_long_.empty() && start + n > orig;
    for (int64_t j = 0; j < n; ++j) {
      if (it.all_logits || j == n - 1) logit_rows_.push_back(static_cast<int64_t>(tokens_.size()));
      tokens_.push_back(it.tokens[j]);
      seqs_.push_back(it.seq);
      pos_.push_back(static_cast<int32_t>(start + j));
      long_rope_.push_back(use_long);
    }
  }
  // Run in chunks of at most max_rows_ rows; causal order makes chunking exact.
  const int64_t total = static_cast<int64_t>(tokens_.size());
  for (int64_t begin = 0; begin < total; begin += max_rows_)
    ForwardChunk(begin, std::min(total, begin + max_rows_), logits);
}

void Model::ForwardChunk(int64_t begin, int64_t end, std::span<float> logits) {
  const ModelConfig& c = config_;
  const int64_t T = end - begin, H = c.hidden_size;
  // Token embeddings.
  backend_.Embed(weights_.embed, std::span<const int32_t>(tokens_).subspan(begin, T), x_.data());
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) Layer(layer, begin, T);
  // Final norm and lm_head, only for the rows whose logits are wanted.
  auto first = std::lower_bound(logit_rows_.begin(), logit_rows_.end(), begin);
  auto last = std::lower_bound(logit_rows_.begin(), logit_rows_.end(), end);
  const int64_t R = last - first;
  if (R == 0) return;
  for (int64_t r = 0; r < R; ++r) std::copy_n(x_.data() + (first[r] - begin) * H, H, xb_.data() + r * H);
  backend_.RmsNorm(xb_.data(), weights_.final_norm.data(), R, H, static_cast<float>(c.rms_norm_eps), xb_.data());
  const int64_t out_row = first - logit_rows_.begin();
  backend_.MatMul(xb_.data(), R, weights_.lm_head, nullptr, logits.data() + out_row * c.vocab_size);
}

static const float* Bias(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }

void Model::Layer(int layer, int64_t begin, int64_t T) {
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_.layers[layer];
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int nh = static_cast<int>(c.num_attention_heads), nkv = static_cast<int>(c.num_key_value_heads);
  const int hd = static_cast<int>(c.head_dim);
  const float eps = static_cast<float>(c.rms_norm_eps);

  // Attention block: norm, q/k/v projections.
  backend_.RmsNorm(x_.data(), L.attn_norm.data(), T, H, eps, xb_.data());
  const backend::MatMulOut qkv[3] = {
      {L.wq, Bias(L.bq), q_.data()}, {L.wk, Bias(L.bk), k_.data()}, {L.wv, Bias(L.bv), v_.data()}};
  backend_.MatMulMulti(xb_.data(), T, qkv);
  // Qwen3: per-head RMSNorm of q and k before rope.
  if (c.qk_norm) {
    backend_.RmsNorm(q_.data(), L.q_norm.data(), T * nh, hd, eps, q_.data());
    backend_.RmsNorm(k_.data(), L.k_norm.data(), T * nkv, hd, eps, k_.data());
  }
  // Rotary position embedding, then store k/v in the cache.
  ApplyRope(q_.data(), nh, begin, T);
  ApplyRope(k_.data(), nkv, begin, T);
  backend_.WriteKv(*kv_, layer, T, seqs_.data() + begin, pos_.data() + begin, k_.data(), v_.data());
  // Causal (optionally sliding-window) attention over each row's sequence.
  backend::AttentionArgs a;
  a.q = q_.data();
  a.out = att_.data();
  a.T = T;
  a.seqs = seqs_.data() + begin;
  a.pos = pos_.data() + begin;
  a.layer = layer;
  a.n_heads = nh;
  a.n_kv_heads = nkv;
  a.head_dim = hd;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.window = c.sliding_window ? static_cast<int>(*c.sliding_window) : 0;
  backend_.Attention(*kv_, a);
  // Output projection and residual.
  backend_.MatMul(att_.data(), T, L.wo, Bias(L.bo), out_.data());
  backend_.Add(x_.data(), out_.data(), T * H);

  // MLP block: norm, gated activation, down projection, residual.
  backend_.RmsNorm(x_.data(), L.mlp_norm.data(), T, H, eps, xb_.data());
  const backend::MatMulOut gate_up[2] = {{L.w_gate, Bias(L.b_gate), gate_.data()},
                                         {L.w_up, Bias(L.b_up), up_.data()}};
  backend_.MatMulMulti(xb_.data(), T, gate_up);
  if (c.hidden_act == Activation::kSilu) {
    backend_.SiluMul(gate_.data(), up_.data(), T * I, gate_.data());
  } else {
    backend_.GeluMul(gate_.data(), up_.data(), T * I, gate_.data());
  }
  backend_.MatMul(gate_.data(), T, L.w_down, Bias(L.b_down), out_.data());
  backend_.Add(x_.data(), out_.data(), T * H);
}

// Rope over rows [begin, begin + T), in runs that share short or long longrope factors.
void Model::ApplyRope(float* x, int heads, int64_t begin, int64_t T) {
  const int hd = static_cast<int>(config_.head_dim);
  const float attn = static_cast<float>(config_.rope_scaling.attention_factor);
  for (int64_t r = 0; r < T;) {
    int64_t e = r + 1;
    while (e < T && long_rope_[begin + e] == long_rope_[begin + r]) ++e;
    backend::RopeParams rope;
    rope.rotary_dim = static_cast<int>(config_.rotary_dim);
    rope.inv_freq = long_rope_[begin + r] ? inv_freq_long_.data() : inv_freq_short_.data();
    rope.attention_factor = attn;
    backend_.Rope(x + r * heads * hd, e - r, heads, hd, pos_.data() + begin + r, rope);
    r = e;
  }
}

}  // namespace pensieve::model
