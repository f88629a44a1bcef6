#pragma once
// Parsing untrusted request bodies into JSON. Rejects (with a RequestError naming the byte offset) anything
// that is not one well-formed, valid-UTF-8 JSON value of bounded nesting: the depth check runs first, over the
// raw bytes, because everything downstream of nlohmann (dump, our own walks) recurses per nesting level.
#include <string_view>

#include "api/chat_request.h"

namespace pensieve::api {

inline constexpr int kMaxJsonDepth = 128;

Json ParseJsonBody(std::string_view body, int max_depth = kMaxJsonDepth);

}  // namespace pensieve::api
