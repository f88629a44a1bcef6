#include "cli/sampling_defaults.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "util/file.h"

namespace pensieve::cli {

api::SamplingDefaults ReadSamplingDefaults(const std::string& model_dir) {
  api::SamplingDefaults d;
  const std::string path = model_dir + "/generation_config.json";
  if (!PathPresent(path)) return d;
  const auto j = nlohmann::json::parse(ReadRegularFile(path), nullptr, false);
  if (!j.is_object()) return d;
  const auto number = [&](const char* key, double lo, double hi) -> std::optional<double> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return std::nullopt;
    double v = it->get<double>();
    return v >= lo && v <= hi ? std::optional<double>(v) : std::nullopt;
  };
  if (auto it = j.find("do_sample"); it != j.end() && it->is_boolean() && !it->get<bool>()) {
    d.temperature = 0.0f;
    return d;
  }
  if (auto v = number("temperature", 0.0, 2.0)) d.temperature = static_cast<float>(*v);
  if (auto v = number("top_p", 0.0, 1.0)) d.top_p = static_cast<float>(*v);
  if (auto v = number("top_k", 0.0, 1 << 30)) d.top_k = static_cast<int>(*v);
  if (auto v = number("min_p", 0.0, 1.0)) d.min_p = static_cast<float>(*v);
  return d;
}

std::string Describe(const api::SamplingDefaults& d) {
  std::string s;
  const auto add = [&](const char* name, const std::string& v) { s += (s.empty() ? "" : ", ") + std::string(name) + " " + v; };
  const auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  if (d.temperature) add("temperature", *d.temperature == 0.0f ? "0 (greedy)" : num(*d.temperature));
  if (d.top_p) add("top_p", num(*d.top_p));
  if (d.top_k) add("top_k", std::to_string(*d.top_k));
  if (d.min_p) add("min_p", num(*d.min_p));
  return s.empty() ? "none" : s;
}

}  // namespace pensieve::cli
