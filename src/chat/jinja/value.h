#pragma once
// Jinja runtime values with Python semantics: what Python Jinja2 sees when transformers passes JSON-shaped
// data (dict, list, str, int, float, bool, None) plus Jinja's own kinds (Undefined, namespace, callables,
// one-shot generators made by map/select).
//
// Contract: Value is cheap to copy (containers and strings are shared, immutable once built, except
// Namespace attributes, which templates assign). Printing follows Python str(); Repr() follows repr().
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pensieve::jinja {

class Value;
struct List;
struct Dict;
struct Callable;
struct LoopState;

enum class Kind : uint8_t {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,       // also tuples and generators (flags on List)
  kDict,
  kNamespace,  // a Dict whose attributes can be assigned
  kCallable,   // macro, global function, bound method
  kLoop,       // the `loop` variable of a for loop
};

class Value {
 public:
  Value() = default;  // Undefined without a name
  static Value Undefined(std::string message = "", std::string error_kind = "UndefinedError");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  // markupsafe.Markup: a str that `+` keeps safe by HTML-escaping plain str operands (`"x"|safe + y`).
  static Value Markup(std::string s);
  static Value MakeList(std::vector<Value> items, bool tuple = false);
  static Value Generator(std::vector<Value> items);
  static Value MakeDict(std::shared_ptr<Dict> d);
  static Value MakeNamespace(std::shared_ptr<Dict> d);
  static Value MakeCallable(std::shared_ptr<Callable> c);
  static Value MakeLoop(std::shared_ptr<LoopState> l);
  // Throws JinjaError for JSON nested deeper than kMaxValueDepth.
  static Value FromJson(const nlohmann::ordered_json& j, int depth = 0);

  Kind kind() const { return kind_; }
  bool IsUndefined() const { return kind_ == Kind::kUndefined; }
  bool IsNone() const { return kind_ == Kind::kNone; }
  bool IsBool() const { return kind_ == Kind::kBool; }
  bool IsInt() const { return kind_ == Kind::kInt; }
  bool IsFloat() const { return kind_ == Kind::kFloat; }
  bool IsNumber() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool IsString() const { return kind_ == Kind::kString; }
  bool IsMarkup() const { return kind_ == Kind::kString && b_; }
  bool IsList() const { return kind_ == Kind::kList; }
  bool IsDict() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  bool IsMapping() const { return kind_ == Kind::kDict; }
  bool IsCallable() const { return kind_ == Kind::kCallable; }
  bool IsGenerator() const;
  int Depth() const;  // nesting depth of containers (0 for scalars)
  bool IsTuple() const;

  bool AsBool() const { return b_; }
  int64_t AsInt() const { return i_; }  // kInt, or kBool as 0/1
  double AsFloat() const;               // any number
  const std::string& Str() const;       // kString only
  const std::shared_ptr<List>& list() const { return list_; }
  const std::shared_ptr<Dict>& dict() const { return dict_; }
  const std::shared_ptr<Callable>& callable() const { return callable_; }
  const std::shared_ptr<LoopState>& loop() const { return loop_; }
  // For Undefined: the message an operation on it raises, and the Python error kind.
  const std::string& UndefinedMessage() const;
  const std::string& UndefinedKind() const;

  bool Truthy() const;
  std::string ToStr() const;   // Python str(); Undefined prints empty
  std::string Repr(int depth = 0) const;  // Python repr(); RecursionError past kMaxValueDepth
  std::string TypeName() const;  // Python type name: str, int, dict, NoneType, generator...

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const std::string> s2_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Callable> callable_;
  std::shared_ptr<LoopState> loop_;
};

// Containers deeper than this are refused: printing, comparing and freeing them recurse.
constexpr int kMaxValueDepth = 500;

// Containers free their children iteratively (a deep chain must not overflow the stack).
struct List {
  ~List();
  std::vector<Value> items;
  int depth = 1;
  bool tuple = false;
  bool generator = false;  // one-shot: iterating it consumes it, len()/tojson/subscript raise
  bool consumed = false;
};

// Insertion-ordered dict keyed by Python-equal scalars (str, int, bool, None).
struct Dict {
  ~Dict();
  std::vector<std::pair<Value, Value>> items;
  int depth = 1;
  const Value* Find(const Value& key) const;
  Value* Find(const Value& key);
  void Set(const Value& key, Value v);
  void Set(const std::string& key, Value v) { Set(Value::String(key), std::move(v)); }

 private:
  static std::string IndexKey(const Value& key);
  std::unordered_map<std::string, size_t> index_;
};

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Positional i, else keyword `name`, else nullptr.
  const Value* Get(size_t i, std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(Args&)> fn;
};

struct LoopState {
  std::vector<Value> items;
  size_t index0 = 0;
  int depth0 = 0;
};

// Python == between two values (1 == 1.0 == True, lists elementwise, dicts by key set).
bool Equals(const Value& a, const Value& b, int depth = 0);
// Python <; throws TypeError-kind TemplateError via the callback-free ThrowTypeError on unorderable types.
bool Less(const Value& a, const Value& b, int depth = 0);
// True when `v` is or (transitively) holds the dict `d`: assigning it into `d` would make a cycle.
bool HoldsDict(const Value& v, const Dict* d, int depth = 0);
// markupsafe.escape of a str: & < > " ' as entities.
std::string HtmlEscape(const std::string& s);
// Python repr of a str.
std::string ReprString(std::string_view s);
// Python repr of a float ("1.0", "1e+16", "inf").
std::string FormatFloat(double f);

}  // namespace pensieve::jinja
