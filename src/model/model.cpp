#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "formats/checkpoint.h"
#include "util/error.h"

namespace pensieve::model {
namespace {

std::string GiB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(int64_t{1} << 30));
  return buf;
}

// KV elements in f32 for f32 models (their logits are held to f32 accuracy), bf16 for the rest.
backend::FloatType PreferredKvType(const ModelWeights& w) {
  bool all_f32 = true;
  const_cast<ModelWeights&>(w).ForEach(
      [&](backend::MatRef& m) { all_f32 = all_f32 && m.kind == backend::MatRef::Kind::kFloat && m.type == backend::FloatType::kF32; },
      [](backend::Tensor&) {});
  return all_f32 ? backend::FloatType::kF32 : backend::FloatType::kBF16;
}

// Everything Load sizes from the config and options.
struct Sizes {
  int64_t max_context = 0, max_rows = 0, logit_cap = 0;
  int max_items = 0;
  backend::KvLayout kv;
  backend::FloatType kv_type = backend::FloatType::kF32;
  backend::ScratchSpec spec;
  MemoryUse memory;
  int64_t activation_floats = 0;
};

Sizes ComputeSizes(const ModelConfig& c, ModelWeights& host, backend::Backend& be, const LoadOptions& opts) {
  Sizes s;
  s.max_context = opts.max_context > 0 ? opts.max_context : c.max_position_embeddings;
  if (s.max_context <= 0) s.max_context = 4096;
  s.max_rows = std::max(1, opts.max_batch_tokens);
  s.max_items = std::max(1, opts.max_sequences);
  // Logit rows held at once: every item's last row (sampling), a padded decode step, or up to 64 rows of an
  // all-logits call (larger ones go in groups).
  s.logit_cap = std::max<int64_t>({s.max_items, std::min<int64_t>(s.max_rows, be.DecodeRows(s.max_items)),
                                   std::min<int64_t>(s.max_rows, 64)});
  s.kv_type = be.KvStorageType(PreferredKvType(host));
  s.kv.layers = static_cast<int>(c.num_hidden_layers);
  s.kv.kv_heads = static_cast<int>(c.num_key_value_heads);
  s.kv.head_dim = static_cast<int>(c.head_dim);
  s.kv.block_tokens = std::max(1, opts.kv_block_tokens);
  const int64_t block_bytes = int64_t{s.kv.layers} * 2 * s.kv.block_tokens * s.kv.kv_dim() *
                              static_cast<int64_t>(backend::FloatTypeSize(s.kv_type));

  const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim(), V = c.vocab_size;
  s.spec.max_rows = s.max_rows;
  s.spec.max_cols = std::max({H, I, Q});
  s.spec.max_context = s.max_context;
  s.spec.max_items = s.max_items;
  s.spec.max_samples = s.logit_cap;
  s.spec.vocab = V;
  s.spec.max_table_width = (s.max_context + s.kv.block_tokens - 1) / s.kv.block_tokens;
  s.spec.head_dim = static_cast<int>(c.head_dim);
  s.spec.gqa_group = static_cast<int>(c.num_attention_heads / c.num_key_value_heads);
  s.spec.n_heads = static_cast<int>(c.num_attention_heads);
  s.activation_floats = s.max_rows * (2 * H + 2 * Q + 2 * KV + I) + s.logit_cap * (H + V);

  s.memory.weights = be.HostMemory() ? 0 : UploadBytes(host);
  s.memory.activations = s.activation_floats * int64_t{sizeof(float)};
  s.memory.workspace = be.WorkspaceBytes(s.spec);
  int64_t budget = opts.kv_budget_bytes;
  if (budget <= 0) {  // auto: nine tenths of what is free once the rest is in, up to max_items full contexts
    const int64_t free = be.Memory().free_bytes;
    const int64_t rest = s.memory.weights + s.memory.activations + s.memory.workspace;
    const int64_t full = s.max_items * ((s.max_context + s.kv.block_tokens - 1) / s.kv.block_tokens) * block_bytes;
    budget = std::min(free / 10 * 9 - rest, full);
  }
  s.kv.blocks = std::max<int64_t>(1, budget / block_bytes);
  s.memory.kv_pool = s.kv.blocks * block_bytes;
  return s;
}

}  // namespace

std::unique_ptr<Model> Model::Load(const std::string& path, backend::Backend& backend, const LoadOptions& opts) {
  Checkpoint c = OpenCheckpoint(path);
  return std::unique_ptr<Model>(new Model(backend, std::move(c.config), std::move(c.store), opts));
}

