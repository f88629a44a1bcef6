#include "formats/random_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/quantize_model.h"
#include "formats/safetensors.h"
#include "util/error.h"
#include "util/parallel.h"

namespace pensieve {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<TensorSpec> HfTensorList(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t q = c.q_dim(), kv = c.kv_dim();
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, H}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {H}});
    if (c.fused_qkv) {
      t.push_back({p + "self_attn.qkv_proj.weight", {q + 2 * kv, H}});
    } else {
      t.push_back({p + "self_attn.q_proj.weight", {q, H}});
      t.push_back({p + "self_attn.k_proj.weight", {kv, H}});
      t.push_back({p + "self_attn.v_proj.weight", {kv, H}});
      if (c.attention_bias) {
        t.push_back({p + "self_attn.q_proj.bias", {q}});
        t.push_back({p + "self_attn.k_proj.bias", {kv}});
        t.push_back({p + "self_attn.v_proj.bias", {kv}});
      }
    }
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {D}});
      t.push_back({p + "self_attn.k_norm.weight", {D}});
    }
    t.push_back({p + "self_attn.o_proj.weight", {H, q}});
    if (c.o_proj_bias) t.push_back({p + "self_attn.o_proj.bias", {H}});
    t.push_back({p + "post_attention_layernorm.weight", {H}});
    if (c.fused_gate_up) {
      t.push_back({p + "mlp.gate_up_proj.weight", {2 * I, H}});
    } else {
      t.push_back({p + "mlp.gate_proj.weight", {I, H}});
      t.push_back({p + "mlp.up_proj.weight", {I, H}});
    }
    t.push_back({p + "mlp.down_proj.weight", {H, I}});
    if (c.mlp_bias) {
      if (c.fused_gate_up) {
        t.push_back({p + "mlp.gate_up_proj.bias", {2 * I}});
      } else {
        t.push_back({p + "mlp.gate_proj.bias", {I}});
        t.push_back({p + "mlp.up_proj.bias", {I}});
      }
      t.push_back({p + "mlp.down_proj.bias", {H}});
    }
  }
  t.push_back({"model.norm.weight", {H}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, H}});
  return t;
}

std::vector<std::string> RandomModelShapes() {
  return {"tiny", "llama-3.2-1b", "llama-3-8b", "phi-3-mini", "phi-4", "qwen3-0.6b"};
}

