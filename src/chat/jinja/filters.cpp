// Jinja2 filters (3.1 semantics) and transformers' tojson.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "chat/jinja/builtins.h"
#include "chat/jinja/error.h"
#include "chat/jinja/json_dump.h"
#include "chat/jinja/ops.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

using FilterFn = Value (*)(const Value&, Args&);

const Value* Opt(const Args& a, size_t i, const char* name) {
  const Value* v = a.Get(i, name);
  return (v && !v->IsUndefined()) ? v : nullptr;
}

bool OptBool(const Args& a, size_t i, const char* name, bool def) {
  const Value* v = Opt(a, i, name);
  return v ? v->Truthy() : def;
}

// str() the way Jinja's soft_str does: Undefined prints as ''.
std::string SoftStr(const Value& v) { return v.ToStr(); }

// Jinja's make_attrgetter: "a.b.0" walks attributes/items (digits are indices).
Value GetPath(const Value& item, const Value& attribute) {
  if (!attribute.IsString()) return GetItem(item, attribute);
  Value cur = item;
  for (const std::string& part : pystr::Split(attribute.Str(), std::string("."), -1)) {
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = digits ? GetItem(cur, Value::Int(std::stoll(part))) : GetItem(cur, Value::String(part));
  }
  return cur;
}

Value IgnoreCase(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.IsString()) return Value::String(pystr::Lower(v.Str()));
  return v;
}

// Jinja's sort keys are lists ([key]); list comparison tests == before <, so equal keys (None, None)
// never reach the unorderable '<'.
bool SortLess(const Value& a, const Value& b) {
  if (Equals(a, b)) return false;
  return Less(a, b);
}

// sort(attribute="a,b") sorts by several keys.
std::vector<Value> SortKeys(const Value& item, const Value* attr, bool cs) {
  std::vector<Value> keys;
  if (!attr || !attr->IsString()) {
    keys.push_back(IgnoreCase(attr ? GetPath(item, *attr) : item, cs));
    return keys;
  }
  for (const std::string& part : pystr::Split(attr->Str(), std::string(","), -1))
    keys.push_back(IgnoreCase(GetPath(item, Value::String(part)), cs));
  return keys;
}

bool KeysLess(const std::vector<Value>& a, const std::vector<Value>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (Equals(a[i], b[i])) continue;
    return Less(a[i], b[i]);
  }
  return a.size() < b.size();
}

// ---- string filters ----
Value FUpper(const Value& v, Args&) { return Value::String(pystr::Upper(SoftStr(v))); }
Value FLower(const Value& v, Args&) { return Value::String(pystr::Lower(SoftStr(v))); }
Value FCapitalize(const Value& v, Args&) { return Value::String(pystr::Capitalize(SoftStr(v))); }

// Jinja's title: words start after runs of '-', whitespace, '(', '{', '[', '<'; each word is
// word[0].upper() + word[1:].lower().
Value FTitle(const Value& v, Args&) {
  std::u32string u = pystr::Decode(SoftStr(v));
  std::string out;
  bool at_start = true;
  for (char32_t c : u) {
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || pystr::IsSpace(c);
    std::string ch = pystr::Encode(std::u32string(1, c));
    if (sep) {
      out += ch;
      at_start = true;
    } else {
      out += at_start ? pystr::Upper(ch) : pystr::Lower(ch);
      at_start = false;
    }
  }
  return Value::String(out);
}

Value FTrim(const Value& v, Args& a) {
  std::optional<std::string> chars;
  if (const Value* c = Opt(a, 0, "chars"); c && !c->IsNone()) chars = c->ToStr();
  return Value::String(pystr::Strip(SoftStr(v), chars, true, true));
}