std::unique_ptr<Model> Model::Load(const std::string& config_dir, TensorStore store, backend::Backend& backend,
                                   const LoadOptions& opts) {
  ModelConfig config = LoadModelConfig(config_dir);
  return std::unique_ptr<Model>(new Model(backend, std::move(config), std::move(store), opts));
}

MemoryUse Model::Plan(const std::string& path, backend::Backend& backend, const LoadOptions& opts) {
  Checkpoint c = OpenCheckpoint(path);
  ModelWeights host = BindWeights(c.config, c.store);
  return ComputeSizes(c.config, host, backend, opts).memory;
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
  host_weights_ = BindWeights(c, store_);

  const Sizes s = ComputeSizes(c, host_weights_, backend_, opts);
  max_context_ = s.max_context;
  max_rows_ = s.max_rows;
  max_items_ = s.max_items;
  logit_cap_ = s.logit_cap;
  memory_ = s.memory;
  eps_ = static_cast<float>(c.rms_norm_eps);
  // Memory guard: weights (on the cpu: mapped from the files, resident once read) + KV pool + scratch against
  // what the device has free, or the RAM the system says is available.
  const backend::MemoryInfo mi = backend_.Memory();
  if (mi.total_bytes > 0 && memory_.total() > mi.free_bytes)
    throw Error(store_.path() + ": the model does not fit " + backend_.Name() + ": it needs " +
                GiB(memory_.total()) + " (weights " + GiB(memory_.weights) + ", KV pool " + GiB(memory_.kv_pool) +
                ", activations " + GiB(memory_.activations) + ", workspace " + GiB(memory_.workspace) + ") but " +
                GiB(mi.free_bytes) + " of " + GiB(mi.total_bytes) + (backend_.HostMemory() ? " of RAM are available" : " are free") +
                " (a smaller --kv-mib or --ctx lowers the KV pool)");
  // A host backend that rewrites matrices into its own layout (the CPU's integer kernels) reads the mapped
  // originals once: their pages may leave memory, so the weights are resident once, not twice.
  weights_ = UploadWeights(host_weights_, backend_,
                           [&](const void* p, int64_t n) { store_.Evict(p, static_cast<size_t>(n)); });
  kv_ = backend_.CreateKvStorage(s.kv, s.kv_type);
  memory_.kv_pool = kv_->bytes();

  // Rope inverse frequencies (f32, as transformers keeps them): short/original and, for longrope, long.
  std::vector<float> inv_short, inv_long;
  for (double f : c.RopeInvFreq(0)) inv_short.push_back(static_cast<float>(f));
  if (c.rope_scaling.type == RopeType::kLongRope) {
    for (double f : c.RopeInvFreq(c.rope_scaling.original_max_position_embeddings + 1))
      inv_long.push_back(static_cast<float>(f));
  }
  const int64_t half = static_cast<int64_t>(inv_short.size());
  rope_buf_ = backend_.Allocate(2 * std::max<int64_t>(half, 1) * int64_t{sizeof(float)}, "rope tables");
  rope_.rotary_dim = static_cast<int>(c.rotary_dim);
  rope_.attention_factor = static_cast<float>(c.rope_scaling.attention_factor);
  rope_.inv_freq = rope_buf_->AsTensor(1, half);
  backend_.Upload(rope_.inv_freq.data, inv_short.data(), half * int64_t{sizeof(float)});
  if (!inv_long.empty()) {
    rope_.inv_freq_long = {rope_.inv_freq.data + half, 1, half};
    backend_.Upload(rope_.inv_freq_long.data, inv_long.data(), half * int64_t{sizeof(float)});
  }

  // Activations: one allocation, carved into tensors.
  act_buf_ = backend_.Allocate(memory_.activations, "activations");
  float* p = static_cast<float*>(act_buf_->data());
  const auto take = [&](int64_t rows, int64_t cols) {
    backend::Tensor t{p, rows, cols};
    p += rows * cols;
    return t;
  };
  const int64_t R = max_rows_;
  x_ = take(R, c.hidden_size);
  xb_ = take(R, c.hidden_size);
  q_ = take(R, c.q_dim());
  att_ = take(R, c.q_dim());
  k_ = take(R, c.kv_dim());
  v_ = take(R, c.kv_dim());
  h_ = take(R, c.intermediate_size);
  normed_ = take(logit_cap_, c.hidden_size);
  logits_ = take(logit_cap_, c.vocab_size);
  backend_.Reserve(s.spec);

  for (auto* v : {&tokens_, &pos_, &row_item_, &logit_rows_, &chunk_rows_, &padded_row_}) v->reserve(R);
  long_rope_.reserve(R);
  row_sampled_.reserve(R);
  tables_.reserve(static_cast<size_t>(max_items_) *
                  ((max_context_ + kv_->layout().block_tokens - 1) / kv_->layout().block_tokens));
  samples_.reserve(logit_cap_);
  results_.resize(logit_cap_);
}

