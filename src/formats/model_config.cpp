#include "formats/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file.h"

namespace pensieve {
namespace fs = std::filesystem;
using nlohmann::json;

std::string_view ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kMistral: return "MistralForCausalLM";
    case Architecture::kQwen2: return "Qwen2ForCausalLM";
    case Architecture::kQwen3: return "Qwen3ForCausalLM";
    case Architecture::kPhi3: return "Phi3ForCausalLM";
  }
  return "?";
}

std::string_view RopeTypeName(RopeType t) {
  switch (t) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kDynamic: return "dynamic";
    case RopeType::kLlama3: return "llama3";
    case RopeType::kLongRope: return "longrope";
    case RopeType::kYarn: return "yarn";
  }
  return "?";
}

namespace {

// Typed field access with errors naming the file and the field.
class Fields {
 public:
  Fields(const json& j, std::string file, std::string prefix = "")
      : j_(j), file_(std::move(file)), prefix_(std::move(prefix)) {}

  Error Fail(const std::string& key, const std::string& msg) const {
    return Error(file_ + ": field '" + prefix_ + key + "': " + msg);
  }
  // The value at key, or nullptr when absent or JSON null.
  const json* Get(const std::string& key) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool Has(const std::string& key) const { return Get(key) != nullptr; }

  std::optional<int64_t> Int(const std::string& key) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (v->is_number_integer()) return v->get<int64_t>();
    // Some configs write integral values as floats (e.g. 4096.0).
    if (v->is_number_float()) {
      double d = v->get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15) return static_cast<int64_t>(d);
    }
    throw Fail(key, "expected an integer, got " + v->dump());
  }
  int64_t RequiredInt(const std::string& key) const {
    auto v = Int(key);
    if (!v) throw Fail(key, "missing");
    return *v;
  }
  int64_t PositiveInt(const std::string& key, std::optional<int64_t> dflt = std::nullopt) const {
    auto v = Int(key);
    if (!v) {
      if (dflt) return *dflt;
      throw Fail(key, "missing");
    }
    if (*v <= 0) throw Fail(key, "must be positive, got " + std::to_string(*v));
    return *v;
  }
  std::optional<double> Num(const std::string& key) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) throw Fail(key, "expected a number, got " + v->dump());
    double d = v->get<double>();
    if (!std::isfinite(d)) throw Fail(key, "not finite");
    return d;
  }
  std::optional<bool> Bool(const std::string& key) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) throw Fail(key, "expected true/false, got " + v->dump());
    return v->get<bool>();
  }
  std::optional<std::string> Str(const std::string& key) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw Fail(key, "expected a string, got " + v->dump());
    return v->get<std::string>();
  }
  std::vector<double> NumList(const std::string& key) const {
    const json* v = Get(key);
    if (!v) return {};
    if (!v->is_array()) throw Fail(key, "expected a list of numbers");
    std::vector<double> out;
    for (const json& x : *v) {
      if (!x.is_number()) throw Fail(key, "expected a list of numbers, found " + x.dump());
      double d = x.get<double>();
      if (!std::isfinite(d) || d <= 0) throw Fail(key, "factors must be positive and finite, found " + x.dump());
      out.push_back(d);
    }
    return out;
  }
  // An int or a list of ints (token ids).
  std::vector<int64_t> IdList(const std::string& key) const {
    const json* v = Get(key);
    if (!v) return {};
    std::vector<int64_t> out;
    auto one = [&](const json& x) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0)
        throw Fail(key, "expected a token id or a list of token ids, got " + v->dump());
      out.push_back(x.get<int64_t>());
    };
    if (v->is_array()) for (const json& x : *v) one(x);
    else one(*v);
    return out;
  }
  const json& raw() const { return j_; }
  const std::string& file() const { return file_; }

 private:
  const json& j_;
  std::string file_;
  std::string prefix_;
};

json ParseJsonText(std::string_view text, const std::string& file) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(file + ": not valid JSON: " + e.what());
  }
}


