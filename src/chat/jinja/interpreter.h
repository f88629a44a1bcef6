#pragma once
// Tree-walking Jinja interpreter with Jinja2's scoping: a for-loop iteration, a macro call and a block
// capture get their own frame; `if` does not; lookups walk outward to the globals.
//
// Contract: Render() is bounded: statements executed, macro call depth and output size are capped
// (RenderLimits), so a hostile template ends with a JinjaError instead of hanging or exhausting memory.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "chat/jinja/ast.h"
#include "chat/jinja/value.h"

namespace pensieve::jinja {

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
};
using FramePtr = std::shared_ptr<Frame>;

struct RenderLimits {
  uint64_t max_steps = 1'000'000;     // statements + loop iterations + calls (~1 s at worst)
  int max_call_depth = 64;            // nested macro calls
  size_t max_output = 64u << 20;      // bytes of any one output buffer or string value
  size_t max_items = 10'000'000;      // elements of any one list
};

// Throws TemplateAssertionError for filters or tests that do not exist (Jinja2 fails at compile time).
void Validate(const Body& body);

// Globals every template sees: range, namespace, dict, raise_exception. strftime_now uses `now`.
void AddStandardGlobals(Frame& globals, std::function<std::tm()> now);

std::string Render(const Body& body, const FramePtr& globals, const RenderLimits& limits = {});

}  // namespace pensieve::jinja
