#pragma once
// Random identifiers for responses and tool calls: prefix + 24 characters of [A-Za-z0-9]
// (msg_…, toolu_…, req_…, chatcmpl-…, call_…). Thread-safe.
#include <string>

namespace pensieve::api {

std::string NewId(const std::string& prefix);

}  // namespace pensieve::api
