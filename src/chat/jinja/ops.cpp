#include "chat/jinja/ops.h"

#include <cmath>

#include "chat/jinja/error.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

[[noreturn]] void Unsupported(const std::string& op, const Value& a, const Value& b) {
  ThrowTypeError("unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

[[noreturn]] void Overflow() {
  throw JinjaError("OverflowError", "integer result too large for this implementation (64-bit)");
}

// Python ints are unbounded; ours are 64-bit and refuse to wrap.
int64_t AddInt(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) Overflow();
  return r;
}
int64_t SubInt(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) Overflow();
  return r;
}
int64_t MulInt(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) Overflow();
  return r;
}

Value Repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.IsString()) {
    CheckStringSize(seq.Str().size() * static_cast<size_t>(std::min<int64_t>(n, INT32_MAX)));
    std::string out;
    out.reserve(seq.Str().size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.Str();
    return Value::String(std::move(out));
  }
  const auto& items = seq.list()->items;
  CheckItemCount(items.size() * static_cast<size_t>(std::min<int64_t>(n, INT32_MAX)));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::MakeList(std::move(out), seq.IsTuple());
}

int64_t SliceIndex(const Value& v) {
  if (v.IsInt() || v.IsBool()) return v.AsInt();
  ThrowTypeError("slice indices must be integers or None or have an __index__ method");
}

}  // namespace

namespace {
thread_local SizeLimits g_limits;
}  // namespace

const SizeLimits& Limits() { return g_limits; }

ScopedSizeLimits::ScopedSizeLimits(const SizeLimits& limits) : saved_(g_limits) { g_limits = limits; }
ScopedSizeLimits::~ScopedSizeLimits() { g_limits = saved_; }

void CheckStringSize(size_t n) {
  if (n > Limits().max_string)
    throw JinjaError("OverflowError", "string of " + std::to_string(n) + " bytes exceeds the template output limit");
}

void CheckItemCount(size_t n) {
  if (n > Limits().max_items)
    throw JinjaError("OverflowError", "sequence of " + std::to_string(n) + " items exceeds the template limit");
}

void RaiseUndefined(const Value& u) { throw JinjaError(u.UndefinedKind(), u.UndefinedMessage()); }

std::string ObjectTypeRepr(const Value& v) {
  switch (v.kind()) {
    case Kind::kNone: return "None";
    case Kind::kNamespace: return "jinja2.utils.Namespace object";
    case Kind::kLoop: return "jinja2.runtime.LoopContext object";
    case Kind::kCallable: return "function object";
    default: return v.TypeName() + " object";
  }
}

static Value MissingAttr(const Value& obj, const std::string& name) {
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute " + ReprString(name));
}

static Value LoopAttr(const LoopState& l, const std::string& name) {
  const int64_t n = static_cast<int64_t>(l.items.size());
  const int64_t i = static_cast<int64_t>(l.index0);
  if (name == "index") return Value::Int(i + 1);
  if (name == "index0") return Value::Int(i);
  if (name == "revindex") return Value::Int(n - i);
  if (name == "revindex0") return Value::Int(n - i - 1);
  if (name == "first") return Value::Bool(i == 0);
  if (name == "last") return Value::Bool(i == n - 1);
  if (name == "length") return Value::Int(n);
  if (name == "depth") return Value::Int(l.depth0 + 1);
  if (name == "depth0") return Value::Int(l.depth0);
  if (name == "previtem")
    return i > 0 ? l.items[static_cast<size_t>(i - 1)] : Value::Undefined("there is no previous item");
  if (name == "nextitem")
    return i + 1 < n ? l.items[static_cast<size_t>(i + 1)] : Value::Undefined("there is no next item");
  return Value::Undefined("'jinja2.runtime.LoopContext object' has no attribute " + ReprString(name));
}

