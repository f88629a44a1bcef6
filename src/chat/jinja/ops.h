#pragma once
// Python/Jinja2 operations on Values: attribute and item lookup (Jinja2's sandboxed getattr/getitem),
// slicing, arithmetic, membership, iteration. Errors are JinjaErrors with Python's messages.
#include <cstddef>
#include <string>
#include <vector>

#include "chat/jinja/value.h"

namespace pensieve::jinja {

// Size caps so a hostile template cannot build unbounded strings or lists. They hold per thread; a render
// sets them from its RenderLimits for its duration (ScopedSizeLimits).
struct SizeLimits {
  size_t max_string = 64u << 20;
  size_t max_items = 10'000'000;
};
const SizeLimits& Limits();
void CheckStringSize(size_t n);
void CheckItemCount(size_t n);
class ScopedSizeLimits {
 public:
  explicit ScopedSizeLimits(const SizeLimits& limits);
  ~ScopedSizeLimits();
  ScopedSizeLimits(const ScopedSizeLimits&) = delete;
  ScopedSizeLimits& operator=(const ScopedSizeLimits&) = delete;

 private:
  SizeLimits saved_;
};

// Raises the UndefinedError (or SecurityError) an operation on `u` causes.
[[noreturn]] void RaiseUndefined(const Value& u);
// Jinja2's object_type_repr: "dict object", "None", ...
std::string ObjectTypeRepr(const Value& v);

Value GetAttr(const Value& obj, const std::string& name);  // obj.name
Value GetItem(const Value& obj, const Value& key);         // obj[key]
Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
Value BinaryOp(const std::string& op, const Value& a, const Value& b);
Value Negate(const Value& a, bool minus);
bool Contains(const Value& container, const Value& item);  // item in container
bool Compare(const std::string& op, const Value& a, const Value& b);
// Items of an iterable (list items, dict keys, string characters; Undefined is empty). Consumes generators.
std::vector<Value> Iterate(const Value& v);
// len(); raises TypeError for generators and scalars. Undefined has length 0.
int64_t Length(const Value& v);
// The bound method obj.name, or Undefined when obj has no such method.
Value MethodOf(const Value& obj, const std::string& name);

}  // namespace pensieve::jinja
