#include "model/weights.h"

#include <set>
#include <string>

#include "util/error.h"

namespace pensieve::model {
namespace {

using backend::FloatType;
using backend::MatRef;

std::string Shape(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

FloatType ToFloatType(const TensorView& t) {
  switch (t.dtype) {
    case DType::kF32: return FloatType::kF32;
    case DType::kBF16: return FloatType::kBF16;
    case DType::kF16: return FloatType::kF16;
    default:
      throw Error(t.file + ": tensor '" + t.name + "' has dtype " + std::string(DTypeName(t.dtype)) +
                  ", expected F32, BF16 or F16");
  }
}

class Binder {
 public:
  Binder(const ModelConfig& c, const TensorStore& s, std::deque<std::vector<float>>& vectors)
      : config_(c), store_(s), vectors_(vectors) {}

  const TensorView* Take(const std::string& name) {
    const TensorView* t = store_.Find(name);
    if (t) used_.insert(name);
    return t;
  }
  const TensorView& Need(const std::string& name) {
    const TensorView* t = Take(name);
    Require(t != nullptr, store_.path() + ": missing tensor '" + name + "'");
    return *t;
  }

  // Matrix `<module>.weight` of logical shape [rows, cols], float or MLX-quantized.
  MatRef Matrix(const std::string& module, int64_t rows, int64_t cols) {
    const TensorView& w = Need(module + ".weight");
    MatRef m;
    m.rows = rows;
    m.cols = cols;
    m.data = w.data;
    if (const TensorView* scales = Take(module + ".scales")) {
      QuantSpec spec = config_.quantization ? config_.quantization->ForModule(module) : QuantSpec{};
      Require(spec.quantized(), w.file + ": '" + module + ".scales' present but config.json has no quantization for it");
      RequireSupportedQuant(spec, w.file + ": " + module);
      m.kind = MatRef::Kind::kAffine;
      m.bits = spec.bits;
      m.group_size = spec.group_size;
      m.type = ToFloatType(*scales);
      Require(w.dtype == DType::kU32 && w.shape == std::vector<int64_t>{rows, cols * spec.bits / 32},
              w.file + ": tensor '" + w.name + "' is " + std::string(DTypeName(w.dtype)) + " " + Shape(w.shape) +
                  ", expected U32 " + Shape({rows, cols * spec.bits / 32}));
      std::vector<int64_t> gshape{rows, cols / spec.group_size};
      Require(scales->shape == gshape, w.file + ": tensor '" + scales->name + "' has shape " +
                                           Shape(scales->shape) + ", expected " + Shape(gshape));
      m.scales = scales->data;
      if (const TensorView* biases = Take(module + ".biases")) {
        Require(biases->shape == gshape && biases->dtype == scales->dtype,
                w.file + ": tensor '" + biases->name + "' does not match its scales");
        m.biases = biases->data;
      }
    } else {
      m.type = ToFloatType(w);
      Require(w.shape == std::vector<int64_t>{rows, cols}, w.file + ": tensor '" + w.name + "' has shape " +
                                                                Shape(w.shape) + ", expected " + Shape({rows, cols}));
    }
    m.Validate(w.file + ": " + w.name);
    return m;
  }

  // A float vector of n elements widened to f32; empty when optional and absent.
  backend::Tensor Vector(const std::string& name, int64_t n, bool required) {
    const TensorView* t = required ? &Need(name) : Take(name);
    if (!t) return {};
    ToFloatType(*t);
    Require(t->shape == std::vector<int64_t>{n},
            t->file + ": tensor '" + name + "' has shape " + Shape(t->shape) + ", expected " + Shape({n}));
    std::vector<float>& v = vectors_.emplace_back(n);
    for (int64_t i = 0; i < n; ++i) v[i] = LoadAsF32(t->data, t->dtype, i);
    return {v.data(), 1, n};
  }
  // A bias vector: required when the configuration's `key` (attention_bias, mlp_bias) says the model has it,
  // taken when present otherwise.
  backend::Tensor Bias(const std::string& name, int64_t n, bool expected, const char* key) {
    const backend::Tensor t = Vector(name, n, false);
    Require(!t.empty() || !expected, store_.path() + ": missing tensor '" + name + "' (config.json: " + key +
                                         " says the model has it)");
    return t;
  }
  // Elements [begin, begin + n) of a vector as their own vector (a fused bias split per projection).
  backend::Tensor Part(const backend::Tensor& whole, int64_t begin, int64_t n) {
    std::vector<float>& v = vectors_.emplace_back(whole.data + begin, whole.data + begin + n);
    return {v.data(), 1, n};
  }

  // Every tensor must have been used or be one we knowingly ignore.
  void CheckAllUsed() {
    for (const std::string& name : store_.Names()) {
      if (used_.count(name)) continue;
      if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // stored rope tables
      if (config_.tie_word_embeddings && name.rfind("lm_head.", 0) == 0) continue;  // tied copy
      const TensorView* t = store_.Find(name);
      throw Error(t->file + ": unexpected tensor '" + name + "' (not used by " + config_.architecture + ")");
    }
  }

 private:
  const ModelConfig& config_;
  const TensorStore& store_;
  std::deque<std::vector<float>>& vectors_;
  std::set<std::string> used_;
};

}  // namespace

ModelWeights BindWeights(const ModelConfig& c, const TensorStore& store) {
  ModelWeights w;
  Binder b(c, store, w.vectors);
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, hd = c.head_dim;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  w.embed = b.Matrix("model.embed_tokens", c.vocab_size, hidden);
  w.layers.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights& L = w.layers[i];
    L.attn_norm = b.Vector(p + "input_layernorm.weight", hidden, true);
    L.mlp_norm = b.Vector(p + "post_attention_layernorm.weight", hidden, true);
    if (c.fused_qkv) {
      MatRef qkv = b.Matrix(p + "self_attn.qkv_proj", q_dim + 2 * kv_dim, hidden);
      L.wq = qkv.RowSlice(0, q_dim);
      L.wk = qkv.RowSlice(q_dim, kv_dim);
      L.wv = qkv.RowSlice(q_dim + kv_dim, kv_dim);
      const backend::Tensor bias =
          b.Bias(p + "self_attn.qkv_proj.bias", q_dim + 2 * kv_dim, c.attention_bias, "attention_bias");
      if (!bias.empty()) {
        L.bq = b.Part(bias, 0, q_dim);
        L.bk = b.Part(bias, q_dim, kv_dim);
        L.bv = b.Part(bias, q_dim + kv_dim, kv_dim);
      }
    } else {
      L.wq = b.Matrix(p + "self_attn.q_proj", q_dim, hidden);
      L.wk = b.Matrix(p + "self_attn.k_proj", kv_dim, hidden);
      L.wv = b.Matrix(p + "self_attn.v_proj", kv_dim, hidden);
      L.bq = b.Bias(p + "self_attn.q_proj.bias", q_dim, c.attention_bias, "attention_bias");
      L.bk = b.Bias(p + "self_attn.k_proj.bias", kv_dim, c.attention_bias, "attention_bias");
      L.bv = b.Bias(p + "self_attn.v_proj.bias", kv_dim, c.attention_bias, "attention_bias");
    }
    L.wo = b.Matrix(p + "self_attn.o_proj", hidden, q_dim);
    L.bo = b.Bias(p + "self_attn.o_proj.bias", hidden, c.o_proj_bias, "attention_bias");
    if (c.qk_norm) {
      L.q_norm = b.Vector(p + "self_attn.q_norm.weight", hd, true);
      L.k_norm = b.Vector(p + "self_attn.k_norm.weight", hd, true);
    }
    if (c.fused_gate_up) {
      MatRef gu = b.Matrix(p + "mlp.gate_up_proj", 2 * inter, hidden);
      L.w_gate = gu.RowSlice(0, inter);
      L.w_up = gu.RowSlice(inter, inter);
      const backend::Tensor bias = b.Bias(p + "mlp.gate_up_proj.bias", 2 * inter, c.mlp_bias, "mlp_bias");
      if (!bias.empty()) {
        L.b_gate = b.Part(bias, 0, inter);
        L.b_up = b.Part(bias, inter, inter);
      }
    } else {
      L.w_gate = b.Matrix(p + "mlp.gate_proj", inter, hidden);
      L.w_up = b.Matrix(p + "mlp.up_proj", inter, hidden);
      L.b_gate = b.Bias(p + "mlp.gate_proj.bias", inter, c.mlp_bias, "mlp_bias");
      L.b_up = b.Bias(p + "mlp.up_proj.bias", inter, c.mlp_bias, "mlp_bias");
    }
    L.w_down = b.Matrix(p + "mlp.down_proj", hidden, inter);
    L.b_down = b.Bias(p + "mlp.down_proj.bias", hidden, c.mlp_bias, "mlp_bias");
    for (const MatRef* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      w.matrix_bytes += m->TotalBytes();
  }
  w.final_norm = b.Vector("model.norm.weight", hidden, true);
  if (c.tie_word_embeddings || !store.Has("lm_head.weight")) {
    Require(c.tie_word_embeddings, store.path() + ": missing tensor 'lm_head.weight'");
    w.lm_head = w.embed;
  } else {
    w.lm_head = b.Matrix("lm_head", c.vocab_size, hidden);
  }
  w.matrix_bytes += w.lm_head.TotalBytes();
  b.CheckAllUsed();
  return w;
}

}  // namespace pensieve::model