Value FReplace(const Value& v, Args& a) {
  const Value* o = Opt(a, 0, "old");
  const Value* n = Opt(a, 1, "new");
  if (!o || !n) ThrowTypeError("replace() missing required arguments 'old' and 'new'");
  const Value* c = Opt(a, 2, "count");
  int64_t count = (c && !c->IsNone()) ? c->AsInt() : -1;
  std::string r = pystr::Replace(SoftStr(v), o->ToStr(), n->ToStr(), count);
  CheckStringSize(r.size());
  return Value::String(std::move(r));
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::u32string u = pystr::Decode(s), cur;
  for (size_t i = 0; i < u.size(); ++i) {
    char32_t c = u[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      cur.push_back(c);
      continue;
    }
    if (c == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
    lines.push_back(pystr::Encode(cur));
    cur.clear();
  }
  if (!cur.empty()) lines.push_back(pystr::Encode(cur));
  return lines;
}

Value FIndent(const Value& v, Args& a) {
  const Value* w = Opt(a, 0, "width");
  std::string ind = !w ? "    " : w->IsString() ? w->Str() : std::string(static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(w->AsInt(), 1 << 16))), ' ');
  bool first = OptBool(a, 1, "first", false);
  bool blank = OptBool(a, 2, "blank", false);
  std::string s = SoftStr(v) + "\n";  // Jinja's quirk so splitlines() keeps a trailing empty line
  std::vector<std::string> lines = SplitLines(s);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + ind;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += ind + lines[i];
    }
  }
  if (first) rv = ind + rv;
  CheckStringSize(rv.size());
  return Value::String(std::move(rv));
}

Value FCenter(const Value& v, Args& a) {
  std::string s = SoftStr(v);
  const Value* w = Opt(a, 0, "width");
  int64_t width = w ? w->AsInt() : 80;
  int64_t len = static_cast<int64_t>(pystr::Length(s));
  if (width <= len) return Value::String(s);
  CheckStringSize(static_cast<size_t>(width));
  int64_t marg = width - len;
  int64_t left = marg / 2 + (marg & width & 1);
  return Value::String(std::string(static_cast<size_t>(left), ' ') + s +
                       std::string(static_cast<size_t>(marg - left), ' '));
}

Value FWordcount(const Value& v, Args&) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : pystr::Decode(SoftStr(v))) {
    bool w = (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || c == '_' ||
             (c >= 0x80 && !pystr::IsSpace(c));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::Int(n);
}

Value FEscape(const Value& v, Args&) {
  if (v.IsMarkup()) return v;
  return Value::Markup(HtmlEscape(SoftStr(v)));
}

Value FForceEscape(const Value& v, Args&) { return Value::Markup(HtmlEscape(SoftStr(v))); }

Value FSafe(const Value& v, Args&) { return Value::Markup(SoftStr(v)); }
Value FString(const Value& v, Args&) { return Value::String(SoftStr(v)); }

// printf-style `"%s-%d" | format(a, b)`: %s %r %d %i %f %x %% with optional precision.
Value FFormat(const Value& v, Args& a) {
  std::string fmt = SoftStr(v), out;
  size_t ai = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) throw JinjaError("ValueError", "incomplete format");
    if (fmt[i] == '%') {
      out.push_back('%');
      continue;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::string("-+ 0#.0123456789").find(fmt[i]) != std::string::npos) spec.push_back(fmt[i++]);
    if (i >= fmt.size()) throw JinjaError("ValueError", "incomplete format");
    char conv = fmt[i];
    if (ai >= a.pos.size()) ThrowTypeError("not enough arguments for format string");
    const Value& arg = a.pos[ai++];
    char buf[512];
    if (conv == 's' || conv == 'r') {
      std::string s = conv == 's' ? arg.ToStr() : arg.Repr();
      if (spec.size() > 1) {
        std::snprintf(buf, sizeof(buf), (spec + "s").c_str(), s.c_str());
        out += buf;
      } else {
        out += s;
      }
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!arg.IsNumber()) ThrowTypeError("%" + std::string(1, conv) + " format: a number is required, not " + arg.TypeName());
      long long n = arg.IsFloat() ? static_cast<long long>(arg.AsFloat()) : arg.AsInt();
      std::snprintf(buf, sizeof(buf), (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), n);
      out += buf;
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'g') {
      if (!arg.IsNumber()) ThrowTypeError("must be real number, not " + arg.TypeName());
      std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), arg.AsFloat());
      out += buf;
    } else {
      throw JinjaError("ValueError", std::string("unsupported format character '") + conv + "'");
    }
  }
  CheckStringSize(out.size());
  return Value::String(out);
}

// ---- sequence filters ----
Value FLength(const Value& v, Args&) { return Value::Int(Length(v)); }

Value FList(const Value& v, Args&) { return Value::MakeList(Iterate(v)); }

Value FFirst(const Value& v, Args&) {
  std::vector<Value> items = Iterate(v);
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}