Architecture ResolveArchitecture(const Fields& f, std::string* name, std::string* model_type) {
  static const std::pair<const char*, Architecture> kArchs[] = {
      {"LlamaForCausalLM", Architecture::kLlama}, {"MistralForCausalLM", Architecture::kMistral},
      {"Qwen2ForCausalLM", Architecture::kQwen2}, {"Qwen3ForCausalLM", Architecture::kQwen3},
      {"Phi3ForCausalLM", Architecture::kPhi3}};
  static const std::pair<const char*, Architecture> kTypes[] = {
      {"llama", Architecture::kLlama}, {"mistral", Architecture::kMistral}, {"qwen2", Architecture::kQwen2},
      {"qwen3", Architecture::kQwen3}, {"phi3", Architecture::kPhi3}};
  *model_type = f.Str("model_type").value_or("");
  if (const json* a = f.Get("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string())
      throw f.Fail("architectures", "expected a list with one architecture name, got " + a->dump());
    *name = (*a)[0].get<std::string>();
    for (const auto& [n, arch] : kArchs)
      if (*name == n) return arch;
    throw f.Fail("architectures", "unsupported architecture '" + *name +
                                      "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                                      "Qwen3ForCausalLM, Phi3ForCausalLM)");
  }
  for (const auto& [t, arch] : kTypes)
    if (*model_type == t) {
      *name = std::string(ArchitectureName(arch));
      return arch;
    }
  if (model_type->empty()) throw f.Fail("architectures", "missing (and no 'model_type' either)");
  throw f.Fail("model_type", "unsupported model type '" + *model_type +
                                 "' (supported: llama, mistral, qwen2, qwen3, phi3)");
}

void ParseRope(const Fields& top, ModelConfig& c) {
  // transformers 5.x writes `rope_parameters` = {rope_type, rope_theta, factor, ...}; checkpoints in the wild
  // have `rope_theta` at top level and `rope_scaling` = {type|rope_type, factor, ...} or null.
  const json* params = top.Get("rope_parameters");
  const json* scaling = top.Get("rope_scaling");
  if (params && !params->is_object()) throw top.Fail("rope_parameters", "expected an object");
  if (scaling && !scaling->is_object()) throw top.Fail("rope_scaling", "expected an object or null");
  const json* src = params ? params : scaling;
  const std::string src_name = params ? "rope_parameters" : "rope_scaling";

  c.rope_theta = top.Num("rope_theta").value_or(10000.0);
  c.partial_rotary_factor = top.Num("partial_rotary_factor").value_or(1.0);
  if (!src) return;

  Fields f(*src, top.file(), src_name + ".");
  if (auto t = f.Num("rope_theta")) c.rope_theta = *t;
  if (auto p = f.Num("partial_rotary_factor")) c.partial_rotary_factor = *p;
  std::string type = f.Str("rope_type").value_or(f.Str("type").value_or("default"));
  RopeScaling& r = c.rope_scaling;
  auto orig = [&]() -> int64_t {
    if (auto v = f.Int("original_max_position_embeddings")) return *v;
    if (auto v = top.Int("original_max_position_embeddings")) return *v;
    return 0;
  };
  auto need_factor = [&]() {
    auto v = f.Num("factor");
    if (!v) throw f.Fail("factor", "missing (required for rope type '" + type + "')");
    if (*v <= 0) throw f.Fail("factor", "must be positive");
    return *v;
  };
  if (type == "default") {
    r.type = RopeType::kDefault;
  } else if (type == "linear") {
    r.type = RopeType::kLinear;
    r.factor = need_factor();
  } else if (type == "dynamic") {
    r.type = RopeType::kDynamic;
    r.factor = need_factor();
    r.original_max_position_embeddings = orig();
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.factor = need_factor();
    auto lo = f.Num("low_freq_factor"), hi = f.Num("high_freq_factor");
    if (!lo) throw f.Fail("low_freq_factor", "missing (required for llama3 rope)");
    if (!hi) throw f.Fail("high_freq_factor", "missing (required for llama3 rope)");
    r.low_freq_factor = *lo;
    r.high_freq_factor = *hi;
    if (!(r.high_freq_factor > r.low_freq_factor) || r.low_freq_factor <= 0)
      throw f.Fail("high_freq_factor", "must exceed low_freq_factor (> 0)");
    r.original_max_position_embeddings = orig();
    if (r.original_max_position_embeddings <= 0)
      throw f.Fail("original_max_position_embeddings", "missing (required for llama3 rope)");
  } else if (type == "longrope" || type == "su" ||
             (type == "yarn" && c.arch == Architecture::kPhi3)) {  // Phi3 maps legacy su/yarn to longrope
    r.type = RopeType::kLongRope;
    r.short_factor = f.NumList("short_factor");
    r.long_factor = f.NumList("long_factor");
    if (r.short_factor.empty()) throw f.Fail("short_factor", "missing (required for longrope)");
    if (r.long_factor.empty()) throw f.Fail("long_factor", "missing (required for longrope)");
    r.original_max_position_embeddings = orig();
    if (r.original_max_position_embeddings < 2)
      throw f.Fail("original_max_position_embeddings", "missing or < 2 (required for longrope)");
    r.short_mscale = f.Num("short_mscale");
    r.long_mscale = f.Num("long_mscale");
    // As transformers: `factor` if given, else max_position_embeddings / original_max_position_embeddings.
    auto factor = f.Num("factor");
    r.factor = factor ? *factor
                      : static_cast<double>(c.max_position_embeddings) / r.original_max_position_embeddings;
    if (auto af = f.Num("attention_factor")) {
      r.attention_factor = *af;
    } else {
      r.attention_factor =
          r.factor <= 1.0 ? 1.0
                          : std::sqrt(1.0 + std::log(r.factor) / std::log(double(r.original_max_position_embeddings)));
    }
  } else if (type == "yarn") {
    r.type = RopeType::kYarn;
    r.factor = need_factor();
    r.original_max_position_embeddings = orig();
    if (r.original_max_position_embeddings <= 0) r.original_max_position_embeddings = c.max_position_embeddings;
    r.beta_fast = f.Num("beta_fast").value_or(32.0);
    r.beta_slow = f.Num("beta_slow").value_or(1.0);
    // transformers' default: 0.1 * ln(factor) + 1 (mscale), unless attention_factor is given.
    r.attention_factor = f.Num("attention_factor").value_or(r.factor <= 1 ? 1.0 : 0.1 * std::log(r.factor) + 1.0);
  } else {
    throw f.Fail(f.Has("rope_type") ? "rope_type" : "type",
                 "unsupported rope type '" + type + "' (supported: default, linear, dynamic, llama3, longrope, su, yarn)");
  }
}

}  // namespace