void Model::CopyKvBlock(int32_t from, int32_t to) {
  if (!(from >= 0 && from < kv_blocks() && to >= 0 && to < kv_blocks()))
    throw Error("kv: block id out of range in copy");
  kv_->CopyBlock(from, to);
}

int64_t Model::LogitRows(std::span<const ForwardItem> items) {
  int64_t rows = 0;
  for (const ForwardItem& it : items) {
    if (it.logits == Logits::kAll) rows += static_cast<int64_t>(it.tokens.size());
    if (it.logits == Logits::kLast) rows += 1;
  }
  return rows;
}

void Model::Prepare(std::span<const ForwardItem> items, std::span<const backend::SampleRow> samples) {
  const int64_t vocab = config_.vocab_size, bt = kv_block_tokens();
  // Validate everything before touching anything.
  if (!(!items.empty())) throw Error("forward: no items");
  if (!(static_cast<int64_t>(items.size()) <= max_items_))
    throw Error("forward: " + std::to_string(items.size()) + " items in one call, at most " +
                std::to_string(max_items_));
  int64_t stride = 1;
  for (size_t i = 0; i < items.size(); ++i) {
    const ForwardItem& it = items[i];
    const int64_t n = static_cast<int64_t>(it.tokens.size());
    const std::string where = "forward: item " + std::to_string(i);
    if (!(n > 0)) throw Error(where + " has no tokens");
    if (!(it.start >= 0 && it.start + n <= max_context_))
      throw Error(where + " reaches position " + std::to_string(it.start + n) + ", past the context limit " +
                  std::to_string(max_context_));
    const int64_t need = (it.start + n + bt - 1) / bt;
    if (!(static_cast<int64_t>(it.blocks.size()) >= need))
      throw Error(where + ": its block table does not cover the new tokens");
    for (int64_t b = it.start / bt; b < need; ++b)
      if (!(it.blocks[b] >= 0 && it.blocks[b] < kv_blocks())) throw Error(where + ": KV block id out of range");
    for (int32_t id : it.tokens)
      if (!(id >= 0 && id < vocab))
        throw Error("forward: token id " + std::to_string(id) + " outside vocabulary of " + std::to_string(vocab));
    stride = std::max(stride, need);
  }
  const int64_t caller_logits = LogitRows(items);
  for (const backend::SampleRow& s : samples)
    if (!(s.logits_row >= 0 && s.logits_row < caller_logits)) throw Error("forward: sample row without logits");
  if (!samples.empty() && !(caller_logits <= logit_cap_))
    throw Error("forward: " + std::to_string(caller_logits) + " logit rows to sample from, at most " +
                std::to_string(logit_cap_));

  // Block tables, then one row per token with its item and position.
  stride_ = stride;
  tables_.assign(items.size() * stride, -1);
  tokens_.clear(), pos_.clear(), row_item_.clear(), long_rope_.clear(), logit_rows_.clear();
  const int64_t orig = config_.rope_scaling.original_max_position_embeddings;
  bool decode_only = true;
  for (size_t i = 0; i < items.size(); ++i) {
    const ForwardItem& it = items[i];
    const int64_t n = static_cast<int64_t>(it.tokens.size());
    std::copy_n(it.blocks.begin(), (it.start + n + bt - 1) / bt, tables_.begin() + i * stride);
    // transformers' longrope picks long factors when this call's max position + 1 exceeds the original context.
    const bool use_long = !rope_.inv_freq_long.empty() && it.start + n > orig;
    for (int64_t j = 0; j < n; ++j) {
      if (it.logits == Logits::kAll || (it.logits == Logits::kLast && j == n - 1))
        logit_rows_.push_back(static_cast<int32_t>(tokens_.size()));
      tokens_.push_back(it.tokens[j]);
      pos_.push_back(static_cast<int32_t>(it.start + j));
      row_item_.push_back(static_cast<int32_t>(i));
      long_rope_.push_back(use_long);
    }
    decode_only = decode_only && n == 1 && it.logits != Logits::kAll;
  }
  call_logit_rows_ = caller_logits;
  samples_.assign(samples.begin(), samples.end());

  // A sampled decode step on a backend that replays recorded steps: pad to its size, every row computes logits
  // (so the step's shape depends on the row count alone), samples point at their item's row.
  step_key_ = 0;
  const int64_t n_items = static_cast<int64_t>(items.size());
  const int64_t padded =
      backend_.ReplaysSteps() && decode_only && !samples.empty() ? backend_.DecodeRows(n_items) : 0;
  padded_row_.clear();
  if (padded > 0 && padded >= n_items && padded <= max_rows_ && padded <= logit_cap_) {
    for (int64_t i = 0; i < n_items; ++i)
      if (items[i].logits == Logits::kLast) padded_row_.push_back(static_cast<int32_t>(i));
    for (backend::SampleRow& s : samples_) s.logits_row = padded_row_[s.logits_row];
    for (int64_t r = n_items; r < padded; ++r) {
      tokens_.push_back(0), pos_.push_back(0), row_item_.push_back(-1), long_rope_.push_back(0);
    }
    logit_rows_.resize(padded);
    for (int64_t r = 0; r < padded; ++r) logit_rows_[r] = static_cast<int32_t>(r);
    if (!samples_.empty()) {
      row_sampled_.assign(padded, 0);
      for (const backend::SampleRow& s : samples_) row_sampled_[s.logits_row] = 1;
      for (int64_t r = 0; r < padded; ++r) {
        if (row_sampled_[r]) continue;
        backend::SampleRow dummy;
        dummy.logits_row = r;
        dummy.params.temperature = 0.0f;
        samples_.push_back(dummy);
      }
    }
    step_key_ = static_cast<uint64_t>(padded) * 2 + (samples_.empty() ? 0 : 1);
  }
}

