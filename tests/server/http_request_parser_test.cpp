// The request-head and body-framing rules of server/http_request_parser.h, on bytes alone (RFC 9112).
#include "server/http_request_parser.h"

#include <gtest/gtest.h>

namespace pensieve::server {
namespace {

HttpRequest Post(std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequest r;
  r.method = "POST";
  r.headers = std::move(headers);
  return r;
}

TEST(HttpRequestParser, ParsesRequestLineAndHeaders) {
  HttpRequest r;
  ASSERT_FALSE(ParseRequestHead("POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nX-Api-Key:  k \t", &r));
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/v1/messages");
  EXPECT_EQ(r.query, "beta=true");
  EXPECT_EQ(r.Header("X-API-KEY"), "k");
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[1].first, "x-api-key");
}

TEST(HttpRequestParser, RefusesMalformedHeads) {
  for (const char* head : {"GARBAGE", "GET /x HTTP/9.9", "GET x HTTP/1.1", "GET / HTTP/1.1\r\nno-colon",
                           "GET / HTTP/1.1\r\n: empty-name", "GET / HTTP/1.1\r\n folded: x",
                           "GET / HTTP/1.1\r\nHost : x", "GET / HTTP/1.1\r\nHost\t: x"}) {
    HttpRequest r;
    auto refusal = ParseRequestHead(head, &r);
    ASSERT_TRUE(refusal) << head;
    EXPECT_EQ(refusal->status, 400) << head;
  }
}

TEST(HttpRequestParser, BodyFraming) {
  BodyFraming f;
  EXPECT_FALSE(DecideBodyFraming(Post({{"content-length", "42"}}), &f));
  EXPECT_EQ(f.kind, BodyFraming::kLength);
  EXPECT_EQ(f.length, 42u);
  EXPECT_FALSE(DecideBodyFraming(Post({{"content-length", "7"}, {"content-length", "7"}}), &f));
  EXPECT_EQ(f.length, 7u);
  EXPECT_FALSE(DecideBodyFraming(Post({{"content-length", "7, 7"}}), &f));
  EXPECT_FALSE(DecideBodyFraming(Post({{"transfer-encoding", "Chunked"}}), &f));
  EXPECT_EQ(f.kind, BodyFraming::kChunked);
  HttpRequest get;
  get.method = "GET";
  EXPECT_FALSE(DecideBodyFraming(get, &f));
  EXPECT_EQ(f.kind, BodyFraming::kNone);

  struct Case {
    std::vector<std::pair<std::string, std::string>> headers;
    int status;
  };
  const Case refused[] = {
      {{{"content-length", "5"}, {"content-length", "6"}}, 400},
      {{{"content-length", "5, 6"}}, 400},
      {{{"content-length", "-5"}}, 400},
      {{{"content-length", "+5"}}, 400},
      {{{"content-length", ""}}, 400},
      {{{"content-length", "5,"}}, 400},
      {{{"content-length", "1234567890123456789"}}, 400},
      {{{"transfer-encoding", "chunked"}, {"content-length", "5"}}, 400},
      {{{"content-length", "5"}, {"transfer-encoding", "identity"}}, 400},
      {{{"transfer-encoding", "gzip, chunked"}}, 501},
      {{{"transfer-encoding", "chunked"}, {"transfer-encoding", "chunked"}}, 501},
      {{}, 411},
  };
  for (const Case& c : refused) {
    auto refusal = DecideBodyFraming(Post(c.headers), &f);
    ASSERT_TRUE(refusal) << (c.headers.empty() ? "(none)" : c.headers[0].second);
    EXPECT_EQ(refusal->status, c.status) << refusal->message;
  }
}

TEST(HttpRequestParser, ChunkSizes) {
  EXPECT_EQ(ParseChunkSize("0"), 0u);
  EXPECT_EQ(ParseChunkSize("1a"), 26u);
  EXPECT_EQ(ParseChunkSize("FF"), 255u);
  EXPECT_EQ(ParseChunkSize("10;name=value"), 16u);
  EXPECT_EQ(ParseChunkSize("10 ; x"), 16u);
  EXPECT_EQ(ParseChunkSize("fffffffffffffff"), 0xfffffffffffffffu);  // 15 digits: the most accepted
  for (const char* bad : {"", "-1", "0x10", " 5", "g", "5 x", "+5", "ffffffffffffffff", "1\t2"}) {
    EXPECT_FALSE(ParseChunkSize(bad)) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace pensieve::server
