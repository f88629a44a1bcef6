// Client input is answered 2xx or 4xx, never 500 (issue 14, defect 2): inputs that once reached a 500.
#include <gtest/gtest.h>

#include "fakes/http_client.h"
#include "fakes/test_server.h"

namespace pensieve::test {
namespace {

using Json = nlohmann::json;

// top_p 0 is inside the range both APIs document ([0, 1]): the smallest nucleus, the best token alone.
TEST(ClientErrors, TopPZeroIsAcceptedOnEveryEndpoint) {
  TestServer s;
  const std::pair<const char*, const char*> cases[] = {
      {"/v1/messages", R"({"model":"m","max_tokens":5,"top_p":0,"messages":[{"role":"user","content":"hi"}]})"},
      {"/v1/chat/completions", R"({"model":"m","max_tokens":5,"top_p":0,"messages":[{"role":"user","content":"hi"}]})"},
      {"/v1/completions", R"({"model":"m","max_tokens":5,"top_p":0,"prompt":"Once upon"})"},
  };
  for (const auto& [path, body] : cases) {
    HttpResult r = Request(s.port, "POST", path, body);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(s.world->engine.last_request().sampling.top_p, 0.0f) << path;
  }
}

TEST(ClientErrors, EmptyCompletionPromptIsABadRequest) {
  TestServer s;
  for (const char* body : {R"({"model":"m","prompt":""})", R"({"model":"m","prompt":[""]})",
                           R"({"model":"m","prompt":"","stream":true})"}) {
    HttpResult r = Request(s.port, "POST", "/v1/completions", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    auto j = Json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << r.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find("prompt"), std::string::npos) << r.body;
    EXPECT_EQ(r.headers["x-should-retry"], "false") << r.body;
  }
  EXPECT_EQ(s.world->engine.submitted_count(), 0);
}

}  // namespace
}  // namespace pensieve::test
