// Fuzzes the HTTP/1.1 request parser (server/http_request_parser.h): arbitrary bytes as a request head and
// the chunk-size lines after it. Properties: no crash, and an accepted framing is self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/http_request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t end = in.find("\r\n\r\n");
  std::string_view head = in.substr(0, end);
  pensieve::server::HttpRequest req;
  if (!pensieve::server::ParseRequestHead(head, &req)) {
    pensieve::server::BodyFraming framing;
    if (!pensieve::server::DecideBodyFraming(req, &framing)) {
      if (framing.kind != pensieve::server::BodyFraming::kLength && framing.length != 0) std::abort();
      if (framing.kind == pensieve::server::BodyFraming::kLength && req.Header("transfer-encoding") != "") {
        std::abort();
      }
    }
  }
  if (end == std::string_view::npos) return 0;
  std::string_view rest = in.substr(end + 4);
  while (!rest.empty()) {
    size_t le = rest.find("\r\n");
    auto n = pensieve::server::ParseChunkSize(rest.substr(0, le));
    if (n && *n > 0xfffffffffffffffull) std::abort();
    if (le == std::string_view::npos) break;
    rest.remove_prefix(le + 2);
  }
  return 0;
}
