#include "server/http_request_parser.h"

#include <vector>

namespace pensieve::server {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view TrimView(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Every value of the named header, comma lists split, each trimmed (RFC 9110 §5.3: repeated headers are one
// list).
std::vector<std::string_view> ListValues(const HttpRequest& req, std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : req.headers) {
    if (k != name) continue;
    std::string_view rest = v;
    for (;;) {
      size_t comma = rest.find(',');
      out.push_back(TrimView(rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool Has(const HttpRequest& req, std::string_view name) {
  for (const auto& h : req.headers) {
    if (h.first == name) return true;
  }
  return false;
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

std::string HttpRequest::Header(std::string_view name) const {
  std::string key = AsciiLower(name);
  for (const auto& [k, v] : headers) {
    if (k == key) return v;
  }
  return "";
}

std::optional<HttpRefusal> ParseRequestHead(std::string_view head, HttpRequest* req) {
  size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return HttpRefusal{400, "malformed request line"};
  req->method = std::string(line.substr(0, sp1));
  req->target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  req->version = std::string(line.substr(sp2 + 1));
  if (req->version != "HTTP/1.1" && req->version != "HTTP/1.0") return HttpRefusal{400, "unsupported HTTP version"};
  if (req->target.empty() || (req->target[0] != '/' && req->target != "*")) {
    return HttpRefusal{400, "malformed request target"};
  }
  size_t q = req->target.find('?');
  req->path = req->target.substr(0, q);
  if (q != std::string::npos) req->query = req->target.substr(q + 1);
  size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view h = head.substr(pos, e - pos);
    pos = e + 2;
    size_t colon = h.find(':');
    // No obsolete line folding, and no space before the colon (RFC 9112 §5.1: must be refused).
    if (colon == std::string_view::npos || colon == 0 || h[0] == ' ' || h[0] == '\t' || h[colon - 1] == ' ' ||
        h[colon - 1] == '\t') {
      return HttpRefusal{400, "malformed header line"};
    }
    req->headers.emplace_back(AsciiLower(h.substr(0, colon)), std::string(TrimView(h.substr(colon + 1))));
  }
  return std::nullopt;
}

std::optional<HttpRefusal> DecideBodyFraming(const HttpRequest& req, BodyFraming* framing) {
  *framing = {};
  const bool has_te = Has(req, "transfer-encoding");
  const bool has_cl = Has(req, "content-length");
  if (has_te && has_cl) {
    return HttpRefusal{400, "Transfer-Encoding and Content-Length together: the body's length is ambiguous"};
  }
  if (has_te) {
    std::vector<std::string_view> codings = ListValues(req, "transfer-encoding");
    if (codings.size() != 1 || AsciiLower(codings[0]) != "chunked") {
      std::string all;
      for (const auto& [k, v] : req.headers) {
        if (k == "transfer-encoding") all += (all.empty() ? "" : ", ") + v;
      }
      return HttpRefusal{501, "unsupported transfer-encoding '" + all + "' (only chunked is supported)"};
    }
    framing->kind = BodyFraming::kChunked;
    return std::nullopt;
  }
  if (has_cl) {
    std::optional<size_t> length;
    for (std::string_view v : ListValues(req, "content-length")) {
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string_view::npos) {
        return HttpRefusal{400, "malformed content-length '" + std::string(v) + "'"};
      }
      size_t n = 0;
      for (char c : v) n = n * 10 + static_cast<size_t>(c - '0');
      if (length && *length != n) {
        return HttpRefusal{400, "conflicting content-length values " + std::to_string(*length) + " and " +
                                    std::to_string(n)};
      }
      length = n;
    }
    framing->kind = BodyFraming::kLength;
    framing->length = *length;
    return std::nullopt;
  }
  if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    return HttpRefusal{411, req.method + " needs Content-Length or Transfer-Encoding: chunked"};
  }
  return std::nullopt;
}

std::optional<size_t> ParseChunkSize(std::string_view line) {
  size_t i = 0;
  size_t size = 0;
  for (; i < line.size() && HexValue(line[i]) >= 0; ++i) {
    if (i == 15) return std::nullopt;  // beyond any body limit, and keeps the sum from overflowing
    size = size * 16 + static_cast<size_t>(HexValue(line[i]));
  }
  if (i == 0) return std::nullopt;
  std::string_view rest = TrimView(line.substr(i));
  if (!rest.empty() && rest[0] != ';') return std::nullopt;  // only chunk extensions may follow
  return size;
}

}  // namespace pensieve::server
