#include "chat/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/jinja/error.h"
#include "chat/jinja/ops.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

const std::string kEmpty;

}  // namespace

Value Value::Undefined(std::string message, std::string error_kind) {
  Value v;
  v.kind_ = Kind::kUndefined;
  v.s_ = std::make_shared<const std::string>(std::move(message));
  v.s2_ = std::make_shared<const std::string>(std::move(error_kind));
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  v.i_ = b ? 1 : 0;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

static void CheckDepth(int depth) {
  if (depth > kMaxValueDepth) throw JinjaError("RecursionError", "value nested too deeply");
}

Value Value::Markup(std::string s) {
  Value v = String(std::move(s));
  v.b_ = true;
  return v;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

Value Value::MakeList(std::vector<Value> items, bool tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<List>();
  int depth = 1;
  for (const Value& it : items) depth = std::max(depth, it.Depth() + 1);
  CheckDepth(depth);
  v.list_->depth = depth;
  v.list_->items = std::move(items);
  v.list_->tuple = tuple;
  return v;
}

Value Value::Generator(std::vector<Value> items) {
  Value v = MakeList(std::move(items));
  v.list_->generator = true;
  return v;
}

Value Value::MakeDict(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::move(d);
  return v;
}

Value Value::MakeNamespace(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.dict_ = std::move(d);
  return v;
}

Value Value::MakeCallable(std::shared_ptr<Callable> c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.callable_ = std::move(c);
  return v;
}

Value Value::MakeLoop(std::shared_ptr<LoopState> l) {
  Value v;
  v.kind_ = Kind::kLoop;
  v.loop_ = std::move(l);
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& j, int depth) {
  CheckDepth(depth);
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return None();
    case nlohmann::json::value_t::boolean:
      return Bool(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Int(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Float(static_cast<double>(u));
      return Int(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Float(j.get<double>());
    case nlohmann::json::value_t::string:
      return String(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e, depth + 1));
      return MakeList(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (auto it = j.begin(); it != j.end(); ++it) d->Set(it.key(), FromJson(it.value(), depth + 1));
      return MakeDict(std::move(d));
    }
    default:
      return None();  // binary/discarded never come from parsed JSON text
  }
}

int Value::Depth() const {
  if (kind_ == Kind::kList) return list_->depth;
  if (kind_ == Kind::kDict || kind_ == Kind::kNamespace) return dict_->depth;
  return 0;
}

static void CheckRecursion(int depth) {
  if (depth > kMaxValueDepth) throw JinjaError("RecursionError", "maximum recursion depth exceeded");
}

namespace {
thread_local std::vector<Value>* g_graveyard = nullptr;

// Moves children into one worklist drained by the outermost destructor, so freeing depth is constant.
template <typename F>
void Reap(F&& move_children) {
  if (g_graveyard) {
    move_children(*g_graveyard);
    return;
  }
  std::vector<Value> grave;
  g_graveyard = &grave;
  move_children(grave);
  while (!grave.empty()) {
    Value v = std::move(grave.back());
    grave.pop_back();
  }  // each v's destructor may push more children onto `grave`
  g_graveyard = nullptr;
}
}  // namespace

List::~List() {
  Reap([this](std::vector<Value>& g) {
    for (Value& v : items)
      if (v.IsList() || v.IsDict()) g.push_back(std::move(v));
  });
}

Dict::~Dict() {
  Reap([this](std::vector<Value>& g) {
    for (auto& kv : items) {
      if (kv.first.IsList()) g.push_back(std::move(kv.first));
      if (kv.second.IsList() || kv.second.IsDict()) g.push_back(std::move(kv.second));
    }
  });
}

bool HoldsDict(const Value& v, const Dict* d, int depth) {
  CheckRecursion(depth);
  if (v.IsDict()) {
    if (v.dict().get() == d) return true;
    for (const auto& kv : v.dict()->items)
      if (HoldsDict(kv.second, d, depth + 1)) return true;
  } else if (v.IsList()) {
    for (const Value& it : v.list()->items)
      if (HoldsDict(it, d, depth + 1)) return true;
  }
  return false;
}

bool Value::IsGenerator() const { return kind_ == Kind::kList && list_->generator; }
bool Value::IsTuple() const { return kind_ == Kind::kList && list_->tuple; }

double Value::AsFloat() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_); }

const std::string& Value::Str() const { return kind_ == Kind::kString ? *s_ : kEmpty; }

const std::string& Value::UndefinedMessage() const { return (kind_ == Kind::kUndefined && s_) ? *s_ : kEmpty; }

const std::string& Value::UndefinedKind() const {
  static const std::string kDefault = "UndefinedError";
  return (kind_ == Kind::kUndefined && s2_) ? *s2_ : kDefault;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0.0;
    case Kind::kString:
      return !s_->empty();
    case Kind::kList:
      return list_->generator || !list_->items.empty();
    case Kind::kDict:
      return !dict_->items.empty();
    default:
      return true;
  }
}

std::string FormatFloat(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci looks like "-1.2345e+02": split into sign, digits and exponent.
  bool neg = sci[0] == '-';
  size_t epos = sci.find('e');
  std::string mant = sci.substr(neg ? 1 : 0, epos - (neg ? 1 : 0));
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out += digits + std::string(static_cast<size_t>(exp + 1 - static_cast<int>(digits.size())), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ebuf;
  }
  return out;
}

