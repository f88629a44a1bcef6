#pragma once
// Test helper: the real HTTP server and API service over the fake engine/tokenizer/template, on a free
// loopback port, running on its own thread.
#include <memory>
#include <thread>

#include "fakes/fake_model.h"
#include "server/api_service.h"
#include "server/http_server.h"

namespace pensieve::test {

struct TestServer {
  std::unique_ptr<FakeWorld> world;
  std::unique_ptr<server::ApiService> service;
  std::unique_ptr<server::HttpServer> http;
  std::thread thread;
  int port = 0;

  explicit TestServer(server::ServiceOptions options = {}, server::HttpOptions http_options = {}, int ctx = 4096,
                      int slots = 4, int max_queue = 64) {
    world = std::make_unique<FakeWorld>(ctx, slots, max_queue);
    if (options.log == stderr) options.log = nullptr;
    service = std::make_unique<server::ApiService>(world->pipeline, options);
    http = std::make_unique<server::HttpServer>(
        [this](const server::HttpRequest& q, server::HttpResponder& r) { service->Handle(q, r); },
        [this](const server::HttpRequest& q, server::HttpResponder& r, int s, const std::string& m) {
          service->HandleTransportError(q, r, s, m);
        },
        http_options);
    service->set_server(http.get());
    port = http->Listen("127.0.0.1", 0);
    thread = std::thread([this] { http->Run(); });
  }
  ~TestServer() {
    service->BeginShutdown();
    http->Stop();
    thread.join();
    http->WaitIdle(5000);
    world->engine.Shutdown();
  }
};

}  // namespace pensieve::test
