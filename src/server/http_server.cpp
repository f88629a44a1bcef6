#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "server/http_request_parser.h"
#include "util/error.h"

namespace pensieve::server {
namespace {

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Reads what is available into buf, waiting until `deadline`. Returns bytes read, 0 on EOF, -1 on error,
// -2 on timeout. `slice_stop` is polled every 250 ms (server shutdown while idle).
long ReadSome(int fd, std::string& buf, Clock::time_point deadline, const std::atomic<bool>* slice_stop = nullptr) {
  for (;;) {
    int left = MsLeft(deadline);
    if (left == 0) return -2;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, slice_stop ? std::min(left, 250) : left);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) {
      if (slice_stop && slice_stop->load()) return -1;
      continue;
    }
    char tmp[16384];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    buf.append(tmp, static_cast<size_t>(n));
    return n;
  }
}

}  // namespace

const char* StatusText(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return "Unknown";
  }
}

bool HttpResponder::WriteAll(std::string_view data) {
  if (failed_) return false;
  auto deadline = Clock::now() + std::chrono::milliseconds(write_timeout_ms_);
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int left = MsLeft(deadline);
      pollfd p{fd_, POLLOUT, 0};
      if (left == 0 || ::poll(&p, 1, left) <= 0 || (p.revents & (POLLERR | POLLHUP))) break;
      continue;
    }
    break;
  }
  if (!data.empty()) failed_ = true;
  return !failed_;
}

std::string HttpResponder::Head(int status, const Headers& headers, const std::string& framing) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + StatusText(status) + "\r\n";
  for (const auto& [k, v] : headers) head += k + ": " + v + "\r\n";
  head += framing;
  head += close_ ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
  head += "\r\n";
  return head;
}

void HttpResponder::Send(int status, const Headers& headers, std::string_view body) {
  if (status_ != 0) return;
  status_ = status;
  std::string out = Head(status, headers, "Content-Length: " + std::to_string(body.size()) + "\r\n");
  if (!head_only_) out.append(body);
  WriteAll(out);
}

bool HttpResponder::BeginStream(int status, const Headers& headers) {
  if (status_ != 0) return false;
  status_ = status;
  streaming_ = true;
  if (head_only_) return WriteAll(Head(status, headers, "Content-Length: 0\r\n"));
  return WriteAll(Head(status, headers, "Transfer-Encoding: chunked\r\n"));
}

bool HttpResponder::Write(std::string_view data) {
  if (!streaming_ || head_only_) return !failed_;
  if (data.empty()) return !failed_;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string chunk = size;
  chunk.append(data);
  chunk += "\r\n";
  return WriteAll(chunk);
}

void HttpResponder::EndStream() {
  if (!streaming_) return;
  streaming_ = false;
  if (!head_only_) WriteAll("0\r\n\r\n");
}

bool HttpResponder::ClientGone() {
  if (failed_) return true;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  if (p.revents & POLLIN) {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
  return false;
}

HttpServer::HttpServer(HttpHandler handler, HttpErrorHandler error_handler, HttpOptions options)
    : handler_(std::move(handler)), error_handler_(std::move(error_handler)), options_(options) {
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) throw Error("http: pipe2 failed: " + std::string(strerror(errno)));
}

HttpServer::~HttpServer() {
  Stop();
  WaitIdle(5000);
  if (wake_pipe_[0] >= 0) ::close(wake_pipe_[0]);
  if (wake_pipe_[1] >= 0) ::close(wake_pipe_[1]);
}

int HttpServer::Listen(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) throw Error("cannot resolve --host '" + host + "': " + gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) throw Error("cannot listen on " + host + ":" + port_s + ": " + last_error);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void HttpServer::Run() {
  while (!stopping_.load()) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int r = ::poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break;
    if (!(p[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    char addr[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, addr, sizeof addr);
    } else if (ss.ss_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, addr, sizeof addr);
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string remote(addr);
    std::string refusal;
    {
      std::lock_guard lock(mu_);
      int& mine = per_address_[remote];
      if (active_.load() >= options_.max_connections) {
        refusal = "too many connections";
      } else if (mine >= options_.max_connections_per_address) {
        refusal = "too many connections from " + remote + " (at most " +
                  std::to_string(options_.max_connections_per_address) + " per address)";
      } else {
        ++mine;
        active_.fetch_add(1);
      }
      if (mine == 0) per_address_.erase(remote);
    }
    if (!refusal.empty()) {
      HttpRequest req;
      req.remote = remote;
      HttpResponder res(fd, false, 1000);
      res.set_close(true);
      error_handler_(req, res, 503, refusal);
      ::close(fd);
      continue;
    }
    std::thread([this, fd, remote] {
      ServeConnection(fd, remote);
      ::close(fd);
      std::lock_guard lock(mu_);
      if (--per_address_[remote] == 0) per_address_.erase(remote);
      active_.fetch_sub(1);
      idle_cv_.notify_all();
    }).detach();
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void HttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  char c = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_pipe_[1], &c, 1);
}

bool HttpServer::WaitIdle(int timeout_ms) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return active_.load() == 0; });
}