Value FLast(const Value& v, Args&) {
  if (v.IsGenerator()) ThrowTypeError("'generator' object is not reversible");
  std::vector<Value> items = Iterate(v);
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

Value FReverse(const Value& v, Args&) {
  if (v.IsString()) {
    std::u32string u = pystr::Decode(v.Str());
    std::reverse(u.begin(), u.end());
    return Value::String(pystr::Encode(u));
  }
  std::vector<Value> items = Iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::Generator(std::move(items));
}

Value FJoin(const Value& v, Args& a) {
  const Value* d = Opt(a, 0, "d");
  const Value* attr = Opt(a, 1, "attribute");
  std::string sep = d ? d->ToStr() : "";
  std::string out;
  bool first = true;
  for (const Value& item : Iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += attr ? GetPath(item, *attr).ToStr() : item.ToStr();
    CheckStringSize(out.size());
  }
  return Value::String(std::move(out));
}

Value FDefault(const Value& v, Args& a) {
  const Value* d = a.Get(0, "default_value");
  if (!d) d = a.Get(0, "default");
  bool boolean = OptBool(a, 1, "boolean", false);
  if (v.IsUndefined() || (boolean && !v.Truthy())) return d ? *d : Value::String("");
  return v;
}

Value FItems(const Value& v, Args&) {
  if (v.IsUndefined()) return Value::Generator({});
  if (!v.IsMapping()) ThrowTypeError("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.dict()->items) out.push_back(Value::MakeList({k, val}, true));
  return Value::Generator(std::move(out));
}

Value FDictsort(const Value& v, Args& a) {
  if (!v.IsMapping()) ThrowTypeError("dictsort filter expects a mapping");
  bool cs = OptBool(a, 0, "case_sensitive", false);
  const Value* by = Opt(a, 1, "by");
  bool reverse = OptBool(a, 2, "reverse", false);
  size_t pos = 0;
  if (by) {
    std::string b = by->ToStr();
    if (b == "value") pos = 1;
    else if (b != "key") throw JinjaError("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
  }
  std::vector<std::pair<Value, Value>> items = v.dict()->items;
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    Value kx = IgnoreCase(pos ? x.second : x.first, cs), ky = IgnoreCase(pos ? y.second : y.first, cs);
    return reverse ? SortLess(ky, kx) : SortLess(kx, ky);
  });
  std::vector<Value> out;
  for (auto& [k, val] : items) out.push_back(Value::MakeList({k, val}, true));
  return Value::MakeList(std::move(out));
}

Value FSort(const Value& v, Args& a) {
  bool reverse = OptBool(a, 0, "reverse", false);
  bool cs = OptBool(a, 1, "case_sensitive", false);
  const Value* attr = Opt(a, 2, "attribute");
  std::vector<Value> items = Iterate(v);
  std::vector<std::pair<std::vector<Value>, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& it : items) keyed.emplace_back(SortKeys(it, attr, cs), std::move(it));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? KeysLess(y.first, x.first) : KeysLess(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::MakeList(std::move(out));
}

Value FUnique(const Value& v, Args& a) {
  bool cs = OptBool(a, 0, "case_sensitive", false);
  const Value* attr = Opt(a, 1, "attribute");
  std::vector<Value> out, seen;
  for (const Value& it : Iterate(v)) {
    Value key = IgnoreCase(attr ? GetPath(it, *attr) : it, cs);
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); });
    if (dup) continue;
    seen.push_back(key);
    out.push_back(it);
  }
  return Value::Generator(std::move(out));
}

