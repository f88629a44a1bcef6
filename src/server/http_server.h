#pragma once
// A small HTTP/1.1 server on POSIX sockets, written for what an inference server needs and cpp-httplib 0.11
// does not give: the body limit answered with 413 from Content-Length alone (the body is never read), a
// deadline for the whole request head (slow-loris) and for body progress, chunked streaming with
// disconnect detection (poll for RDHUP, so a generation is cancelled even while nothing is being written),
// and HEAD. One thread per connection (bounded by max_connections, and per peer address); handlers may block
// (streams do). Parsing of heads and body framing: http_request_parser.h.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pensieve::server {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;
  std::string target;   // as sent: path + "?" + query
  std::string path;     // without the query string
  std::string query;
  std::string version;  // "HTTP/1.1"
  Headers headers;      // names lower-cased
  std::string body;
  std::string remote;   // peer address
  // First value of the named header (case-insensitive), "" when absent.
  std::string Header(std::string_view name) const;
};

class HttpResponder {
 public:
  HttpResponder(int fd, bool head_only, int write_timeout_ms) : fd_(fd), head_only_(head_only), write_timeout_ms_(write_timeout_ms) {}
  // A complete response with Content-Length.
  void Send(int status, const Headers& headers, std::string_view body);
  // Chunked streaming: BeginStream once, Write any number of times, EndStream once.
  bool BeginStream(int status, const Headers& headers);
  bool Write(std::string_view data);  // false once the client is gone (then stop writing)
  void EndStream();
  // Non-blocking: has the peer closed or reset the connection?
  bool ClientGone();
  bool sent() const { return status_ != 0; }
  int status() const { return status_; }
  bool failed() const { return failed_; }
  void set_close(bool close) { close_ = close; }
  bool close() const { return close_; }

 private:
  bool WriteAll(std::string_view data);
  std::string Head(int status, const Headers& headers, const std::string& framing);
  int fd_;
  bool head_only_;
  int write_timeout_ms_;
  int status_ = 0;
  bool streaming_ = false;
  bool failed_ = false;
  bool close_ = false;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponder&)>;
// Answers transport-level errors (400 malformed head or framing, 408 timeouts, 411, 413, 431, 501, 503) in the
// API's error envelope; `request` is partial (method/path may be empty).
using HttpErrorHandler = std::function<void(const HttpRequest&, HttpResponder&, int status, const std::string& message)>;

struct HttpOptions {
  size_t max_body_bytes = 32u << 20;    // 32 MiB, the Messages API's limit
  size_t max_header_bytes = 64u << 10;
  int header_timeout_ms = 10000;        // a new connection's first byte, and a whole request head from its first byte
  int idle_timeout_ms = 60000;          // keep-alive wait for the next request
  int body_timeout_ms = 60000;          // whole body, from the end of the head -> 408
  int write_timeout_ms = 60000;         // a client not reading for this long is gone
  int max_connections = 512;
  int max_connections_per_address = 256;  // one peer cannot take every slot
};

const char* StatusText(int status);

class HttpServer {
 public:
  HttpServer(HttpHandler handler, HttpErrorHandler error_handler, HttpOptions options = {});
  ~HttpServer();
  // Binds and listens; port 0 picks a free one. Returns the bound port. Throws pensieve::Error on failure.
  int Listen(const std::string& host, int port);
  // Accepts until Stop(); returns after the listening socket is closed.
  void Run();
  // Stops accepting; idle keep-alive connections close, in-flight requests finish. Safe from any thread
  // (not from a signal handler: use a self-pipe there and call Stop from a normal thread).
  void Stop();
  // Waits until every connection has closed or the timeout passed; returns whether all closed.
  bool WaitIdle(int timeout_ms);
  bool stopping() const { return stopping_.load(); }
  int active_connections() const { return active_.load(); }

 private:
  void ServeConnection(int fd, std::string remote);
  HttpHandler handler_;
  HttpErrorHandler error_handler_;
  HttpOptions options_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  std::mutex mu_;
  std::unordered_map<std::string, int> per_address_;  // open connections by peer address (under mu_)
  std::condition_variable idle_cv_;
};

}  // namespace pensieve::server
