// Python methods of str, dict and list that templates call (`s.strip()`, `d.items()`, ...), and the
// sandbox's refusal of mutating ones (ImmutableSandboxedEnvironment).
#include <set>

#include "chat/jinja/error.h"
#include "chat/jinja/ops.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

using Fn = std::function<Value(Args&)>;

Value Bind(const std::string& name, Fn fn) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  c->fn = std::move(fn);
  return Value::MakeCallable(std::move(c));
}

Value Unsafe(const Value& obj, const std::string& name) {
  return Value::Undefined("access to attribute " + ReprString(name) + " of " + ReprString(obj.TypeName()) +
                              " object is unsafe.",
                          "SecurityError");
}

std::optional<std::string> OptStr(const Args& a, size_t i, const char* name, const std::string& method) {
  const Value* v = a.Get(i, name);
  if (!v || v->IsNone()) return std::nullopt;
  if (!v->IsString()) ThrowTypeError(method + " arg must be None or str");
  return v->Str();
}

const std::string& ReqStr(const Args& a, size_t i, const std::string& method) {
  if (i >= a.pos.size()) ThrowTypeError(method + "() takes at least " + std::to_string(i + 1) + " argument");
  if (a.pos[i].IsUndefined()) RaiseUndefined(a.pos[i]);
  if (!a.pos[i].IsString())
    ThrowTypeError("must be str, not " + a.pos[i].TypeName());
  return a.pos[i].Str();
}

int64_t OptInt(const Args& a, size_t i, const char* name, int64_t def) {
  const Value* v = a.Get(i, name);
  if (!v || v->IsNone()) return def;
  if (!v->IsInt() && !v->IsBool()) ThrowTypeError("'" + v->TypeName() + "' object cannot be interpreted as an integer");
  return v->AsInt();
}

Value StrList(const std::vector<std::string>& parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.push_back(Value::String(p));
  return Value::MakeList(std::move(out));
}

bool AffixMatch(const std::string& s, const Value& affix, bool prefix, const std::string& method) {
  auto one = [&](const Value& v) {
    if (!v.IsString())
      ThrowTypeError(method + " first arg must be str or a tuple of str, not " + v.TypeName());
    const std::string& p = v.Str();
    if (p.size() > s.size()) return false;
    return prefix ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (affix.IsList() && affix.IsTuple()) {
    for (const Value& v : affix.list()->items)
      if (one(v)) return true;
    return false;
  }
  return one(affix);
}

// str.format with automatic/explicit positional and named fields; format specs are not supported.
std::string Format(const std::string& fmt, const Args& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
        out.push_back('{');
        ++i;
        continue;
      }
      size_t close = fmt.find('}', i);
      if (close == std::string::npos) throw JinjaError("ValueError", "Single '{' encountered in format string");
      std::string field = fmt.substr(i + 1, close - i - 1);
      size_t colon = field.find(':');
      if (colon != std::string::npos) field.resize(colon);
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_index >= a.pos.size())
          throw JinjaError("IndexError", "Replacement index " + std::to_string(auto_index) + " out of range");
        v = &a.pos[auto_index++];
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t k = std::stoul(field);
        if (k >= a.pos.size()) throw JinjaError("IndexError", "Replacement index " + field + " out of range");
        v = &a.pos[k];
      } else {
        for (const auto& [name, val] : a.kw)
          if (name == field) v = &val;
        if (!v) throw JinjaError("KeyError", ReprString(field));
      }
      out += v->ToStr();
      i = close;
    } else if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      out.push_back('}');
    } else {
      out.push_back(c);
    }
  }
  CheckStringSize(out.size());
  return out;
}