Value MinMax(const Value& v, Args& a, bool want_max) {
  bool cs = OptBool(a, 0, "case_sensitive", false);
  const Value* attr = Opt(a, 1, "attribute");
  std::vector<Value> items = Iterate(v);
  if (items.empty()) return Value::Undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  Value best_key = IgnoreCase(attr ? GetPath(items[0], *attr) : items[0], cs);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = IgnoreCase(attr ? GetPath(items[i], *attr) : items[i], cs);
    if (want_max ? Less(best_key, k) : Less(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}
Value FMin(const Value& v, Args& a) { return MinMax(v, a, false); }
Value FMax(const Value& v, Args& a) { return MinMax(v, a, true); }

Value FSum(const Value& v, Args& a) {
  const Value* attr = Opt(a, 0, "attribute");
  const Value* start = Opt(a, 1, "start");
  Value total = start ? *start : Value::Int(0);
  for (const Value& it : Iterate(v)) total = BinaryOp("+", total, attr ? GetPath(it, *attr) : it);
  return total;
}

Value FMap(const Value& v, Args& a) {
  std::vector<Value> out;
  if (!v.Truthy()) return Value::Generator({});  // Jinja: `if value:` before iterating
  if (a.pos.empty()) {
    const Value* attr = a.Get(SIZE_MAX, "attribute");
    if (!attr) ThrowTypeError("map() requires a filter name or attribute=");
    const Value* def = a.Get(SIZE_MAX, "default");
    for (const Value& it : Iterate(v)) {
      Value r = GetPath(it, *attr);
      if (r.IsUndefined() && def) r = *def;
      out.push_back(std::move(r));
    }
    return Value::Generator(std::move(out));
  }
  std::string name = a.pos[0].ToStr();
  if (!HasFilter(name)) throw JinjaError("TemplateRuntimeError", "No filter named " + ReprString(name) + ".");
  Args rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (const Value& it : Iterate(v)) {
    Args copy = rest;
    out.push_back(ApplyFilter(name, it, copy));
  }
  return Value::Generator(std::move(out));
}

Value SelectReject(const Value& v, Args& a, bool select, bool by_attr) {
  if (!v.Truthy()) return Value::Generator({});  // Jinja: `if value:` before iterating
  size_t base = 0;
  const Value* attr = nullptr;
  if (by_attr) {
    if (a.pos.empty()) ThrowTypeError("selectattr/rejectattr need an attribute name");
    attr = &a.pos[0];
    base = 1;
  }
  std::string test;
  Args targs;
  if (a.pos.size() > base) {
    test = a.pos[base].ToStr();
    if (!HasTest(test)) throw JinjaError("TemplateRuntimeError", "No test named " + ReprString(test) + ".");
    targs.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(base) + 1, a.pos.end());
    targs.kw = a.kw;
  }
  std::vector<Value> out;
  for (const Value& it : Iterate(v)) {
    Value subject = attr ? GetPath(it, *attr) : it;
    Args copy = targs;
    bool ok = test.empty() ? subject.Truthy() : ApplyTest(test, subject, copy);
    if (ok == select) out.push_back(it);
  }
  return Value::Generator(std::move(out));
}
Value FSelect(const Value& v, Args& a) { return SelectReject(v, a, true, false); }
Value FReject(const Value& v, Args& a) { return SelectReject(v, a, false, false); }
Value FSelectAttr(const Value& v, Args& a) { return SelectReject(v, a, true, true); }
Value FRejectAttr(const Value& v, Args& a) { return SelectReject(v, a, false, true); }

Value FAttr(const Value& v, Args& a) {
  const Value* n = Opt(a, 0, "name");
  if (!n) ThrowTypeError("attr() missing required argument 'name'");
  return GetAttr(v, n->ToStr());
}

// ---- numbers ----
std::optional<double> ParsePyFloat(const std::string& raw) {
  std::string s = pystr::Strip(raw, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return std::nullopt;
      continue;
    }
    clean.push_back(s[i]);
  }
  if (clean.empty()) return std::nullopt;
  std::string low = pystr::Lower(clean);
  std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double x = body == "nan" ? NAN : INFINITY;
    return low[0] == '-' ? -x : x;
  }
  for (char c : body)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> ParsePyInt(const std::string& raw, int base) {
  std::string s = pystr::Strip(raw, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && std::isalnum(static_cast<unsigned char>(s[i - 1])) &&
        std::isalnum(static_cast<unsigned char>(s[i + 1])))
      continue;
    clean.push_back(s[i]);
  }
  if (clean.empty()) return std::nullopt;
  size_t p = (clean[0] == '+' || clean[0] == '-') ? 1 : 0;
  if (p >= clean.size()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(clean.c_str(), &end, base);
  if (end != clean.c_str() + clean.size() || errno == ERANGE) return std::nullopt;
  if (!std::isalnum(static_cast<unsigned char>(clean[p]))) return std::nullopt;
  return v;
}

Value FInt(const Value& v, Args& a) {
  const Value* d = Opt(a, 0, "default");
  const Value* b = Opt(a, 1, "base");
  Value def = d ? *d : Value::Int(0);
  int base = b ? static_cast<int>(b->AsInt()) : 10;
  if (v.IsUndefined()) RaiseUndefined(v);
  if (v.IsInt() || v.IsBool()) return Value::Int(v.AsInt());
  if (v.IsFloat()) {
    double f = v.AsFloat();
    if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) return def;
    return Value::Int(static_cast<int64_t>(f));
  }
  if (v.IsString()) {
    if (auto i = ParsePyInt(v.Str(), base)) return Value::Int(*i);
    if (auto f = ParsePyFloat(v.Str()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18)
      return Value::Int(static_cast<int64_t>(*f));
  }
  return def;
}