json RandomModelConfigJson(const RandomModelOptions& opt) {
  json j;
  auto base = [&](const char* arch, const char* type, int64_t H, int64_t L, int64_t heads, int64_t kv, int64_t I,
                  int64_t V, int64_t ctx, double theta, double eps, bool tied, int64_t bos, int64_t eos) {
    j = {{"architectures", {arch}}, {"model_type", type}, {"hidden_size", H}, {"num_hidden_layers", L},
         {"num_attention_heads", heads}, {"num_key_value_heads", kv}, {"intermediate_size", I},
         {"vocab_size", V}, {"max_position_embeddings", ctx}, {"rope_theta", theta}, {"rms_norm_eps", eps},
         {"hidden_act", "silu"}, {"tie_word_embeddings", tied}, {"bos_token_id", bos}, {"eos_token_id", eos},
         {"rope_scaling", nullptr}, {"attention_bias", false}, {"mlp_bias", false}};
  };
  const std::string& s = opt.shape;
  if (s == "tiny") {
    base("LlamaForCausalLM", "llama", 64, 2, 4, 2, 128, 256, 512, 10000.0, 1e-5, false, 1, 2);
  } else if (s == "llama-3.2-1b") {
    base("LlamaForCausalLM", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0, 1e-5, true, 128000, 128001);
    j["head_dim"] = 64;
    j["rope_scaling"] = {{"factor", 32.0}, {"high_freq_factor", 4.0}, {"low_freq_factor", 1.0},
                         {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}};
  } else if (s == "llama-3-8b") {
    base("LlamaForCausalLM", "llama", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0, 1e-5, false, 128000, 128001);
  } else if (s == "phi-3-mini") {
    base("Phi3ForCausalLM", "phi3", 3072, 32, 32, 32, 8192, 32064, 4096, 10000.0, 1e-5, false, 1, 32000);
    j["original_max_position_embeddings"] = 4096;
    j["sliding_window"] = 2047;
    j["pad_token_id"] = 32000;
  } else if (s == "phi-4") {
    base("Phi3ForCausalLM", "phi3", 5120, 40, 40, 10, 17920, 100352, 16384, 250000.0, 1e-5, false, 100257, 100265);
    j["original_max_position_embeddings"] = 16384;
    j["sliding_window"] = nullptr;
    j["pad_token_id"] = 100349;
  } else if (s == "qwen3-0.6b") {
    base("Qwen3ForCausalLM", "qwen3", 1024, 28, 16, 8, 3072, 151936, 40960, 1000000.0, 1e-6, true, 151643, 151645);
    j["head_dim"] = 128;
    j["sliding_window"] = nullptr;
    j["use_sliding_window"] = false;
  } else {
    std::string known;
    for (const auto& n : RandomModelShapes()) known += (known.empty() ? "" : ", ") + n;
    throw Error("random-model: unknown shape '" + s + "' (known: " + known + ")");
  }
  if (opt.vocab) {
    if (*opt.vocab <= 0) throw Error("random-model: --vocab must be positive");
    j["vocab_size"] = *opt.vocab;
    for (const char* k : {"bos_token_id", "eos_token_id", "pad_token_id"})
      if (j.contains(k) && j[k].is_number_integer() && j[k].get<int64_t>() >= *opt.vocab)
        j[k] = std::min<int64_t>(std::string(k) == "bos_token_id" ? 1 : 2, *opt.vocab - 1);
  }
  if (opt.layers) {
    if (*opt.layers <= 0) throw Error("random-model: --layers must be positive");
    j["num_hidden_layers"] = *opt.layers;
  }
  if (opt.ctx) {
    if (*opt.ctx <= 0) throw Error("random-model: --ctx must be positive");
    j["max_position_embeddings"] = *opt.ctx;
  }
  j["torch_dtype"] = opt.dtype == DType::kF32 ? "float32" : opt.dtype == DType::kF16 ? "float16" : "bfloat16";
  if (opt.stop) {
    const StopTendency& st = *opt.stop;
    const int64_t V = j["vocab_size"].get<int64_t>();
    if (!(st.mean_tokens >= 2.0) || !std::isfinite(st.mean_tokens))
      throw Error("random-model: the mean reply length must be a number >= 2");
    if (st.stop_tokens.empty()) throw Error("random-model: a stop tendency needs stop tokens");
    if (static_cast<int64_t>(st.stop_tokens.size()) >= V) throw Error("random-model: too many stop tokens");
    for (const auto* list : {&st.stop_tokens, &st.quiet_tokens})
      for (int64_t id : *list)
        if (id < 0 || id >= V)
          throw Error("random-model: token id " + std::to_string(id) + " is outside the vocabulary (" +
                      std::to_string(V) + ")");
    // Every reader of config.json (e.g. `pensieve generate`) then stops on the tokens made likely.
    j["eos_token_id"] = st.stop_tokens.size() == 1 ? json(st.stop_tokens[0]) : json(st.stop_tokens);
  }
  if (opt.quant_bits) {
    json q = {{"group_size", opt.group_size}, {"bits", opt.quant_bits}};
    j["quantization"] = q;
    j["quantization_config"] = q;
  }
  return j;
}