Value StringMethod(const Value& obj, const std::string& name) {
  const std::string s = obj.Str();
  auto bind = [&](Fn fn) { return Bind(name, std::move(fn)); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return bind([s, l, r, name](Args& a) { return Value::String(pystr::Strip(s, OptStr(a, 0, "chars", name), l, r)); });
  }
  if (name == "split" || name == "rsplit") {
    bool rev = name == "rsplit";
    return bind([s, rev, name](Args& a) {
      auto sep = OptStr(a, 0, "sep", name);
      int64_t maxsplit = OptInt(a, 1, "maxsplit", -1);
      return StrList(rev ? pystr::RSplit(s, sep, maxsplit) : pystr::Split(s, sep, maxsplit));
    });
  }
  if (name == "splitlines") {
    return bind([s](Args&) {
      std::vector<std::string> lines;
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' || s[i] == '\r') {
          lines.push_back(s.substr(start, i - start));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          start = i + 1;
        }
      }
      if (start < s.size()) lines.push_back(s.substr(start));
      return StrList(lines);
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool prefix = name == "startswith";
    return bind([s, prefix, name](Args& a) {
      if (a.pos.empty()) ThrowTypeError(name + "() takes at least 1 argument (0 given)");
      if (a.pos[0].IsUndefined()) RaiseUndefined(a.pos[0]);
      return Value::Bool(AffixMatch(s, a.pos[0], prefix, name));
    });
  }
  if (name == "upper") return bind([s](Args&) { return Value::String(pystr::Upper(s)); });
  if (name == "lower") return bind([s](Args&) { return Value::String(pystr::Lower(s)); });
  if (name == "title") return bind([s](Args&) { return Value::String(pystr::Title(s)); });
  if (name == "capitalize") return bind([s](Args&) { return Value::String(pystr::Capitalize(s)); });
  if (name == "swapcase") return bind([s](Args&) { return Value::String(pystr::SwapCase(s)); });
  if (name == "replace") {
    return bind([s](Args& a) {
      if (!a.kw.empty()) ThrowTypeError("str.replace() takes no keyword arguments");
      const std::string& o = ReqStr(a, 0, "replace");
      const std::string& n = ReqStr(a, 1, "replace");
      std::string r = pystr::Replace(s, o, n, OptInt(a, 2, "count", -1));
      CheckStringSize(r.size());
      return Value::String(std::move(r));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    bool rev = name[0] == 'r';
    bool raise = name.find("index") != std::string::npos;
    return bind([s, rev, raise, name](Args& a) {
      int64_t i = pystr::Find(s, ReqStr(a, 0, name), rev);
      if (i < 0 && raise) throw JinjaError("ValueError", "substring not found");
      return Value::Int(i);
    });
  }
  if (name == "count") return bind([s](Args& a) { return Value::Int(pystr::Count(s, ReqStr(a, 0, "count"))); });
  if (name == "join") {
    return bind([s](Args& a) {
      if (a.pos.empty()) ThrowTypeError("str.join() takes exactly one argument (0 given)");
      std::string out;
      size_t i = 0;
      for (const Value& v : Iterate(a.pos[0])) {
        if (!v.IsString())
          ThrowTypeError("sequence item " + std::to_string(i) + ": expected str instance, " + v.TypeName() + " found");
        if (i++) out += s;
        out += v.Str();
        CheckStringSize(out.size());
      }
      return Value::String(std::move(out));
    });
  }
  if (name == "format") return bind([s](Args& a) { return Value::String(Format(s, a)); });
  auto pred = [&](bool (*test)(char32_t)) {
    return bind([s, test](Args&) {
      std::u32string u = pystr::Decode(s);
      if (u.empty()) return Value::Bool(false);
      for (char32_t c : u)
        if (!test(c)) return Value::Bool(false);
      return Value::Bool(true);
    });
  };
  if (name == "isdigit") return pred([](char32_t c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") return pred([](char32_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; });
  if (name == "isalnum")
    return pred([](char32_t c) { return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); });
  if (name == "isspace") return pred(&pystr::IsSpace);
  if (name == "isupper") return bind([s](Args&) { return Value::Bool(pystr::IsUpperStr(s)); });
  if (name == "islower") return bind([s](Args&) { return Value::Bool(pystr::IsLowerStr(s)); });
  return Value::Undefined();
}

Value DictMethod(const Value& obj, const std::string& name) {
  static const std::set<std::string> kUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};
  if (kUnsafe.count(name)) return Unsafe(obj, name);
  auto d = obj.dict();
  if (name == "get") {
    return Bind(name, [d](Args& a) {
      if (a.pos.empty()) ThrowTypeError("get expected at least 1 argument, got 0");
      const Value* v = d->Find(a.pos[0]);
      if (v) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::None();
    });
  }
  if (name == "items") {
    return Bind(name, [d](Args&) {
      std::vector<Value> out;
      for (const auto& [k, v] : d->items) out.push_back(Value::MakeList({k, v}, true));
      return Value::MakeList(std::move(out));
    });
  }
  if (name == "keys" || name == "values") {
    bool keys = name == "keys";
    return Bind(name, [d, keys](Args&) {
      std::vector<Value> out;
      for (const auto& [k, v] : d->items) out.push_back(keys ? k : v);
      return Value::MakeList(std::move(out));
    });
  }
  if (name == "copy") {
    return Bind(name, [d](Args&) { return Value::MakeDict(std::make_shared<Dict>(*d)); });
  }
  return Value::Undefined();
}

Value ListMethod(const Value& obj, const std::string& name) {
  static const std::set<std::string> kUnsafe = {"append", "clear", "extend", "insert", "pop", "remove", "reverse",
                                                "sort"};
  if (kUnsafe.count(name)) return Unsafe(obj, name);
  auto l = obj.list();
  if (name == "index" || name == "count") {
    bool index = name == "index";
    return Bind(name, [l, index](Args& a) {
      if (a.pos.empty()) ThrowTypeError("expected 1 argument");
      int64_t n = 0;
      for (size_t i = 0; i < l->items.size(); ++i) {
        if (!Equals(l->items[i], a.pos[0])) continue;
        if (index) return Value::Int(static_cast<int64_t>(i));
        ++n;
      }
      if (index) throw JinjaError("ValueError", a.pos[0].Repr() + " is not in list");
      return Value::Int(n);
    });
  }
  if (name == "copy") return Bind(name, [l](Args&) { return Value::MakeList(l->items, l->tuple); });
  return Value::Undefined();
}

}  // namespace

Value MethodOf(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Kind::kString:
      return StringMethod(obj, name);
    case Kind::kDict:
      return DictMethod(obj, name);
    case Kind::kList:
      if (obj.IsGenerator()) return Value::Undefined();
      return ListMethod(obj, name);
    case Kind::kLoop:
      if (name == "cycle") {
        auto l = obj.loop();
        return Bind(name, [l](Args& a) {
          if (a.pos.empty()) throw JinjaError("TypeError", "no items for cycling given");
          return a.pos[l->index0 % a.pos.size()];
        });
      }
      return Value::Undefined();
    default:
      return Value::Undefined();
  }
}

}  // namespace pensieve::jinja