void HttpServer::ServeConnection(int fd, std::string remote) {
  std::string buf;  // bytes read but not yet consumed
  bool first = true;
  for (;;) {
    HttpRequest req;
    req.remote = remote;
    // 1. Wait for the first byte of the next request, then the whole head by a deadline. A new connection gets
    // the head's deadline for its first byte (a silent socket must not hold a slot for the keep-alive wait);
    // a kept-alive one the idle timeout.
    auto idle_deadline =
        Clock::now() + std::chrono::milliseconds(first ? options_.header_timeout_ms : options_.idle_timeout_ms);
    first = false;
    while (buf.empty()) {
      if (stopping_.load()) return;
      long n = ReadSome(fd, buf, idle_deadline, &stopping_);
      if (n <= 0) return;  // closed, error, idle timeout or shutdown: just close
    }
    auto head_deadline = Clock::now() + std::chrono::milliseconds(options_.header_timeout_ms);
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      HttpResponder res(fd, false, 1000);
      res.set_close(true);
      if (buf.size() > options_.max_header_bytes) {
        error_handler_(req, res, 431, "request head exceeds " + std::to_string(options_.max_header_bytes) + " bytes");
        return;
      }
      long n = ReadSome(fd, buf, head_deadline);
      if (n == -2) {
        error_handler_(req, res, 408, "request head not received within " +
                                          std::to_string(options_.header_timeout_ms / 1000) + " s");
        return;
      }
      if (n <= 0) return;
    }
    if (head_end > options_.max_header_bytes) {
      HttpResponder res(fd, false, 1000);
      res.set_close(true);
      error_handler_(req, res, 431, "request head exceeds " + std::to_string(options_.max_header_bytes) + " bytes");
      return;
    }
    // 2. Request line and headers.
    auto refuse = [&](const HttpRefusal& why) {
      HttpResponder res(fd, false, 1000);
      res.set_close(true);
      error_handler_(req, res, why.status, why.message);
      // Let the client read the answer: closing with unread bytes sends a reset, which can discard it. Stop
      // sending, drain briefly (never a whole body), then close.
      ::shutdown(fd, SHUT_WR);
      std::string sink;
      auto until = Clock::now() + std::chrono::milliseconds(300);
      while (ReadSome(fd, sink, until) > 0 && sink.size() < (4u << 20)) sink.clear();
    };
    if (auto refusal = ParseRequestHead(std::string_view(buf.data(), head_end), &req)) return refuse(*refusal);
    buf.erase(0, head_end + 4);

    bool keep_alive = req.version == "HTTP/1.1";
    std::string conn = AsciiLower(req.Header("connection"));
    if (conn.find("close") != std::string::npos) keep_alive = false;
    if (conn.find("keep-alive") != std::string::npos) keep_alive = true;

    // 3. Body: Content-Length, or chunked (http_request_parser.h); the limit is enforced before reading.
    BodyFraming framing;
    if (auto refusal = DecideBodyFraming(req, &framing)) return refuse(*refusal);
    // One deadline for the whole body (not per read), so a client trickling bytes cannot hold the thread.
    const auto body_end = Clock::now() + std::chrono::milliseconds(options_.body_timeout_ms);
    auto too_large = [&](const std::string& what) { refuse({413, what}); };
    auto stalled = [&] { refuse({408, "request body stalled"}); };
    if (framing.kind == BodyFraming::kChunked) {
      for (;;) {
        size_t le;
        while ((le = buf.find("\r\n")) == std::string::npos) {
          if (buf.size() > 1024) return refuse({400, "malformed chunk size line"});
          long n = ReadSome(fd, buf, body_end);
          if (n == -2) return stalled();
          if (n <= 0) return;
        }
        std::optional<size_t> size = ParseChunkSize(std::string_view(buf.data(), le));
        if (!size) return refuse({400, "malformed chunk size '" + buf.substr(0, std::min<size_t>(le, 40)) + "'"});
        buf.erase(0, le + 2);
        if (req.body.size() + *size > options_.max_body_bytes) {
          return too_large("request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
        }
        while (buf.size() < *size + 2) {
          long n = ReadSome(fd, buf, body_end);
          if (n == -2) return stalled();
          if (n <= 0) return;
        }
        if (buf.compare(*size, 2, "\r\n") != 0) return refuse({400, "chunk data not followed by CRLF"});
        req.body.append(buf, 0, *size);
        buf.erase(0, *size + 2);
        if (*size == 0) break;  // (trailers are not supported)
      }
    } else if (framing.kind == BodyFraming::kLength) {
      const size_t length = framing.length;
      if (length > options_.max_body_bytes) {
        return too_large("request body of " + std::to_string(length) + " bytes exceeds the limit of " +
                         std::to_string(options_.max_body_bytes) + " bytes");
      }
      if (AsciiLower(req.Header("expect")) == "100-continue" && buf.size() < length) {
        std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
        ::send(fd, cont.data(), cont.size(), MSG_NOSIGNAL);
      }
      while (buf.size() < length) {
        long n = ReadSome(fd, buf, body_end);
        if (n == -2) return stalled();
        if (n <= 0) return;
      }
      req.body = buf.substr(0, length);
      buf.erase(0, length);
    }

    // 4. Handle.
    HttpResponder res(fd, req.method == "HEAD", options_.write_timeout_ms);
    if (!keep_alive || stopping_.load()) res.set_close(true);
    handler_(req, res);
    if (!res.sent()) {
      res.Send(500, {{"Content-Type", "text/plain"}}, "handler sent no response");
    }
    if (res.failed() || res.close() || stopping_.load()) return;
  }
}

}  // namespace pensieve::server