namespace {

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Row r of tensor `name`: mean + std * approx N(0,1), rounded to `dtype`'s precision (so float and quantized
// models of one seed start from identical values).
void FillRow(uint64_t seed, uint64_t name_hash, int64_t r, float mean, float stddev, DType dtype, float* out,
             int64_t n) {
  uint64_t s = seed * 0x2545f4914f6cdd1dull ^ name_hash ^ (static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ull);
  SplitMix(s);
  // Sum of four 16-bit uniforms: mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12.
  const float inv_sd = static_cast<float>(1.0 / std::sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0));
  for (int64_t i = 0; i < n; ++i) {
    uint64_t x = SplitMix(s);
    int64_t sum = static_cast<int64_t>((x & 0xffff) + ((x >> 16) & 0xffff) + ((x >> 32) & 0xffff) + (x >> 48));
    float z = (static_cast<float>(sum) - 131070.0f) * inv_sd;
    float v = mean + stddev * z;
    if (v == 0.0f) v = stddev * 0.5f;  // never an exact zero
    if (dtype == DType::kBF16) v = BF16ToF32(F32ToBF16(v));
    else if (dtype == DType::kF16) v = F16ToF32(F32ToF16(v));
    out[i] = v;
  }
}

bool IsNormWeight(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

float RoundTo(DType dtype, float v) {
  if (dtype == DType::kBF16) return BF16ToF32(F32ToBF16(v));
  if (dtype == DType::kF16) return F16ToF32(F32ToF16(v));
  return v;
}

// What the stop tendency adds to every element of each row of the embedding and of lm_head (see StopTendency).
struct StopPlan {
  std::vector<float> embed_add, head_add;  // by token id; empty when the tensor is untouched
  std::vector<bool> is_stop;               // by token id
  bool tied = false;
};

StopPlan PlanStop(const StopTendency& st, const ModelConfig& c) {
  const int64_t V = c.vocab_size, H = c.hidden_size;
  const float beta = static_cast<float>(StopBoost(st, H, V));
  StopPlan plan;
  plan.tied = c.tie_word_embeddings;
  plan.is_stop.assign(static_cast<size_t>(V), false);
  for (int64_t id : st.stop_tokens) plan.is_stop[static_cast<size_t>(id)] = true;
  plan.embed_add.assign(static_cast<size_t>(V), 1.0f);
  for (int64_t id : st.quiet_tokens) plan.embed_add[static_cast<size_t>(id)] = 0.0f;
  if (c.tie_word_embeddings) {
    // One matrix for both: a stop row's logit must exceed the others' (which carry +1 each) by beta * sum(x).
    for (int64_t id : st.stop_tokens) plan.embed_add[static_cast<size_t>(id)] = 1.0f + beta;
  } else {
    plan.head_add.assign(static_cast<size_t>(V), 0.0f);
    for (int64_t id : st.stop_tokens) plan.head_add[static_cast<size_t>(id)] = beta;
  }
  return plan;
}

}  // namespace

double StopBoost(const StopTendency& stop, int64_t hidden_size, int64_t vocab_size) {
  const double p = 1.0 / stop.mean_tokens;
  const double k = static_cast<double>(stop.stop_tokens.size());
  const double V = static_cast<double>(vocab_size);
  const double H = static_cast<double>(hidden_size);
  // Logit L of each stop token against V - k random logits of variance s^2 (E[e^z] = e^(s^2/2)).
  const double s2 = 0.02 * 0.02 * H;
  const double L = std::log(p / (1.0 - p)) + std::log((V - k) / k) + s2 / 2.0;
  return L / H;  // sum(x) ~= hidden after the final RMSNorm
}

