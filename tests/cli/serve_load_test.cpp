// Load against `pensieve serve` on the real stories260K model (issue 4 acceptance): 64 concurrent streaming
// clients, half of them disconnecting mid-stream, all others complete with a valid SSE grammar and no 5xx
// other than 529; then 1,000 sequential requests leave the server's resident memory within 5% of where it
// was after the first 100.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "fakes/http_client.h"
#include "fakes/sse_validator.h"
#include "sanitizer.h"
#include "test_paths.h"

namespace pensieve::test {
namespace {

long ProcessRssKb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

TEST(ServeLoad, ConcurrentStreamsDisconnectsAndSequentialMemory) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  std::string model = TestData("models/stories260K/stories260K-hf");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string bin = PensieveBinary();
    const char* argv[] = {bin.c_str(), "serve", "--model", model.c_str(), "--port", "0", "--threads", "2", "--quiet",
                          "--max-queue", "128", nullptr};
    ::execv(argv[0], const_cast<char**>(argv));
    _exit(127);
  }
  ::close(fds[1]);
  FILE* err = ::fdopen(fds[0], "r");
  int port = 0;
  char buf[4096];
  std::regex listening(R"(on http://127\.0\.0\.1:(\d+))");
  for (int i = 0; i < 5 && !port && std::fgets(buf, sizeof buf, err); ++i) {
    std::cmatch m;
    if (std::regex_search(buf, m, listening)) port = std::stoi(m[1]);
  }
  ASSERT_GT(port, 0);

  const std::string stream_body =
      R"({"model":"m","max_tokens":200,"temperature":0.8,"stream":true,"messages":[{"role":"user","content":"Once upon a time"}]})";
  auto t0 = std::chrono::steady_clock::now();
  std::atomic<int> valid{0}, bad{0}, overloaded{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&, i] {
      int fd = Connect(port);
      SendAll(fd, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                      std::to_string(stream_body.size()) + "\r\n\r\n" + stream_body);
      if (i % 2) {
        std::string got;
        char b[4096];
        while (got.find("text_delta") == std::string::npos) {
          ssize_t n = ::recv(fd, b, sizeof b, 0);
          if (n <= 0) break;
          got.append(b, static_cast<size_t>(n));
        }
        ::close(fd);
        return;
      }
      HttpResult r = ParseResponse(ReadAll(fd, 120000));
      ::close(fd);
      if (r.status == 529) ++overloaded;
      else if (r.status == 200 && ValidateAnthropicSse(r.body).empty()) ++valid;
      else ++bad;
    });
  }
  for (auto& t : clients) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(valid + overloaded, 32);
  EXPECT_LT(secs, 120.0);
  std::printf("64 streams (32 disconnecting): %.1f s, %d valid, %d overloaded\n", secs, valid.load(), overloaded.load());

  const std::string small =
      R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"Once upon a time"}]})";
  long after100 = 0;
  for (int i = 0; i < 1000; ++i) {
    HttpResult r = Request(port, "POST", "/v1/messages", small);
    ASSERT_EQ(r.status, 200) << r.body;
    if (i == 99) after100 = ProcessRssKb(pid);
  }
  long end = ProcessRssKb(pid);
  std::printf("server RSS after 100 requests: %ld kB, after 1000: %ld kB\n", after100, end);
  if (!test::kUnderAsan) {
    EXPECT_LE(end, after100 * 105 / 100);
  }

  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::fclose(err);
}

}  // namespace
}  // namespace pensieve::test
