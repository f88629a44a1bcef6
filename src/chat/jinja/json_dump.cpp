#include "chat/jinja/json_dump.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/jinja/error.h"
#include "chat/jinja/ops.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

constexpr int kMaxDepth = 500;  // Python's json raises RecursionError near its recursion limit too

void AppendString(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  char buf[16];
  for (char32_t c : pystr::Decode(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7f && c != 0x7f)) {
          if (c >= 0x10000 && !(c >= 0xdc80 && c <= 0xdcff)) {
            char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)),
                          static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          }
          out += buf;
        } else {
          pystr::AppendUtf8(out, c);
        }
    }
  }
  out.push_back('"');
}

std::string FloatJson(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f < 0 ? "-Infinity" : "Infinity";
  return FormatFloat(f);
}

class Dumper {
 public:
  explicit Dumper(const DumpOptions& o) : o_(o) {}

  void Dump(const Value& v, int level, std::string& out) {
    if (level > kMaxDepth) throw JinjaError("RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
    switch (v.kind()) {
      case Kind::kNone: out += "null"; return;
      case Kind::kBool: out += v.AsBool() ? "true" : "false"; return;
      case Kind::kInt: out += std::to_string(v.AsInt()); return;
      case Kind::kFloat: out += FloatJson(v.AsFloat()); return;
      case Kind::kString: AppendString(out, v.Str(), o_.ensure_ascii); return;
      case Kind::kList: {
        if (v.IsGenerator()) break;
        const auto& items = v.list()->items;
        if (items.empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += o_.item_separator;
          Newline(level + 1, out);
          Dump(items[i], level + 1, out);
          CheckStringSize(out.size());
        }
        Newline(level, out);
        out.push_back(']');
        return;
      }
      case Kind::kDict: {
        std::vector<std::pair<std::string, const Value*>> entries;
        for (const auto& [k, val] : v.dict()->items) entries.emplace_back(KeyString(k), &val);
        if (o_.sort_keys)
          std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        if (entries.empty()) {
          out += "{}";
          return;
        }
        out.push_back('{');
        for (size_t i = 0; i < entries.size(); ++i) {
          if (i) out += o_.item_separator;
          Newline(level + 1, out);
          AppendString(out, entries[i].first, o_.ensure_ascii);
          out += o_.key_separator;
          Dump(*entries[i].second, level + 1, out);
          CheckStringSize(out.size());
        }
        Newline(level, out);
        out.push_back('}');
        return;
      }
      default:
        break;
    }
    ThrowTypeError("Object of type " + v.TypeName() + " is not JSON serializable");
  }

 private:
  void Newline(int level, std::string& out) const {
    if (!o_.indent) return;
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *o_.indent;
  }

  static std::string KeyString(const Value& k) {
    switch (k.kind()) {
      case Kind::kString: return k.Str();
      case Kind::kBool: return k.AsBool() ? "true" : "false";
      case Kind::kInt: return std::to_string(k.AsInt());
      case Kind::kFloat: return FloatJson(k.AsFloat());
      case Kind::kNone: return "null";
      default: ThrowTypeError("keys must be str, int, float, bool or None, not " + k.TypeName());
    }
  }

  const DumpOptions& o_;
};

}  // namespace

std::string JsonDumps(const Value& v, const DumpOptions& options) {
  std::string out;
  Dumper(options).Dump(v, 0, out);
  return out;
}

}  // namespace pensieve::jinja