void Model::Forward(std::span<const ForwardItem> items, std::span<float> logits) {
  Prepare(items, {});
  if (!(static_cast<int64_t>(logits.size()) >= call_logit_rows_ * config_.vocab_size))
    throw Error("forward: logits buffer too small");
  const int64_t total = static_cast<int64_t>(tokens_.size());
  for (int64_t begin = 0; begin < total; begin += max_rows_) {
    const int64_t end = std::min(total, begin + max_rows_);
    RunChunk(begin, end, end == total, logits);
  }
}

void Model::Forward(std::span<const ForwardItem> items, std::span<const backend::SampleRow> samples,
                    std::span<backend::SampleResult> out) {
  if (!(out.size() >= samples.size())) throw Error("forward: sample result buffer too small");
  Prepare(items, samples);
  const int64_t total = static_cast<int64_t>(tokens_.size());
  for (int64_t begin = 0; begin < total; begin += max_rows_) {
    const int64_t end = std::min(total, begin + max_rows_);
    RunChunk(begin, end, end == total, {});
  }
  if (samples.empty()) return;
  backend_.TakeSamples(std::span(results_.data(), samples_.size()));
  std::copy_n(results_.begin(), samples.size(), out.begin());
}

void Model::Resample(const backend::SampleRow& row, backend::SampleResult* out) {
  if (!(row.logits_row >= 0 && row.logits_row < call_logit_rows_ && call_logit_rows_ <= logit_cap_))
    throw Error("resample: no such logits row in the last call");
  backend::SampleRow r = row;
  if (!padded_row_.empty()) r.logits_row = padded_row_[row.logits_row];  // a padded step: its item's row
  backend::StepPlan plan;
  plan.samples = std::span(&r, 1);
  backend_.SetStep(plan);
  backend_.Sample(logits_.Rows(0, static_cast<int64_t>(logit_rows_.size())));
  backend_.TakeSamples(std::span(out, 1));
}

