// Jinja2 tests: `x is defined`, `x is divisibleby 3`, `x is equalto y`, ...
#include <set>

#include "chat/jinja/builtins.h"
#include "chat/jinja/error.h"
#include "chat/jinja/ops.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

const Value& Arg(const Args& a, size_t i, const std::string& test) {
  if (i >= a.pos.size()) ThrowTypeError("test '" + test + "' expects an argument");
  return a.pos[i];
}

bool SameAs(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kBool:
      return a.AsBool() == b.AsBool();
    case Kind::kInt:
      return a.AsInt() == b.AsInt();
    case Kind::kFloat:
      return false;  // distinct float objects
    case Kind::kString:
      return a.Str() == b.Str();
    case Kind::kList:
      return a.list() == b.list();
    case Kind::kDict:
    case Kind::kNamespace:
      return a.dict() == b.dict();
    case Kind::kCallable:
      return a.callable() == b.callable();
    case Kind::kLoop:
      return a.loop() == b.loop();
  }
  return false;
}

const std::set<std::string>& TestNames() {
  static const std::set<std::string> kNames = {
      "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string",
      "mapping", "sequence", "iterable", "callable", "lower", "upper", "odd", "even", "divisibleby",
      "sameas", "escaped", "in", "eq", "equalto", "==", "ne", "!=", "gt", "greaterthan", ">", "ge", ">=",
      "lt", "lessthan", "<", "le", "<=", "filter", "test"};
  return kNames;
}

}  // namespace

bool HasTest(const std::string& name) { return TestNames().count(name) > 0; }

bool ApplyTest(const std::string& name, const Value& v, Args& a) {
  if (name == "defined") return !v.IsUndefined();
  if (name == "undefined") return v.IsUndefined();
  if (name == "none") return v.IsNone();
  if (name == "boolean") return v.IsBool();
  if (name == "true") return v.IsBool() && v.AsBool();
  if (name == "false") return v.IsBool() && !v.AsBool();
  if (name == "integer") return v.IsInt();
  if (name == "float") return v.IsFloat();
  if (name == "number") return v.IsNumber();
  if (name == "string") return v.IsString();
  if (name == "mapping") return v.IsMapping();
  if (name == "sequence")
    return v.IsString() || (v.IsList() && !v.IsGenerator()) || v.IsDict() || v.IsUndefined();
  if (name == "iterable") return v.IsString() || v.IsList() || v.IsMapping() || v.IsUndefined();
  if (name == "callable") return v.IsCallable();
  if (name == "lower") return v.IsString() && pystr::Lower(v.Str()) == v.Str();
  if (name == "upper") return v.IsString() && pystr::Upper(v.Str()) == v.Str();
  if (name == "escaped") return false;
  if (name == "odd" || name == "even") {
    Value r = BinaryOp("%", v, Value::Int(2));
    return name == "odd" ? Equals(r, Value::Int(1)) : Equals(r, Value::Int(0));
  }
  if (name == "divisibleby") return Equals(BinaryOp("%", v, Arg(a, 0, name)), Value::Int(0));
  if (name == "sameas") return SameAs(v, Arg(a, 0, name));
  if (name == "in") return Contains(Arg(a, 0, name), v);
  if (name == "eq" || name == "equalto" || name == "==") return Equals(v, Arg(a, 0, name));
  if (name == "ne" || name == "!=") return !Equals(v, Arg(a, 0, name));
  if (name == "gt" || name == "greaterthan" || name == ">") return Compare(">", v, Arg(a, 0, name));
  if (name == "ge" || name == ">=") return Compare(">=", v, Arg(a, 0, name));
  if (name == "lt" || name == "lessthan" || name == "<") return Compare("<", v, Arg(a, 0, name));
  if (name == "le" || name == "<=") return Compare("<=", v, Arg(a, 0, name));
  if (name == "filter") return v.IsString() && HasFilter(v.Str());
  if (name == "test") return v.IsString() && HasTest(v.Str());
  throw JinjaError("TemplateRuntimeError", "No test named " + ReprString(name) + ".");
}

}  // namespace pensieve::jinja
