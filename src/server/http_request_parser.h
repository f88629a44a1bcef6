#pragma once
// Parsing of an HTTP/1.1 request's head and body framing (RFC 9112), separate from the socket handling in
// http_server.cpp so that it can be tested and fuzzed on bytes alone.
//
// Framing rules, strict where leniency lets a proxy and this server disagree on where a request ends
// (request smuggling, RFC 9112 §6.3, §11.2):
//  - Transfer-Encoding together with Content-Length: 400 (and the connection is closed).
//  - Content-Length: one or more headers or comma lists whose values are all the same decimal number, else 400.
//  - Transfer-Encoding: only "chunked" is supported (501 otherwise); chunk sizes are hex digits, optionally
//    followed by ";extensions"; anything else ("-1", "0x10", " 5") is 400.
//  - POST, PUT and PATCH without either header: 411 Length Required (the body, if any, cannot be delimited).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "server/http_server.h"

namespace pensieve::server {

// A request the server must refuse: the status to answer and why.
struct HttpRefusal {
  int status = 400;
  std::string message;
};

// Parses the head (request line and header lines, without the final empty line) into req's method, target,
// path, query, version and headers (names lower-cased, values trimmed). Returns the refusal for a malformed
// head; req is then partly filled.
std::optional<HttpRefusal> ParseRequestHead(std::string_view head, HttpRequest* req);

struct BodyFraming {
  enum Kind { kNone, kLength, kChunked } kind = kNone;
  size_t length = 0;  // kLength: the body's size in bytes (at most 18 decimal digits)
};

// How the body of a parsed request is delimited (into *framing), or why it cannot be.
std::optional<HttpRefusal> DecideBodyFraming(const HttpRequest& req, BodyFraming* framing);

// The size on a chunk-size line (without its CRLF), or nothing when the line is malformed or the size has
// more than 15 hex digits.
std::optional<size_t> ParseChunkSize(std::string_view line);

// ASCII lower case (header names and the tokens compared in them are ASCII).
std::string AsciiLower(std::string_view s);

}  // namespace pensieve::server
