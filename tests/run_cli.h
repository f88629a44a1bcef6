#pragma once
// Test helper: runs the built `pensieve` with arguments (a shell fragment) and returns its exit code and its
// stdout and stderr together.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "test_paths.h"

namespace pensieve::test {

struct RunResult {
  int code;
  std::string out;  // stdout + stderr
};

// timeout_s > 0: killed after that long (coreutils timeout; the code is then 124).
inline RunResult RunCli(const std::string& args, int timeout_s = 0) {
  const std::string cmd = (timeout_s > 0 ? "timeout -k 2 " + std::to_string(timeout_s) + " " : std::string()) +
                          PensieveBinary() + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace pensieve::test