Value GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Kind::kUndefined:
      RaiseUndefined(obj);
    case Kind::kNamespace: {
      const Value* v = obj.dict()->Find(Value::String(name));
      return v ? *v : MissingAttr(obj, name);
    }
    case Kind::kDict: {
      Value m = MethodOf(obj, name);
      if (!m.IsUndefined() || !m.UndefinedMessage().empty()) return m;
      const Value* v = obj.dict()->Find(Value::String(name));
      return v ? *v : MissingAttr(obj, name);
    }
    case Kind::kLoop: {
      if (name == "cycle") return MethodOf(obj, name);
      return LoopAttr(*obj.loop(), name);
    }
    default: {
      Value m = MethodOf(obj, name);
      if (!m.IsUndefined() || !m.UndefinedMessage().empty()) return m;
      return MissingAttr(obj, name);
    }
  }
}

Value GetItem(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Kind::kUndefined:
      RaiseUndefined(obj);
    case Kind::kDict:
    case Kind::kNamespace: {
      const Value* v = obj.dict()->Find(key);
      if (v) return *v;
      if (key.IsString()) return obj.kind() == Kind::kDict ? GetAttr(obj, key.Str()) : MissingAttr(obj, key.Str());
      return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key.Repr());
    }
    case Kind::kList: {
      if (obj.IsGenerator()) ThrowTypeError("'generator' object is not subscriptable");
      if (key.IsInt() || key.IsBool()) {
        const auto& items = obj.list()->items;
        int64_t i = key.AsInt();
        int64_t n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key.Repr());
        return items[static_cast<size_t>(i)];
      }
      if (key.IsString()) return GetAttr(obj, key.Str());
      return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key.Repr());
    }
    case Kind::kString: {
      if (key.IsInt() || key.IsBool()) {
        std::u32string u = pystr::Decode(obj.Str());
        int64_t i = key.AsInt();
        int64_t n = static_cast<int64_t>(u.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key.Repr());
        return Value::String(pystr::Encode(std::u32string_view(u).substr(static_cast<size_t>(i), 1)));
      }
      if (key.IsString()) return GetAttr(obj, key.Str());
      return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key.Repr());
    }
    case Kind::kLoop:
      if (key.IsString()) return GetAttr(obj, key.Str());
      [[fallthrough]];
    default:
      if (key.IsString()) return GetAttr(obj, key.Str());
      return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + key.Repr());
  }
}

Value Slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.IsUndefined()) RaiseUndefined(obj);
  if (obj.IsGenerator()) ThrowTypeError("'generator' object is not subscriptable");
  if (!obj.IsString() && !obj.IsList()) ThrowTypeError("'" + obj.TypeName() + "' object is not subscriptable");
  int64_t step = step_v.IsNone() || step_v.IsUndefined() ? 1 : SliceIndex(step_v);
  if (step == 0) throw JinjaError("ValueError", "slice step cannot be zero");
  std::u32string u;
  int64_t len;
  if (obj.IsString()) {
    u = pystr::Decode(obj.Str());
    len = static_cast<int64_t>(u.size());
  } else {
    len = static_cast<int64_t>(obj.list()->items.size());
  }
  auto adjust = [&](const Value& v, bool is_start) {
    if (v.IsNone() || v.IsUndefined()) return is_start ? (step < 0 ? len - 1 : 0) : (step < 0 ? -1 : len);
    int64_t x = SliceIndex(v);
    if (x < 0) {
      x += len;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= len) {
      x = step < 0 ? len - 1 : len;
    }
    return x;
  };
  int64_t start = adjust(start_v, true);
  int64_t stop = adjust(stop_v, false);
  std::vector<size_t> idx;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(static_cast<size_t>(i));
  if (obj.IsString()) {
    std::u32string out;
    for (size_t i : idx) out.push_back(u[i]);
    return Value::String(pystr::Encode(out));
  }
  std::vector<Value> out;
  for (size_t i : idx) out.push_back(obj.list()->items[i]);
  return Value::MakeList(std::move(out), obj.IsTuple());
}

static double PyFloorDiv(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) div -= 1.0;
  }
  if (div != 0.0) {
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return fl;
  }
  return std::copysign(0.0, vx / wx);
}

