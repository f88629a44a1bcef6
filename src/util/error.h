#pragma once
// One error type for everything that can go wrong with input: a model file, a request, a flag.
// Contract: the message names what is wrong and where (file, tensor, field, byte offset), so the top level
// (CLI or HTTP handler) can print or return it as-is. Broken internal invariants are not Errors: they abort.
#include <stdexcept>
#include <string>

namespace pensieve {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error(msg) when cond is false. For input validation only.
inline void Require(bool cond, const std::string& msg) {
  if (!cond) throw Error(msg);
}

}  // namespace pensieve