void Model::RunChunk(int64_t begin, int64_t end, bool last, std::span<float> host_logits) {
  const ModelConfig& c = config_;
  const int64_t T = end - begin, V = c.vocab_size;
  backend::StepPlan plan;
  plan.tokens = std::span(tokens_).subspan(begin, T);
  plan.pos = std::span(pos_).subspan(begin, T);
  plan.row_item = std::span(row_item_).subspan(begin, T);
  if (!rope_.inv_freq_long.empty()) plan.long_rope = std::span(long_rope_).subspan(begin, T);
  plan.block_tables = tables_;
  plan.table_stride = stride_;
  // This chunk's logit rows, [g0, g1) of the call's: relative to the chunk in `rows`.
  const int64_t g0 = std::lower_bound(logit_rows_.begin(), logit_rows_.end(), begin) - logit_rows_.begin();
  const int64_t g1 = std::lower_bound(logit_rows_.begin(), logit_rows_.end(), end) - logit_rows_.begin();
  std::vector<int32_t>& rows = chunk_rows_;
  rows.clear();
  for (int64_t g = g0; g < g1; ++g) rows.push_back(static_cast<int32_t>(logit_rows_[g] - begin));
  const bool to_host = !host_logits.empty();
  // Logit rows computed in this pass: all of them when they stay in backend memory (at their place in the
  // call), else as many as the buffers hold (downloaded, then the next group).
  const int64_t first = to_host ? std::min<int64_t>(g1 - g0, logit_cap_) : g1 - g0;
  const int64_t at = to_host ? 0 : g0;
  plan.logit_rows = std::span<const int32_t>(rows).first(first);
  const bool sample = last && !samples_.empty();
  if (sample) plan.samples = samples_;
  backend_.SetStep(plan);
  backend_.RunStep(step_key_, [&] {
    backend_.Embed(weights_.weights.embed, x_.Rows(0, T));
    for (int layer = 0; layer < c.num_hidden_layers; ++layer) Layer(layer, T);
    if (first > 0) {
      const backend::Tensor n = normed_.Rows(at, first);
      backend_.GatherLogitRows(x_.Rows(0, T), n);
      backend_.RmsNormFor(n, weights_.weights.final_norm, eps_, n, weights_.weights.lm_head);
      backend_.MatMul(n, weights_.weights.lm_head, {}, logits_.Rows(at, first), false);
    }
    if (sample) backend_.Sample(logits_.Rows(0, static_cast<int64_t>(logit_rows_.size())));
  });
  if (!to_host) return;
  backend_.Download(host_logits.data() + g0 * V, logits_.data, first * V * int64_t{sizeof(float)});
  // Further groups of an all-logits chunk: the hidden states are still there; only the logits part runs.
  for (int64_t done = first; done < g1 - g0;) {
    const int64_t n = std::min<int64_t>(g1 - g0 - done, logit_cap_);
    plan.logit_rows = std::span<const int32_t>(rows).subspan(done, n);
    plan.samples = {};
    backend_.SetStep(plan);
    const backend::Tensor t = normed_.Rows(0, n);
    backend_.GatherLogitRows(x_.Rows(0, T), t);
    backend_.RmsNorm(t, weights_.weights.final_norm, eps_, t);
    backend_.MatMul(t, weights_.weights.lm_head, {}, logits_.Rows(0, n), false);
    backend_.Download(host_logits.data() + (g0 + done) * V, logits_.data, n * V * int64_t{sizeof(float)});
    done += n;
  }
}

void Model::Layer(int layer, int64_t T) {
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_.weights.layers[layer];
  const int nh = static_cast<int>(c.num_attention_heads), nkv = static_cast<int>(c.num_key_value_heads);
  const int hd = static_cast<int>(c.head_dim);
  const backend::Tensor x = x_.Rows(0, T), xb = xb_.Rows(0, T), q = q_.Rows(0, T), k = k_.Rows(0, T),
                        v = v_.Rows(0, T), att = att_.Rows(0, T), h = h_.Rows(0, T);

  // Attention block: norm, q/k/v projections, q/k norm and rope, k/v stored, attention, output + residual.
  backend_.RmsNormFor(x, L.attn_norm, eps_, xb, L.wq);
  const backend::MatMulOut qkv[3] = {{L.wq, L.bq, q}, {L.wk, L.bk, k}, {L.wv, L.bv, v}};
  backend_.MatMulMulti(xb, qkv);
  backend::QkvArgs p;
  p.q = q, p.k = k, p.v = v;
  p.q_norm = L.q_norm, p.k_norm = L.k_norm;
  p.eps = eps_;
  p.layer = layer;
  p.n_heads = nh, p.n_kv_heads = nkv, p.head_dim = hd;
  p.rope = rope_;
  backend_.PrepareAttention(*kv_, p);
  backend::AttentionArgs a;
  a.q = q;
  a.out = att;
  a.layer = layer;
  a.n_heads = nh;
  a.n_kv_heads = nkv;
  a.head_dim = hd;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.window = c.LayerUsesSlidingWindow(layer) ? static_cast<int>(*c.sliding_window) : 0;  // per layer (Qwen2, layer_types)
  backend_.Attention(*kv_, a);
  backend_.MatMul(att, L.wo, L.bo, x, true);

  // MLP block: norm, gated activation, down projection + residual.
  backend_.RmsNormFor(x, L.mlp_norm, eps_, xb, L.w_gate);
  const auto act = c.hidden_act == Activation::kSilu ? backend::GluActivation::kSilu : backend::GluActivation::kGeluTanh;
  backend_.MatMulGlu(xb, L.w_gate, L.b_gate, L.w_up, L.b_up, act, h);
  backend_.MatMul(h, L.w_down, L.b_down, x, true);
}

}  // namespace pensieve::model