static double PyFloatMod(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) mod += wx;
  } else {
    mod = std::copysign(0.0, wx);
  }
  return mod;
}

Value BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = a.ToStr();
    s += b.ToStr();
    CheckStringSize(s.size());
    return Value::String(std::move(s));
  }
  if (a.IsUndefined()) RaiseUndefined(a);
  if (b.IsUndefined()) RaiseUndefined(b);
  const bool nums = a.IsNumber() && b.IsNumber();
  const bool floats = nums && (a.IsFloat() || b.IsFloat());
  if (op == "+") {
    if (nums) {
      if (floats) return Value::Float(a.AsFloat() + b.AsFloat());
      return Value::Int(AddInt(a.AsInt(), b.AsInt()));
    }
    if (a.IsString() && b.IsString()) {
      CheckStringSize(a.Str().size() + b.Str().size());
      if (a.IsMarkup() == b.IsMarkup())
        return a.IsMarkup() ? Value::Markup(a.Str() + b.Str()) : Value::String(a.Str() + b.Str());
      // Markup + str escapes the plain side (markupsafe's __add__/__radd__).
      std::string s = a.IsMarkup() ? a.Str() + HtmlEscape(b.Str()) : HtmlEscape(a.Str()) + b.Str();
      CheckStringSize(s.size());
      return Value::Markup(std::move(s));
    }
    if (a.IsList() && b.IsList() && !a.IsGenerator() && !b.IsGenerator() && a.IsTuple() == b.IsTuple()) {
      CheckItemCount(a.list()->items.size() + b.list()->items.size());
      std::vector<Value> out = a.list()->items;
      out.insert(out.end(), b.list()->items.begin(), b.list()->items.end());
      return Value::MakeList(std::move(out), a.IsTuple());
    }
    if (a.IsString() || (a.IsList() && !a.IsGenerator()))
      ThrowTypeError("can only concatenate " + a.TypeName() + " (not \"" + b.TypeName() + "\") to " + a.TypeName());
    Unsupported("+", a, b);
  }
  if (op == "-") {
    if (!nums) Unsupported("-", a, b);
    if (floats) return Value::Float(a.AsFloat() - b.AsFloat());
    return Value::Int(SubInt(a.AsInt(), b.AsInt()));
  }
  if (op == "*") {
    if (nums) {
      if (floats) return Value::Float(a.AsFloat() * b.AsFloat());
      return Value::Int(MulInt(a.AsInt(), b.AsInt()));
    }
    if ((a.IsString() || (a.IsList() && !a.IsGenerator())) && (b.IsInt() || b.IsBool())) return Repeat(a, b.AsInt());
    if ((b.IsString() || (b.IsList() && !b.IsGenerator())) && (a.IsInt() || a.IsBool())) return Repeat(b, a.AsInt());
    if (a.IsString() || a.IsList() || b.IsString() || b.IsList())
      ThrowTypeError("can't multiply sequence by non-int of type '" + (a.IsNumber() ? a : b).TypeName() + "'");
    Unsupported("*", a, b);
  }
  if (op == "/") {
    if (!nums) Unsupported("/", a, b);
    if (b.AsFloat() == 0.0) throw JinjaError("ZeroDivisionError", floats ? "float division by zero" : "division by zero");
    return Value::Float(a.AsFloat() / b.AsFloat());
  }
  if (op == "//") {
    if (!nums) Unsupported("//", a, b);
    if (floats) {
      if (b.AsFloat() == 0.0) throw JinjaError("ZeroDivisionError", "float floor division by zero");
      return Value::Float(PyFloorDiv(a.AsFloat(), b.AsFloat()));
    }
    int64_t x = a.AsInt(), y = b.AsInt();
    if (y == 0) throw JinjaError("ZeroDivisionError", "integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) Overflow();
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value::Int(q);
  }
  if (op == "%") {
    if (!nums) Unsupported("%", a, b);
    if (floats) {
      if (b.AsFloat() == 0.0) throw JinjaError("ZeroDivisionError", "float modulo");
      return Value::Float(PyFloatMod(a.AsFloat(), b.AsFloat()));
    }
    int64_t x = a.AsInt(), y = b.AsInt();
    if (y == 0) throw JinjaError("ZeroDivisionError", "integer division or modulo by zero");
    if (y == -1) return Value::Int(0);
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value::Int(r);
  }
  if (op == "**") {
    if (!nums) Unsupported("** or pow()", a, b);
    if (!floats && b.AsInt() >= 0) {
      int64_t base = a.AsInt(), e = b.AsInt(), r = 1;
      while (e > 0) {
        if (e & 1) r = MulInt(r, base);
        e >>= 1;
        if (e > 0) base = MulInt(base, base);
      }
      return Value::Int(r);
    }
    if (a.AsFloat() == 0.0 && b.AsFloat() < 0)
      throw JinjaError("ZeroDivisionError", "0.0 cannot be raised to a negative power");
    return Value::Float(std::pow(a.AsFloat(), b.AsFloat()));
  }
  ThrowTypeError("unknown operator " + op);
}