Value FFloat(const Value& v, Args& a) {
  const Value* d = Opt(a, 0, "default");
  Value def = d ? *d : Value::Float(0.0);
  if (v.IsUndefined()) RaiseUndefined(v);
  if (v.IsNumber()) return Value::Float(v.AsFloat());
  if (v.IsString())
    if (auto f = ParsePyFloat(v.Str())) return Value::Float(*f);
  return def;
}

Value FAbs(const Value& v, Args&) {
  if (v.IsFloat()) return Value::Float(std::fabs(v.AsFloat()));
  if (v.IsInt() || v.IsBool()) return Negate(v, v.AsInt() < 0);
  if (v.IsUndefined()) RaiseUndefined(v);
  ThrowTypeError("bad operand type for abs(): '" + v.TypeName() + "'");
}

Value FRound(const Value& v, Args& a) {
  const Value* p = Opt(a, 0, "precision");
  const Value* m = Opt(a, 1, "method");
  int64_t precision = p ? p->AsInt() : 0;
  std::string method = m ? m->ToStr() : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    throw JinjaError("FilterArgumentError", "method must be common, ceil or floor");
  if (!v.IsNumber()) {
    if (v.IsUndefined()) RaiseUndefined(v);
    ThrowTypeError("type " + v.TypeName() + " doesn't define __round__ method");
  }
  if (method == "common") {
    if (!v.IsFloat()) return Value::Int(v.AsInt());
    if (precision < 0 || precision > 300) return v;
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), v.AsFloat());  // exact, half-even
    return Value::Float(std::strtod(buf, nullptr));
  }
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.AsFloat() * scale;
  return Value::Float((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

// transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> json.dumps.
Value FTojson(const Value& v, Args& a) {
  DumpOptions o;
  o.ensure_ascii = OptBool(a, 0, "ensure_ascii", false);
  const Value* indent = Opt(a, 1, "indent");
  const Value* seps = Opt(a, 2, "separators");
  o.sort_keys = OptBool(a, 3, "sort_keys", false);
  if (indent && !indent->IsNone()) {
    if (indent->IsString()) {
      o.indent = indent->Str();
    } else if (indent->IsInt() || indent->IsBool()) {
      o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent->AsInt(), 0, 1 << 10)), ' ');
    } else {
      ThrowTypeError("indent must be an int or a str");
    }
    o.item_separator = ",";
  }
  if (seps && !seps->IsNone()) {
    if (!seps->IsList() || seps->IsGenerator() || seps->list()->items.size() != 2)
      throw JinjaError("ValueError", "separators must be a pair (item_separator, key_separator)");
    o.item_separator = seps->list()->items[0].ToStr();
    o.key_separator = seps->list()->items[1].ToStr();
  }
  return Value::String(JsonDumps(v, o));
}

const std::map<std::string, FilterFn>& Table() {
  static const std::map<std::string, FilterFn> kTable = {
      {"abs", FAbs},           {"attr", FAttr},         {"capitalize", FCapitalize}, {"center", FCenter},
      {"count", FLength},      {"d", FDefault},         {"default", FDefault},       {"dictsort", FDictsort},
      {"e", FEscape},          {"escape", FEscape},     {"first", FFirst},           {"float", FFloat},
      {"forceescape", FForceEscape}, {"format", FFormat},    {"indent", FIndent},         {"int", FInt},
      {"items", FItems},       {"join", FJoin},         {"last", FLast},             {"length", FLength},
      {"list", FList},         {"lower", FLower},       {"map", FMap},               {"max", FMax},
      {"min", FMin},           {"reject", FReject},     {"rejectattr", FRejectAttr}, {"replace", FReplace},
      {"reverse", FReverse},   {"round", FRound},       {"safe", FSafe},             {"select", FSelect},
      {"selectattr", FSelectAttr}, {"sort", FSort},     {"string", FString},         {"sum", FSum},
      {"title", FTitle},       {"tojson", FTojson},     {"trim", FTrim},             {"unique", FUnique},
      {"upper", FUpper},       {"wordcount", FWordcount},
  };
  return kTable;
}

}  // namespace

bool HasFilter(const std::string& name) { return Table().count(name) > 0; }

Value ApplyFilter(const std::string& name, const Value& value, Args& args) {
  auto it = Table().find(name);
  if (it == Table().end()) throw JinjaError("TemplateRuntimeError", "No filter named " + ReprString(name) + ".");
  return it->second(value, args);
}

}  // namespace pensieve::jinja
