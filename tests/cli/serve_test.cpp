// `pensieve serve` as a process: a bad --model fails cleanly, serves stories260K, logs one line per request, and on SIGTERM
// ends an in-flight stream with an error event and exits 0.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>

#include "fakes/http_client.h"
#include "fakes/sse_validator.h"
#include "test_paths.h"

namespace pensieve::test {
namespace {

struct Child {
  pid_t pid = -1;
  FILE* err = nullptr;  // the child's stderr
};

Child Spawn(const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(fds[1]);
  return {pid, ::fdopen(fds[0], "r")};
}

std::string ReadLine(FILE* f) {
  char buf[4096];
  if (!std::fgets(buf, sizeof buf, f)) return "";
  return buf;
}

int Wait(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Serve, MissingModelPathFailsNamingIt) {
  // Without --model, serve runs the built-in demo model (tests/demo); a bad path is an error naming it.
  Child c = Spawn({PensieveBinary(), "serve", "--model", "/nonexistent/model-dir", "--port", "0"});
  std::string all;
  for (std::string l; !(l = ReadLine(c.err)).empty();) all += l;
  std::fclose(c.err);
  EXPECT_EQ(Wait(c.pid), 1);
  EXPECT_NE(all.find("/nonexistent/model-dir"), std::string::npos) << all;
}

TEST(Serve, AKvPoolLargerThanTheRamIsRefusedWithTheNumbers) {  // issue 14: memory guard on the cpu
  Child c = Spawn({PensieveBinary(), "serve", "--port", "0", "--kv-mib", "100000000"});
  std::string all;
  for (std::string l; !(l = ReadLine(c.err)).empty();) all += l;
  std::fclose(c.err);
  EXPECT_EQ(Wait(c.pid), 1);
  EXPECT_TRUE(std::regex_search(all, std::regex("does not fit cpu.*: it needs [0-9.]+ [GMK]iB \\(weights .*KV pool .*\\) but "
                                                "[0-9.]+ [GMK]iB of [0-9.]+ [GMK]iB of RAM are available \\(a smaller --kv-mib")))
      << all;
}

TEST(Serve, ServesLogsAndShutsDownGracefully) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  std::string model = TestData("models/stories260K/stories260K-hf");
  Child c = Spawn({PensieveBinary(), "serve", "--model", model, "--port", "0", "--threads", "1"});
  int port = 0;
  std::regex listening(R"(on http://127\.0\.0\.1:(\d+))");
  for (int i = 0; i < 5 && !port; ++i) {
    std::string line = ReadLine(c.err);
    std::smatch m;
    if (std::regex_search(line, m, listening)) port = std::stoi(m[1]);
  }
  ASSERT_GT(port, 0);
  HttpResult r = Request(port, "POST", "/v1/messages?beta=true",
                         R"({"model":"claude-x","max_tokens":12,"temperature":0,"messages":[{"role":"user","content":"Once upon a time"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string log = ReadLine(c.err);
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(^pensieve: POST /v1/messages\?beta=true 200 in=\d+ cached=0 out=12 \d+ms req_)"))) << log;

  // A stream in flight when SIGTERM arrives ends with an error event; the process exits 0.
  int fd = Connect(port);
  std::string body = R"({"model":"m","max_tokens":400,"stream":true,"messages":[{"role":"user","content":"Once upon a time"}]})";
  SendAll(fd, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string got;
  char buf[4096];
  while (got.find("message_start") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  ::kill(c.pid, SIGTERM);
  got += ReadAll(fd, 10000);
  ::close(fd);
  HttpResult streamed = ParseResponse(got);
  // Either the stream finished before the signal was handled, or it ended with an error event.
  EXPECT_EQ(ValidateAnthropicSse(streamed.body, /*allow_error=*/true), "") << streamed.body;
  EXPECT_EQ(Wait(c.pid), 0);
  std::fclose(c.err);
}

}  // namespace
}  // namespace pensieve::test