Value Negate(const Value& a, bool minus) {
  if (a.IsUndefined()) RaiseUndefined(a);
  if (a.IsFloat()) return Value::Float(minus ? -a.AsFloat() : a.AsFloat());
  if (a.IsInt() || a.IsBool()) {
    if (!minus) return Value::Int(a.AsInt());
    if (a.AsInt() == INT64_MIN) Overflow();
    return Value::Int(-a.AsInt());
  }
  ThrowTypeError(std::string("bad operand type for unary ") + (minus ? "-" : "+") + ": '" + a.TypeName() + "'");
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (item.IsUndefined()) RaiseUndefined(item);
      if (!item.IsString())
        ThrowTypeError("'in <string>' requires string as left operand, not " + item.TypeName());
      return container.Str().find(item.Str()) != std::string::npos;
    case Kind::kList:
      for (const Value& v : Iterate(container))
        if (Equals(v, item)) return true;
      return false;
    case Kind::kDict:
      return container.dict()->Find(item) != nullptr;
    default:
      ThrowTypeError("argument of type '" + container.TypeName() + "' is not iterable");
  }
}

bool Compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") return !Contains(b, a);
  auto fail = [&]() -> bool {
    if (a.IsUndefined()) RaiseUndefined(a);
    if (b.IsUndefined()) RaiseUndefined(b);
    ThrowTypeError("'" + op + "' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
  };
  const bool comparable = (a.IsNumber() && b.IsNumber()) || (a.IsString() && b.IsString()) ||
                          (a.IsList() && b.IsList() && !a.IsGenerator() && !b.IsGenerator() &&
                           a.IsTuple() == b.IsTuple());
  if (!comparable) return fail();
  if (op == "<") return Less(a, b);
  if (op == ">") return Less(b, a);
  if (op == "<=") return !Less(b, a);
  if (op == ">=") return !Less(a, b);
  return fail();
}

std::vector<Value> Iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
      if (v.list()->generator) {
        if (v.list()->consumed) return {};
        v.list()->consumed = true;
      }
      return v.list()->items;
    case Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict()->items.size());
      for (const auto& kv : v.dict()->items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      for (char32_t c : pystr::Decode(v.Str())) chars.push_back(Value::String(pystr::Encode(std::u32string(1, c))));
      return chars;
    }
    default:
      ThrowTypeError("'" + v.TypeName() + "' object is not iterable");
  }
}

int64_t Length(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(pystr::Length(v.Str()));
    case Kind::kList:
      if (v.IsGenerator()) ThrowTypeError("object of type 'generator' has no len()");
      return static_cast<int64_t>(v.list()->items.size());
    case Kind::kDict:
      return static_cast<int64_t>(v.dict()->items.size());
    case Kind::kLoop:
      return static_cast<int64_t>(v.loop()->items.size());
    default:
      ThrowTypeError("object of type '" + v.TypeName() + "' has no len()");
  }
}

}  // namespace pensieve::jinja
