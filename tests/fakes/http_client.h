#pragma once
// Test helper: a raw-socket HTTP/1.1 client (one request per connection, Connection: close), so tests see
// exactly what goes over the wire: status, headers, de-chunked body.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>

namespace pensieve::test {

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  std::string raw;
};

// Connects to 127.0.0.1:port, from the loopback address `from` when given (e.g. "127.0.0.2": another peer).
inline int Connect(int port, const char* from = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (from) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    if (::inet_pton(AF_INET, from, &src.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until EOF or timeout.
inline std::string ReadAll(int fd, int timeout_ms = 10000) {
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

inline HttpResult ParseResponse(const std::string& raw) {
  HttpResult r;
  r.raw = raw;
  size_t he = raw.find("\r\n\r\n");
  if (he == std::string::npos || raw.size() < 12) return r;
  r.status = std::stoi(raw.substr(9, 3));
  size_t pos = raw.find("\r\n") + 2;
  while (pos < he) {
    size_t e = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, e - pos);
    size_t c = line.find(':');
    std::string k = line.substr(0, c);
    for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string v = line.substr(c + 1);
    while (!v.empty() && v[0] == ' ') v.erase(0, 1);
    r.headers[k] = v;
    pos = e + 2;
  }
  std::string body = raw.substr(he + 4);
  if (r.headers["transfer-encoding"] == "chunked") {
    size_t p = 0;
    while (p < body.size()) {
      size_t le = body.find("\r\n", p);
      if (le == std::string::npos) break;
      size_t n = std::stoul(body.substr(p, le - p), nullptr, 16);
      if (n == 0) break;
      r.body += body.substr(le + 2, n);
      p = le + 2 + n + 2;
    }
  } else {
    r.body = body;
  }
  return r;
}

inline HttpResult Request(int port, const std::string& method, const std::string& path, const std::string& body = "",
                          const std::map<std::string, std::string>& headers = {}, int timeout_ms = 10000) {
  int fd = Connect(port);
  if (fd < 0) return {};
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  SendAll(fd, req);
  std::string raw = ReadAll(fd, timeout_ms);
  ::close(fd);
  return ParseResponse(raw);
}

}  // namespace pensieve::test
