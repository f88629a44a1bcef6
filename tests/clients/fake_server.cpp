// pensieve_fake_server: the real HTTP server and API adapters over the scripted fake engine (tests/fakes),
// for real-client tests that need deterministic tool calls, thinking and UTF-8 (a random-weight model cannot
// produce them). Usage: pensieve_fake_server [--port N] [--api-key KEY] [--ctx N]; prints "listening on PORT" and serves
// until SIGTERM/SIGINT. --ctx N sets the fake context (its tokenizer is byte-level: Claude Code's prompt is
// about 80k tokens there).
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "fakes/test_server.h"

int main(int argc, char** argv) {
  pensieve::server::ServiceOptions options;
  options.model_id = "fake-model";
  int port = 0;
  int ctx = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--port")) port = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--api-key")) options.api_key = argv[i + 1];
    if (!std::strcmp(argv[i], "--ctx")) ctx = std::atoi(argv[i + 1]);
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  options.log = stderr;
  pensieve::test::FakeWorld world(ctx);
  pensieve::server::ApiService service(world.pipeline, options);
  pensieve::server::HttpServer http([&](const auto& q, auto& r) { service.Handle(q, r); },
                                    [&](const auto& q, auto& r, int s, const std::string& m) { service.HandleTransportError(q, r, s, m); });
  service.set_server(&http);
  int bound = http.Listen("127.0.0.1", port);
  std::printf("listening on %d\n", bound);
  std::fflush(stdout);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    service.BeginShutdown();
    http.Stop();
  });
  http.Run();
  http.WaitIdle(5000);
  world.engine.Shutdown();
  waiter.join();
  return 0;
}