std::vector<std::string> WriteRandomModel(const std::string& out_dir, const RandomModelOptions& opt) {
  if (!IsFloat(opt.dtype) || opt.dtype == DType::kF64) throw Error("random-model: dtype must be f32, f16 or bf16");
  QuantSpec spec{opt.quant_bits, opt.group_size};
  if (opt.quant_bits) RequireSupportedQuant(spec, "random-model");
  json cj = RandomModelConfigJson(opt);
  ModelConfig config = ParseModelConfigJson(cj, "random-model config");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir + ": cannot create: " + ec.message());

  SafetensorsWriter w;
  w.SetMetadata({{"format", opt.quant_bits ? "mlx" : "pt"}});
  const DType dt = opt.dtype;
  const uint64_t seed = opt.seed;
  auto plan = std::make_shared<const StopPlan>(opt.stop ? PlanStop(*opt.stop, config) : StopPlan{});
  for (const TensorSpec& t : HfTensorList(config)) {
    const uint64_t h = HashName(t.name);
    const float mean = IsNormWeight(t.name) ? 1.0f : 0.0f;
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    const int64_t cols = t.shape.back();
    // 1: embedding, 2: lm_head (the rows the stop tendency touches); 0: others.
    const int which = t.name == "model.embed_tokens.weight" ? 1 : t.name == "lm_head.weight" ? 2 : 0;
    // Row r: the random values, plus the stop tendency's addition to every element (rounded to the dtype).
    auto fill = [=](int64_t r, float* out) {
      FillRow(seed, h, r, mean, 0.02f, dt, out, cols);
      if (which == 0) return;
      const std::vector<float>& add = which == 1 ? plan->embed_add : plan->head_add;
      if (add.empty() || add[static_cast<size_t>(r)] == 0.0f) return;
      // A stop row's output side is centred first: its random sum(w) would otherwise shift its logit (x ~= ones)
      // by N(0, s^2), a fixed error in p of the size e^(+-s).
      float centre = 0.0f;
      if (plan->is_stop[static_cast<size_t>(r)] && (which == 2) != plan->tied) {
        double sum = 0;
        for (int64_t j = 0; j < cols; ++j) sum += out[j];
        centre = static_cast<float>(sum / static_cast<double>(cols));
      }
      for (int64_t j = 0; j < cols; ++j) out[j] = RoundTo(dt, out[j] - centre + add[static_cast<size_t>(r)]);
    };
    if (opt.quant_bits && ShouldQuantize(t.name, t.shape, dt, spec)) {
      AddQuantizedWeight(w, t.name.substr(0, t.name.size() - 7), rows, cols, spec, dt, fill);
      continue;
    }
    w.AddLazy(t.name, dt, t.shape, [=](std::byte* dst, size_t) {
      ParallelRanges(rows, 64, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = begin; r < end; ++r) {
          fill(r, row.data());
          if (dt == DType::kF32) {
            std::memcpy(dst + r * cols * 4, row.data(), static_cast<size_t>(cols) * 4);
          } else {
            auto* p = reinterpret_cast<uint16_t*>(dst) + r * cols;
            for (int64_t j = 0; j < cols; ++j) p[j] = dt == DType::kBF16 ? F32ToBF16(row[j]) : F32ToF16(row[j]);
          }
        }
      });
    });
  }
  std::vector<std::string> files = w.WriteModelDir(out_dir, opt.max_shard_bytes);
  std::string cfg = (fs::path(out_dir) / "config.json").string();
  std::ofstream out(cfg);
  out << cj.dump(2) << "\n";
  if (!out) throw Error(cfg + ": write failed");
  files.push_back("config.json");
  if (!opt.tokenizer_dir.empty()) {
    if (!fs::is_directory(opt.tokenizer_dir, ec)) throw Error(opt.tokenizer_dir + ": not a directory");
    int copied = 0;
    for (const std::string& f : ModelSideFiles()) {
      fs::path src = fs::path(opt.tokenizer_dir) / f;
      if (!fs::exists(src, ec)) continue;
      fs::copy_file(src, fs::path(out_dir) / f, fs::copy_options::overwrite_existing, ec);
      if (ec) throw Error((fs::path(out_dir) / f).string() + ": cannot copy: " + ec.message());
      files.push_back(f);
      ++copied;
    }
    if (copied == 0) throw Error(opt.tokenizer_dir + ": no tokenizer files found");
  }
  return files;
}

}  // namespace pensieve