std::string ReprString(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : pystr::Decode(s)) {
    char buf[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0xa0) || c == 0xad) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c >= 0xdc80 && c <= 0xdcff) {  // undecodable byte (Python would hold a surrogate)
      std::snprintf(buf, sizeof(buf), "\\udc%02x", static_cast<unsigned>(c - 0xdc00));
      out += buf;
    } else if ((c >= 0x200b && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) ||
               c == 0xfeff) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      pystr::AppendUtf8(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

std::string Value::ToStr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return *s_;
    default:
      return Repr();
  }
}

std::string Value::Repr(int depth) const {
  CheckRecursion(depth);
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return b_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(i_);
    case Kind::kFloat:
      return FormatFloat(f_);
    case Kind::kString:
      return ReprString(*s_);
    case Kind::kList: {
      if (list_->generator) return "<generator object>";
      std::string out = list_->tuple ? "(" : "[";
      for (size_t i = 0; i < list_->items.size(); ++i) {
        if (i) out += ", ";
        out += list_->items[i].Repr(depth + 1);
        CheckStringSize(out.size());
      }
      if (list_->tuple && list_->items.size() == 1) out += ",";
      out += list_->tuple ? ")" : "]";
      return out;
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      std::string out = kind_ == Kind::kNamespace ? "<Namespace {" : "{";
      for (size_t i = 0; i < dict_->items.size(); ++i) {
        if (i) out += ", ";
        out += dict_->items[i].first.Repr(depth + 1) + ": " + dict_->items[i].second.Repr(depth + 1);
        CheckStringSize(out.size());
      }
      out += kind_ == Kind::kNamespace ? "}>" : "}";
      return out;
    }
    case Kind::kCallable:
      return "<function " + callable_->name + ">";
    case Kind::kLoop:
      return "<LoopContext " + std::to_string(loop_->index0 + 1) + "/" + std::to_string(loop_->items.size()) + ">";
  }
  return "";
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return list_->generator ? "generator" : list_->tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
    case Kind::kLoop:
      return "LoopContext";
  }
  return "object";
}

std::string Dict::IndexKey(const Value& key) {
  switch (key.kind()) {
    case Kind::kString:
      return "s" + key.Str();
    case Kind::kBool:
    case Kind::kInt:
      return "n" + std::to_string(key.AsInt());
    case Kind::kFloat: {
      double f = key.AsFloat();
      if (std::floor(f) == f && std::fabs(f) < 9e18) return "n" + std::to_string(static_cast<int64_t>(f));
      return "f" + FormatFloat(f);
    }
    case Kind::kNone:
      return "N";
    case Kind::kList:
      if (key.IsTuple()) return "t" + key.Repr();
      break;
    default:
      break;
  }
  ThrowTypeError("unhashable type: '" + key.TypeName() + "'");
}

const Value* Dict::Find(const Value& key) const {
  if (!(key.kind() == Kind::kString || key.IsNumber() || key.IsNone() || key.IsTuple())) return nullptr;
  auto it = index_.find(IndexKey(key));
  return it == index_.end() ? nullptr : &items[it->second].second;
}

Value* Dict::Find(const Value& key) {
  return const_cast<Value*>(static_cast<const Dict*>(this)->Find(key));
}

void Dict::Set(const Value& key, Value v) {
  std::string k = IndexKey(key);
  CheckDepth(v.Depth() + 1);
  depth = std::max(depth, v.Depth() + 1);
  auto it = index_.find(k);
  if (it != index_.end()) {
    items[it->second].second = std::move(v);
    return;
  }
  index_.emplace(std::move(k), items.size());
  items.emplace_back(key, std::move(v));
}

const Value* Args::Get(size_t i, std::string_view name) const {
  if (i < pos.size()) return &pos[i];
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

bool Equals(const Value& a, const Value& b, int depth) {
  CheckRecursion(depth);
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) return a.AsFloat() == b.AsFloat();
    return a.AsInt() == b.AsInt();
  }
  if (a.kind() != b.kind()) {
    return false;
  }
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.Str() == b.Str();
    case Kind::kList: {
      if (a.list() == b.list()) return true;
      if (a.list()->generator || b.list()->generator || a.IsTuple() != b.IsTuple()) return false;
      const auto& x = a.list()->items;
      const auto& y = b.list()->items;
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!Equals(x[i], y[i], depth + 1)) return false;
      return true;
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      if (a.dict() == b.dict()) return true;
      if (a.kind() == Kind::kNamespace) return false;
      if (a.dict()->items.size() != b.dict()->items.size()) return false;
      for (const auto& [k, v] : a.dict()->items) {
        const Value* o = b.dict()->Find(k);
        if (!o || !Equals(v, *o, depth + 1)) return false;
      }
      return true;
    }
    case Kind::kCallable:
      return a.callable() == b.callable();
    case Kind::kLoop:
      return a.loop() == b.loop();
    default:
      return false;
  }
}

bool Less(const Value& a, const Value& b, int depth) {
  CheckRecursion(depth);
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) return a.AsFloat() < b.AsFloat();
    return a.AsInt() < b.AsInt();
  }
  if (a.IsString() && b.IsString()) return a.Str() < b.Str();  // UTF-8 byte order == code point order
  if (a.IsList() && b.IsList() && a.IsTuple() == b.IsTuple() && !a.IsGenerator() && !b.IsGenerator()) {
    const auto& x = a.list()->items;
    const auto& y = b.list()->items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i], depth + 1)) continue;
      return Less(x[i], y[i], depth + 1);
    }
    return x.size() < y.size();
  }
  if (a.IsUndefined() || b.IsUndefined()) {
    throw JinjaError("UndefinedError", a.IsUndefined() ? a.UndefinedMessage() : b.UndefinedMessage());
  }
  ThrowTypeError("'<' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

}  // namespace pensieve::jinja