ModelConfig ParseModelConfig(std::string_view json_text, const std::string& file) {
  return ParseModelConfigJson(ParseJsonText(json_text, file), file);
}

ModelConfig ParseModelConfigJson(const json& j, const std::string& file) {
  if (!j.is_object()) throw Error(file + ": config is not a JSON object");
  Fields f(j, file);
  ModelConfig c;
  c.arch = ResolveArchitecture(f, &c.architecture, &c.model_type);

  c.hidden_size = f.PositiveInt("hidden_size");
  c.num_hidden_layers = f.PositiveInt("num_hidden_layers");
  c.num_attention_heads = f.PositiveInt("num_attention_heads");
  c.num_key_value_heads = f.PositiveInt("num_key_value_heads", c.num_attention_heads);
  c.intermediate_size = f.PositiveInt("intermediate_size");
  c.vocab_size = f.PositiveInt("vocab_size");
  c.max_position_embeddings = f.PositiveInt("max_position_embeddings", 2048);
  c.rms_norm_eps = f.Num("rms_norm_eps").value_or(1e-6);
  if (c.rms_norm_eps <= 0 || c.rms_norm_eps > 1) throw f.Fail("rms_norm_eps", "must be in (0, 1]");

  if (c.hidden_size % c.num_attention_heads != 0 && !f.Has("head_dim"))
    throw f.Fail("num_attention_heads", "hidden_size " + std::to_string(c.hidden_size) +
                                            " is not divisible by num_attention_heads " +
                                            std::to_string(c.num_attention_heads) + " and no head_dim is given");
  c.head_dim = f.PositiveInt("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw f.Fail("num_key_value_heads", "num_attention_heads " + std::to_string(c.num_attention_heads) +
                                            " is not a multiple of num_key_value_heads " +
                                            std::to_string(c.num_key_value_heads));
  if (c.hidden_size > (1 << 20) || c.intermediate_size > (1 << 22) || c.vocab_size > (1 << 24) ||
      c.num_hidden_layers > 4096 || c.num_attention_heads > 4096 || c.head_dim > 4096)
    throw Error(file + ": dimensions are implausibly large (hidden_size, intermediate_size, vocab_size, "
                       "num_hidden_layers, num_attention_heads or head_dim)");

  ParseRope(f, c);
  if (c.rope_theta <= 0) throw f.Fail("rope_theta", "must be positive");
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
    throw f.Fail("partial_rotary_factor", "must be in (0, 1]");
  c.rotary_dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * c.partial_rotary_factor);
  if (c.rotary_dim <= 0 || c.rotary_dim % 2 != 0 || c.rotary_dim > c.head_dim)
    throw f.Fail("partial_rotary_factor", "gives rotary dim " + std::to_string(c.rotary_dim) +
                                              ", which must be even and in (0, head_dim=" +
                                              std::to_string(c.head_dim) + "]");
  if (c.rope_scaling.type == RopeType::kLongRope) {
    size_t want = static_cast<size_t>(c.rotary_dim / 2);
    const char* src = f.Has("rope_parameters") ? "rope_parameters." : "rope_scaling.";
    if (c.rope_scaling.short_factor.size() != want)
      throw Error(file + ": field '" + src + "short_factor': has " + std::to_string(c.rope_scaling.short_factor.size()) +
                  " entries, expected rotary_dim/2 = " + std::to_string(want));
    if (c.rope_scaling.long_factor.size() != want)
      throw Error(file + ": field '" + src + "long_factor': has " + std::to_string(c.rope_scaling.long_factor.size()) +
                  " entries, expected rotary_dim/2 = " + std::to_string(want));
  }

  c.mlp_bias = f.Bool("mlp_bias").value_or(false);
  bool attn_bias = f.Bool("attention_bias").value_or(false);
  switch (c.arch) {
    case Architecture::kLlama:
    case Architecture::kMistral:
      c.attention_bias = attn_bias;
      c.o_proj_bias = attn_bias;
      break;
    case Architecture::kQwen2:
      c.attention_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
      c.o_proj_bias = false;
      c.mlp_bias = false;
      break;
    case Architecture::kQwen3:
      c.attention_bias = attn_bias;
      c.o_proj_bias = attn_bias;
      c.qk_norm = true;
      c.mlp_bias = false;
      break;
    case Architecture::kPhi3:
      c.attention_bias = false;
      c.o_proj_bias = false;
      c.mlp_bias = false;
      c.fused_qkv = true;
      c.fused_gate_up = true;
      break;
  }
  c.tie_word_embeddings = f.Bool("tie_word_embeddings").value_or(false);

  std::string act = f.Str("hidden_act").value_or("silu");
  if (act == "silu" || act == "swish") c.hidden_act = Activation::kSilu;
  else if (act == "gelu") c.hidden_act = Activation::kGelu;
  else if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast") c.hidden_act = Activation::kGeluTanh;
  else throw f.Fail("hidden_act", "unsupported activation '" + act + "' (supported: silu, gelu, gelu_pytorch_tanh)");

  // Sliding window: Mistral and Phi3 use `sliding_window` when set; Qwen2/3 only with use_sliding_window.
  if (auto sw = f.Int("sliding_window")) {
    bool use = true;
    if (c.arch == Architecture::kQwen2 || c.arch == Architecture::kQwen3)
      use = f.Bool("use_sliding_window").value_or(false);
    if (use) {
      if (*sw <= 0) throw f.Fail("sliding_window", "must be positive or null");
      c.sliding_window = *sw;
      int64_t first = 0;
      if (c.arch == Architecture::kQwen2 || c.arch == Architecture::kQwen3)
        first = f.Int("max_window_layers").value_or(0);
      for (int64_t l = 0; l < c.num_hidden_layers; ++l) c.sliding_layers.push_back(l >= first);
    }
  }
  if (const json* lt = f.Get("layer_types"); lt && c.sliding_window) {
    if (!lt->is_array() || static_cast<int64_t>(lt->size()) != c.num_hidden_layers)
      throw f.Fail("layer_types", "expected a list of num_hidden_layers entries");
    for (size_t l = 0; l < lt->size(); ++l) {
      const json& t = (*lt)[l];
      if (!t.is_string() || (t != "sliding_attention" && t != "full_attention"))
        throw f.Fail("layer_types", "entries must be \"sliding_attention\" or \"full_attention\", got " + t.dump());
      c.sliding_layers[l] = t == "sliding_attention";
    }
  }

  auto bos = f.IdList("bos_token_id");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = f.IdList("eos_token_id");
  auto pad = f.IdList("pad_token_id");
  if (!pad.empty()) c.pad_token_id = pad[0];

  std::optional<std::string> dt = f.Str("dtype");
  if (!dt) dt = f.Str("torch_dtype");
  if (dt) {
    auto parsed = ParseTorchDType(*dt);
    if (!parsed) throw f.Fail(f.Has("dtype") ? "dtype" : "torch_dtype", "unsupported dtype '" + *dt + "'");
    c.dtype = *parsed;
  }

  const char* qkey = f.Has("quantization") ? "quantization" : (f.Has("quantization_config") ? "quantization_config" : nullptr);
  if (qkey) {
    const json& q = *f.Get(qkey);
    // Only MLX affine quantization is ours; HF's other quantization_config kinds (gptq, awq, bnb) are not.
    if (q.is_object() && q.contains("quant_method") && !q.contains("bits"))
      throw f.Fail(qkey, "unsupported quantization method " + q["quant_method"].dump() + " (only MLX affine)");
    c.quantization = QuantConfig::FromJson(q, file + ": field '" + qkey + "'");
  }
  return c;
}

