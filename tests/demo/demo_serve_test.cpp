// `pensieve serve` with no arguments serves the demo model built into the binary (issue 5 acceptance):
// it is listening in under 2 seconds and answers POST /v1/messages "What is 12 + 30?" with 42.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>

#include <httplib.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fakes/http_client.h"
#include "test_paths.h"

namespace {

// A child `pensieve serve ...` whose stderr we read until it prints its "serving ... on http://HOST:PORT" line.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    start_ = std::chrono::steady_clock::now();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      std::string bin = pensieve::test::PensieveBinary();
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    err_ = fdopen(fds[0], "r");
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (err_) fclose(err_);
  }
  // Reads stderr lines until the listening line; returns the port (0 if the process ended first).
  int WaitListening(double* seconds, std::string* log) {
    char line[4096];
    static const std::regex re("serving .* on http://[^:]+:([0-9]+)");
    while (err_ && fgets(line, sizeof line, err_)) {
      *log += line;
      std::cmatch m;
      if (std::regex_search(line, m, re)) {
        *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        return std::stoi(m[1].str());
      }
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  FILE* err_ = nullptr;
  std::chrono::steady_clock::time_point start_;
};

TEST(DemoServe, NoArgumentsServesDemoModelFastAndAnswers42) {
  // Port 7777 (the default) may be taken on a shared machine; --port 0 changes nothing else.
  ServeProcess serve({"serve", "--port", "0"});
  double startup_s = 0;
  std::string log;
  int port = serve.WaitListening(&startup_s, &log);
  ASSERT_GT(port, 0) << log;
  std::printf("[demo serve] listening after %.2f s: %s", startup_s, log.c_str());
  EXPECT_LT(startup_s, 2.0) << log;
  // The demo's generation_config.json says do_sample false: requests without a temperature decode greedily.
  EXPECT_NE(log.find("(generation_config.json): temperature 0 (greedy)"), std::string::npos) << log;
  EXPECT_NE(log.find("'pensieve-demo'"), std::string::npos) << log;

  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  auto models = client.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_NE(models->body.find("pensieve-demo"), std::string::npos) << models->body;

  nlohmann::json req = {{"model", "pensieve-demo"},
                        {"max_tokens", 32},
                        {"messages", {{{"role", "user"}, {"content", "What is 12 + 30?"}}}}};
  auto res = client.Post("/v1/messages", {{"anthropic-version", "2023-06-01"}}, req.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto j = nlohmann::json::parse(res->body);
  ASSERT_EQ(j["content"].size(), 1u) << res->body;
  EXPECT_EQ(j["content"][0]["text"], "42") << res->body;
  EXPECT_EQ(j["stop_reason"], "end_turn") << res->body;
  EXPECT_EQ(j["model"], "pensieve-demo");
}

// Issue 14, defect 9: --max-prompt-tokens refuses longer prompts with a 400, and a short request is answered
// within 2 s while a long prompt (tens of thousands of tokens) is being prefilled on the CPU.
TEST(DemoServe, ShortRequestIsAnsweredDuringALongPrefill) {
  ServeProcess serve({"serve", "--port", "0", "--quiet", "--max-prompt-tokens", "60000"});
  double startup_s = 0;
  std::string log;
  const int port = serve.WaitListening(&startup_s, &log);
  ASSERT_GT(port, 0) << log;
  const auto body = [](const std::string& text, int max_tokens, bool stream) {
    return nlohmann::json{{"model", "pensieve-demo"}, {"max_tokens", max_tokens}, {"stream", stream},
                          {"messages", {{{"role", "user"}, {"content", text}}}}}
        .dump();
  };
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  auto refused = client.Post("/v1/messages", body(std::string(70000, '['), 8, false), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_NE(refused->body.find("tokens > 60000 maximum"), std::string::npos) << refused->body;

  // A streaming request of about 40,000 tokens ('[' is one token each), left prefilling.
  const int fd = pensieve::test::Connect(port);
  ASSERT_GE(fd, 0);
  const std::string long_body = body(std::string(40000, '['), 8, true);
  ASSERT_TRUE(pensieve::test::SendAll(fd, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                          "Content-Length: " + std::to_string(long_body.size()) + "\r\n\r\n" + long_body));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto t0 = std::chrono::steady_clock::now();
  auto short_answer = client.Post("/v1/messages", body("What is 12 + 30?", 1, false), "application/json");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(short_answer);
  EXPECT_EQ(short_answer->status, 200) << short_answer->body;
  std::printf("[demo serve] a one-token answer took %.2f s during a 40k-token prefill\n", seconds);
  EXPECT_LT(seconds, 2.0);
  close(fd);  // the long request is cancelled with its connection
}

TEST(DemoServe, GenerateWithModelDemo) {
  // `pensieve generate --model demo` runs the embedded model (raw prompt, no chat template): the demo
  // model continues a rendered turn with the answer.
  std::string cmd = pensieve::test::PensieveBinary() +
                    " generate --model demo --max-tokens 8 --prompt '<|im_start|>user<|im_sep|>What is 7 * 8?<|im_end|>"
                    "<|im_start|>assistant<|im_sep|>' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("assistant56"), std::string::npos) << out;  // special tokens are not printed
}

}  // namespace
