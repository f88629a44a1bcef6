#include "util/system_memory.h"

#include <cstdio>
#include <cstring>

namespace pensieve {

std::optional<SystemMemory> ReadSystemMemory() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return std::nullopt;
  SystemMemory m;
  bool have_available = false, have_total = false;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    long long kb = 0;
    if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) {
      m.available_bytes = static_cast<int64_t>(kb) * 1024;
      have_available = true;
    } else if (std::sscanf(line, "MemTotal: %lld kB", &kb) == 1) {
      m.total_bytes = static_cast<int64_t>(kb) * 1024;
      have_total = true;
    }
  }
  std::fclose(f);
  if (!(have_available && have_total)) return std::nullopt;
  return m;
}

}  // namespace pensieve