ModelConfig LoadModelConfig(const std::string& path) {
  fs::path config_path = IsDirectory(path) ? fs::path(path) / "config.json" : fs::path(path);
  if (!PathPresent(config_path.string())) {
    throw Error(config_path.string() + ": not found (a model directory needs config.json)");
  }
  ModelConfig c = ParseModelConfig(ReadRegularFile(config_path.string()), config_path.string());
  fs::path gen = config_path.parent_path() / "generation_config.json";
  if (PathPresent(gen.string())) {
    json g = ParseJsonText(ReadRegularFile(gen.string()), gen.string());
    if (g.is_object()) {
      Fields gf(g, gen.string());
      for (int64_t id : gf.IdList("eos_token_id"))
        if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end())
          c.eos_token_ids.push_back(id);
      if (!c.bos_token_id) {
        auto bos = gf.IdList("bos_token_id");
        if (!bos.empty()) c.bos_token_id = bos[0];
      }
    }
  }
  return c;
}

std::vector<double> ModelConfig::RopeInvFreq(int64_t seq_len) const {
  const int64_t half = rotary_dim / 2;
  const double dim = static_cast<double>(rotary_dim);
  double base = rope_theta;
  const RopeScaling& r = rope_scaling;
  if (r.type == RopeType::kDynamic) {
    int64_t orig = r.original_max_position_embeddings > 0 ? r.original_max_position_embeddings : max_position_embeddings;
    if (seq_len > orig)
      base *= std::pow(r.factor * static_cast<double>(seq_len) / orig - (r.factor - 1), dim / (dim - 2));
  }
  std::vector<double> inv(half);
  for (int64_t i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / dim);
  switch (r.type) {
    case RopeType::kLinear:
      for (double& x : inv) x /= r.factor;
      break;
    case RopeType::kLlama3: {
      const double old_len = static_cast<double>(r.original_max_position_embeddings);
      const double low_wavelen = old_len / r.low_freq_factor;
      const double high_wavelen = old_len / r.high_freq_factor;
      for (double& x : inv) {
        double wavelen = 2 * M_PI / x;
        if (wavelen < high_wavelen) continue;  // high frequency: unchanged
        if (wavelen > low_wavelen) { x /= r.factor; continue; }
        double smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        x = (1 - smooth) * x / r.factor + smooth * x;
      }
      break;
    }
    case RopeType::kLongRope: {
      const auto& ext = seq_len > r.original_max_position_embeddings ? r.long_factor : r.short_factor;
      for (int64_t i = 0; i < half; ++i) inv[i] /= ext[i];
      break;
    }
    case RopeType::kYarn: {
      // YaRN ramp between interpolated (1/factor) and extrapolated frequencies (as transformers, truncate=true).
      const double orig = static_cast<double>(r.original_max_position_embeddings);
      auto corr_dim = [&](double rot) { return dim * std::log(orig / (rot * 2 * M_PI)) / (2 * std::log(base)); };
      double low = std::max(std::floor(corr_dim(r.beta_fast)), 0.0);
      double high = std::min(std::ceil(corr_dim(r.beta_slow)), dim - 1);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        double extrap = 1 - ramp;
        inv[i] = inv[i] / r.factor * (1 - extrap) + inv[i] * extrap;
      }
      break;
    }
    default:
      break;
  }
  return inv;
}

}  // namespace pensieve
